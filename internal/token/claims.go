package token

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are the contents of a bearer token.
type Claims struct {
	jwt.RegisteredClaims
	Workspace string   `json:"workspace"`
	Account   string   `json:"account,omitempty"`
	Role      Role     `json:"role"`
	Scopes    []string `json:"scopes"`
}

// New returns the claims of a token for sub, issued at now and valid for
// ttl, with the issuer and audience filled in.
func New(issuer, audience string, role Role, sub, workspace, account string, scopes []string, now time.Time, ttl time.Duration) Claims {
	now = now.Truncate(time.Second)
	return Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   sub,
			Audience:  jwt.ClaimStrings{audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Workspace: workspace, Account: account, Role: role, Scopes: scopes,
	}
}

// claimNames are the members a token may carry, spelled exactly. A
// member that differs only in case ("Workspace", "SUB") is refused rather
// than folded onto the real one by encoding/json, and so is a member
// given twice: either would let two readers of one token disagree.
var claimNames = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "workspace", "account", "role", "scopes"}

// UnmarshalJSON reads claims strictly (see claimNames).
func (c *Claims) UnmarshalJSON(data []byte) error {
	if err := checkMembers(data); err != nil {
		return err
	}
	type plain Claims // without this method
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	*c = Claims(p)
	return nil
}

func checkMembers(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("claims must be a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := tok.(string)
		if seen[name] {
			return fmt.Errorf("claim %q appears twice", name)
		}
		seen[name] = true
		for _, known := range claimNames {
			if name != known && strings.EqualFold(name, known) {
				return fmt.Errorf("claim %q is not spelled %q", name, known)
			}
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return nil
}
