// Package token issues and verifies CreditLedger's bearer tokens: JWTs
// verified with github.com/golang-jwt/jwt/v5.
//
// In production the keys are asymmetric (EdDSA over Ed25519, or ES256
// over P-256) and come from a JWKS file; each key names the roles it may
// mint, so whoever holds a portal's key can mint client tokens and
// nothing else. HS256 with a shared secret remains for development only.
//
// A token carries the registered claims (iss, sub, aud, exp, nbf, iat)
// and CreditLedger's own: the workspace, the role, the scopes and, for a
// client, the account. Every one of them is checked: issuer, audience,
// expiry, not-before, issue time and a maximum lifetime.
package token

import (
	"errors"
	"fmt"
	"slices"
)

// Scopes a bearer token can carry (spec §6).
const (
	ScopeLedgerWrite    = "ledger:write"    // Credit, Debit: internal services
	ScopeLedgerRead     = "ledger:read"     // balances, history, requests, catalog
	ScopeRequestsSubmit = "requests:submit" // SubmitRequest: the client or its agency
	ScopeRequestsDecide = "requests:decide" // DecideRequest: the agency's admins
	ScopeSettingsAdmin  = "settings:admin"  // settings, packages, rates: the agency's admins
)

// Role is the kind of principal a token stands for. A signing key is
// limited to the roles it may mint, and a role to the scopes it may hold.
type Role string

// Roles.
const (
	// RoleClient is one client of an agency, bound to its account.
	RoleClient Role = "client"
	// RoleAdmin is one of the agency's administrators.
	RoleAdmin Role = "admin"
	// RoleService is an internal service (checkout, invoicing, operators'
	// tooling): the only role that may move credits directly.
	RoleService Role = "service"
)

// Roles lists every role, in a stable order.
var Roles = []Role{RoleClient, RoleAdmin, RoleService}

// roleScopes is what each role may hold.
var roleScopes = map[Role][]string{
	RoleClient:  {ScopeLedgerRead, ScopeRequestsSubmit},
	RoleAdmin:   {ScopeLedgerRead, ScopeRequestsSubmit, ScopeRequestsDecide, ScopeSettingsAdmin},
	RoleService: {ScopeLedgerWrite, ScopeLedgerRead, ScopeRequestsSubmit},
}

// Scopes lists every scope, in a stable order.
var Scopes = []string{ScopeLedgerWrite, ScopeLedgerRead, ScopeRequestsSubmit, ScopeRequestsDecide, ScopeSettingsAdmin}

// RoleScopes returns the scopes role may hold.
func RoleScopes(r Role) []string { return slices.Clone(roleScopes[r]) }

// ParseRole reads a role's name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if _, ok := roleScopes[r]; !ok {
		return "", fmt.Errorf("unknown role %q (want client, admin or service)", s)
	}
	return r, nil
}

// checkGrant verifies that the claims are a coherent grant: a known role,
// scopes the role may hold, and an account exactly for clients.
func (c *Claims) checkGrant() error {
	allowed, ok := roleScopes[c.Role]
	if !ok {
		return fmt.Errorf("unknown role %q", c.Role)
	}
	if c.Subject == "" || c.Workspace == "" {
		return errors.New("a token needs sub and workspace")
	}
	if len(c.Scopes) == 0 {
		return errors.New("a token needs at least one scope")
	}
	for _, s := range c.Scopes {
		if !slices.Contains(allowed, s) {
			return fmt.Errorf("role %s may not hold scope %q", c.Role, s)
		}
	}
	switch {
	case c.Role == RoleClient && c.Account == "":
		return errors.New("a client token must name its account")
	case c.Role != RoleClient && c.Account != "":
		return errors.New("only client tokens name an account")
	}
	return nil
}
