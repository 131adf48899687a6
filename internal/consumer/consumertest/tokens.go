package consumertest

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/token"
)

// Keys are the token keys of the services' tests, as a production JWKS
// has them: the portal's (clients only) and the operators' (admins and
// services).
type Keys struct {
	Portal, Ops token.SigningKey
	// JWKS is the public keys' document; Verifier trusts it.
	JWKS     []byte
	Verifier *token.Verifier
}

var (
	keysOnce sync.Once
	keys     Keys
	keysErr  error
)

// TestKeys returns the test binary's Keys, made once.
func TestKeys(t testing.TB) Keys {
	t.Helper()
	keysOnce.Do(func() { keys, keysErr = newKeys() })
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keys
}

func newKeys() (Keys, error) {
	var k Keys
	var err error
	if k.Portal, err = token.GenerateKey(token.AlgEdDSA, "portal-1", []token.Role{token.RoleClient}); err != nil {
		return k, err
	}
	if k.Ops, err = token.GenerateKey(token.AlgES256, "ops-1", []token.Role{token.RoleAdmin, token.RoleService}); err != nil {
		return k, err
	}
	if k.JWKS, err = token.PublicJWKS(k.Portal, k.Ops); err != nil {
		return k, err
	}
	ks, err := token.ParseJWKS(k.JWKS)
	if err != nil {
		return k, err
	}
	k.Verifier, err = token.NewVerifier(token.VerifierOptions{Keys: ks})
	return k, err
}

// JWKSFile writes the JWKS to a file of the test's and returns its path,
// for a service's *_AUTH_JWKS_FILE.
func (k Keys) JWKSFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, k.JWKS, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Mint returns a token of role in workspace (and account, for a client),
// valid for an hour, with every scope the role may hold or with scopes
// when given.
func (k Keys) Mint(t testing.TB, role token.Role, workspace, account string, scopes ...string) string {
	t.Helper()
	if len(scopes) == 0 {
		scopes = token.RoleScopes(role)
	}
	return k.MintClaims(t, token.New(token.DefaultIssuer, token.DefaultAudience, role, string(role)+"-"+account, workspace, account,
		scopes, time.Now(), time.Hour))
}

// MintClaims signs c with the key that may sign its role: the portal's
// for a client, the operators' otherwise.
func (k Keys) MintClaims(t testing.TB, c token.Claims) string {
	t.Helper()
	key := k.Ops
	if c.Role == token.RoleClient {
		key = k.Portal
	}
	s, err := token.Mint(key, c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Principal is a caller of a service's authorization table.
type Principal struct {
	Name               string
	Role               token.Role
	Workspace, Account string
	Anonymous          bool
	// OwnsData: the client whose account the table's data is (client-1).
	OwnsData bool
}

// Principals are the callers every service's authorization table tries,
// in this order, against the data of account client-1 of workspace ws.
func Principals(ws string) []Principal {
	return []Principal{
		{Name: "no token", Anonymous: true},
		{Name: "client of the account", Role: token.RoleClient, Workspace: ws, Account: "client-1", OwnsData: true},
		{Name: "client of another account", Role: token.RoleClient, Workspace: ws, Account: "client-2"},
		{Name: "client of another workspace", Role: token.RoleClient, Workspace: "agency-2", Account: "client-1"},
		{Name: "admin of the workspace", Role: token.RoleAdmin, Workspace: ws},
		{Name: "admin of another workspace", Role: token.RoleAdmin, Workspace: "agency-2"},
		{Name: "service of the workspace", Role: token.RoleService, Workspace: ws},
	}
}

// Token is the principal's token from k, "" for the anonymous one.
func (p Principal) Token(t testing.TB, k Keys) string {
	t.Helper()
	if p.Anonymous {
		return ""
	}
	return k.Mint(t, p.Role, p.Workspace, p.Account)
}

// NewOpsKey makes a fresh operators' key (admins and services), writes
// its JWKS to a file of the test's, and returns the key, to mint with,
// and the file, for a service's *_AUTH_JWKS_FILE. Unlike TestKeys, each
// call makes another key: a test of key rotation needs two.
func NewOpsKey(t testing.TB) (token.SigningKey, string) {
	t.Helper()
	k, err := token.GenerateKey(token.AlgEdDSA, "ops-1", []token.Role{token.RoleAdmin, token.RoleService})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := token.PublicJWKS(k)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	return k, path
}

// MintWith signs, with k, a token of role in workspace (and account, for
// a client) with every scope the role may hold, valid for an hour.
func MintWith(t testing.TB, k token.SigningKey, role token.Role, workspace, account string) string {
	t.Helper()
	s, err := token.Mint(k, token.New(token.DefaultIssuer, token.DefaultAudience, role, string(role)+"-"+account, workspace, account,
		token.RoleScopes(role), time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
