package portal

import (
	"fmt"
	"time"

	"github.com/creditledger/creditledger/internal/token"
)

// Minter gives the portal a bearer token for a signed-in person: what the
// ledger, checkout and invoicing authenticate the portal's calls with.
type Minter interface {
	Mint(role, subject, workspace, account string) (tok string, exp time.Time, err error)
}

// KeyMinter mints tokens with the portal's own signing key (a private JWK
// as `ledgerd keygen` writes it, whose public half is in the JWKS the
// ledger, checkout and invoicing trust, naming the roles it may mint).
//
// In production the portal's key names only the client role: the portal
// signs in its users through the agency's identity provider and mints
// client tokens for them, while the agency's administrators get their
// tokens from that provider. The development sign-in also mints admin
// tokens, which needs a key allowed the admin role: a development key.
type KeyMinter struct {
	Key      token.SigningKey
	Issuer   string
	Audience string
	TTL      time.Duration
	Now      func() time.Time
}

// Mint implements Minter.
func (m KeyMinter) Mint(role, subject, workspace, account string) (string, time.Time, error) {
	r, err := token.ParseRole(role)
	if err != nil {
		return "", time.Time{}, err
	}
	if r == token.RoleService {
		return "", time.Time{}, fmt.Errorf("the portal never mints %s tokens", r)
	}
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	c := token.New(m.Issuer, m.Audience, r, subject, workspace, account, token.RoleScopes(r), now(), m.TTL)
	tok, err := token.Mint(m.Key, c)
	if err != nil {
		return "", time.Time{}, err
	}
	return tok, c.ExpiresAt.Time, nil
}
