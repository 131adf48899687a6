package consumer

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	"github.com/creditledger/creditledger/internal/token"
)

// Access is what a route of a consumer's API requires of a caller: one of
// the roles, and one of the scopes.
type Access struct {
	Roles  []token.Role
	Scopes []string
}

// Verdict is what Check decided; Authorize turns it into the API's error.
type Verdict int

// Verdicts.
const (
	// Allowed: the caller may make the call.
	Allowed Verdict = iota
	// Hidden: a caller of another workspace, or a client of another
	// account, gets the not-found a missing resource gives, so that it
	// learns nothing of what exists.
	Hidden
	// RoleDenied: the caller's role may not make the call.
	RoleDenied
	// ScopeDenied: the token holds none of the scopes the call needs.
	ScopeDenied
)

// Check decides whether c may do what acc requires in workspace, and on
// account when one is named (a path's or a stored resource's). A nil c is
// the development mode without authentication: allowed.
func (acc Access) Check(c *token.Claims, workspace, account string) Verdict {
	switch {
	case c == nil:
		return Allowed
	case c.Workspace != workspace:
		return Hidden
	case c.Role == token.RoleClient && account != "" && c.Account != account:
		return Hidden
	case !slices.Contains(acc.Roles, c.Role):
		return RoleDenied
	}
	for _, s := range acc.Scopes {
		if slices.Contains(c.Scopes, s) {
			return Allowed
		}
	}
	return ScopeDenied
}

// BearerToken reads the token of an Authorization header value
// ("Bearer <token>", the scheme in any case).
func BearerToken(header string) (string, bool) {
	scheme, raw, _ := strings.Cut(header, " ")
	raw = strings.TrimSpace(raw)
	return raw, strings.EqualFold(scheme, "Bearer") && raw != ""
}

// Fingerprint stands for an idempotency key (or a provider's payment id,
// which is one) in logs: the first 16 hex digits of its SHA-256. Whoever
// holds a key can find its lines; the log does not hand keys out.
func Fingerprint(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:8])
}
