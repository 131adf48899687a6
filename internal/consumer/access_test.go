package consumer

import (
	"testing"

	"github.com/creditledger/creditledger/internal/token"
)

func TestAccessCheck(t *testing.T) {
	t.Parallel()
	spend := Access{Roles: token.Roles, Scopes: []string{token.ScopeRequestsSubmit, token.ScopeLedgerWrite}}
	admin := Access{Roles: []token.Role{token.RoleAdmin}, Scopes: []string{token.ScopeSettingsAdmin}}
	client := &token.Claims{Workspace: "acme", Account: "alice", Role: token.RoleClient, Scopes: []string{token.ScopeRequestsSubmit}}
	for name, tc := range map[string]struct {
		acc      Access
		c        *token.Claims
		ws, acc2 string
		want     Verdict
	}{
		"development mode":      {spend, nil, "acme", "bob", Allowed},
		"own account":           {spend, client, "acme", "alice", Allowed},
		"another account":       {spend, client, "acme", "bob", Hidden},
		"another workspace":     {spend, client, "globex", "alice", Hidden},
		"role not allowed":      {admin, client, "acme", "alice", RoleDenied},
		"no scope of the route": {Access{Roles: token.Roles, Scopes: []string{token.ScopeLedgerRead}}, client, "acme", "alice", ScopeDenied},
		"no account named":      {spend, client, "acme", "", Allowed},
	} {
		if got := tc.acc.Check(tc.c, tc.ws, tc.acc2); got != tc.want {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
	if raw, ok := BearerToken("bearer  abc "); !ok || raw != "abc" {
		t.Errorf("BearerToken: %q %v", raw, ok)
	}
	for _, h := range []string{"", "Bearer", "Basic abc", "Bearer "} {
		if _, ok := BearerToken(h); ok {
			t.Errorf("BearerToken(%q) accepted", h)
		}
	}
}
