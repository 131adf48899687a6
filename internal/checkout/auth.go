package checkout

import (
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/creditledger/creditledger/internal/consumer"
	"github.com/creditledger/creditledger/internal/token"
)

// Verifier checks a bearer token; *token.Verifier provides it.
type Verifier interface {
	Verify(raw string) (token.Claims, error)
}

// access is what a route requires of a caller (see consumer.Access).
type access = consumer.Access

// The routes' rules. The portal backend calls with the client's own token
// (role client, bound to its account) or with an admin or service token of
// the workspace.
var (
	// readAccess: the catalog, an account's orders, purchases and options.
	readAccess = access{Roles: token.Roles, Scopes: []string{token.ScopeLedgerRead}}
	// spendAccess: orders and purchases, which move the account's credits
	// (the client itself, its agency, or an internal service).
	spendAccess = access{Roles: token.Roles, Scopes: []string{token.ScopeRequestsSubmit, token.ScopeLedgerWrite}}
	// catalogAccess: the agency's catalog is the agency's setting.
	catalogAccess = access{Roles: []token.Role{token.RoleAdmin}, Scopes: []string{token.ScopeSettingsAdmin}}
)

// authenticate returns the caller's claims: nil without error only when
// authentication is off (development).
func (a *App) authenticate(r *http.Request) (*token.Claims, error) {
	if a.verifier == nil {
		return nil, nil
	}
	raw, ok := consumer.BearerToken(r.Header.Get("Authorization"))
	if !ok {
		return nil, &Error{Kind: KindUnauthenticated, Code: CodeUnauthenticated, Message: "a bearer token is required"}
	}
	c, err := a.verifier.Verify(raw)
	if err != nil {
		// The reason is for the log only; the token itself never is.
		a.log.Info("bearer token refused", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
		return nil, &Error{Kind: KindUnauthenticated, Code: CodeUnauthenticated, Message: "the bearer token is not valid", Metadata: map[string]string{"token": "invalid"}}
	}
	return &c, nil
}

// authorize checks that the caller may do what acc requires in workspace,
// and on account when one is named (a path's or a stored resource's).
// A caller of another workspace, or a client of another account, gets
// hidden: the same not-found a missing resource gives, so that it learns
// nothing of what exists. A caller in the right place without the role or
// scope is denied.
func authorize(c *token.Claims, acc access, workspace, account string, hidden *Error) error {
	switch acc.Check(c, workspace, account) {
	case consumer.Hidden:
		return hidden
	case consumer.RoleDenied:
		return &Error{Kind: KindPermissionDenied, Code: CodePermissionDenied, Message: "the " + string(c.Role) + " role may not do this"}
	case consumer.ScopeDenied:
		return &Error{
			Kind: KindPermissionDenied, Code: CodePermissionDenied, Message: "the token lacks the required scope",
			Metadata: map[string]string{"required_scope": strings.Join(acc.Scopes, " or ")},
		}
	}
	return nil
}

// allow authenticates r and authorizes it; on failure it answers and
// returns false.
func (a *App) allow(w http.ResponseWriter, r *http.Request, acc access, workspace, account string, hidden *Error) (*token.Claims, bool) {
	c, err := a.authenticate(r)
	if err == nil {
		err = authorize(c, acc, workspace, account, hidden)
	}
	if err != nil {
		writeError(w, err)
		return nil, false
	}
	return c, true
}

// fingerprint stands for a key in logs (see consumer.Fingerprint).
var fingerprint = consumer.Fingerprint
