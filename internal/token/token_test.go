package token

import (
	"crypto/ed25519"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

type fixture struct {
	portal, ops SigningKey // portal: client only; ops: admin and service
	verifier    *Verifier
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	portal, err := GenerateKey(AlgEdDSA, "portal-1", []Role{RoleClient})
	if err != nil {
		t.Fatal(err)
	}
	ops, err := GenerateKey(AlgES256, "ops-1", []Role{RoleAdmin, RoleService})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := PublicJWKS(portal, ops)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := ParseJWKS(doc)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(VerifierOptions{Keys: ks, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return fixture{portal: portal, ops: ops, verifier: v}
}

func clientClaims() Claims {
	return New(DefaultIssuer, DefaultAudience, RoleClient, "client-7", "ws1", "acct-7",
		[]string{ScopeLedgerRead, ScopeRequestsSubmit}, testNow.Add(-time.Minute), time.Hour)
}

func serviceClaims() Claims {
	return New(DefaultIssuer, DefaultAudience, RoleService, "checkout", "ws1", "",
		[]string{ScopeLedgerWrite, ScopeLedgerRead}, testNow.Add(-time.Minute), time.Hour)
}

func mint(t testing.TB, k SigningKey, c Claims) string {
	t.Helper()
	tok, err := Mint(k, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// signRaw signs an arbitrary payload with k, bypassing every check of Mint:
// what an attacker holding that key could produce.
func signRaw(t testing.TB, k SigningKey, header map[string]any, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	h := `{"alg":"` + k.Alg + `","kid":"` + k.ID + `","typ":"JWT"}`
	if header != nil {
		h = mustJSON(t, header)
	}
	signing := enc([]byte(h)) + "." + enc([]byte(payload))
	m := jwt.GetSigningMethod(k.Alg)
	sig, err := m.Sign(signing, k.Signer)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + enc(sig)
}

func mustJSON(t testing.TB, v map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{})
	tok.Header = v
	s, err := tok.SigningString()
	if err != nil {
		t.Fatal(err)
	}
	h, _ := base64.RawURLEncoding.DecodeString(strings.Split(s, ".")[0])
	return string(h)
}

func TestVerifyAcceptsWhatTheRightKeyMints(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	got, err := f.verifier.Verify(mint(t, f.portal, clientClaims()))
	if err != nil {
		t.Fatalf("client token from the portal key refused: %v", err)
	}
	if got.Subject != "client-7" || got.Workspace != "ws1" || got.Account != "acct-7" || got.Role != RoleClient {
		t.Errorf("claims = %+v", got)
	}
	if _, err := f.verifier.Verify(mint(t, f.ops, serviceClaims())); err != nil {
		t.Fatalf("service token from the ops key refused: %v", err)
	}
}

func TestVerifyRefusesAttacks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	other, err := GenerateKey(AlgEdDSA, "portal-1", []Role{RoleClient, RoleAdmin, RoleService}) // same kid, other key
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	good := mint(t, f.portal, clientClaims())
	parts := strings.Split(good, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])

	with := func(edit func(*Claims)) Claims {
		c := clientClaims()
		edit(&c)
		return c
	}
	adminByPortal := New(DefaultIssuer, DefaultAudience, RoleAdmin, "mallory", "ws1", "",
		[]string{ScopeRequestsDecide}, testNow, time.Hour)
	// The role's scopes are checked even when the key may mint the role.
	clientWithWrite := with(func(c *Claims) { c.Scopes = append(c.Scopes, ScopeLedgerWrite) })

	ed := f.portal.Signer.(ed25519.PrivateKey)
	cases := map[string]string{
		"alg none":          enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".",
		"alg none with kid": enc([]byte(`{"alg":"none","kid":"portal-1"}`)) + "." + parts[1] + ".",
		"HS256 keyed by the public key (alg confusion)": func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, clientClaims())
			tok.Header["kid"] = "portal-1"
			s, err := tok.SignedString([]byte(ed.Public().(ed25519.PublicKey)))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}(),
		"wrong key under a known kid": mint(t, other, clientClaims()),
		"unknown kid":                 signRaw(t, SigningKey{ID: "nope", Alg: AlgEdDSA, Signer: ed}, nil, string(payload)),
		"alg of the header differs from the key's": signRaw(t, f.portal,
			map[string]any{"alg": AlgES256, "kid": "portal-1"}, string(payload)),
		"tampered payload":                parts[0] + "." + enc([]byte(strings.Replace(string(payload), "acct-7", "acct-8", 1))) + "." + parts[2],
		"wrong audience":                  mint(t, f.portal, with(func(c *Claims) { c.Audience = jwt.ClaimStrings{"someone-else"} })),
		"no audience":                     signRaw(t, f.portal, nil, strings.Replace(string(payload), `"aud":["creditledger"],`, "", 1)),
		"wrong issuer":                    mint(t, f.portal, with(func(c *Claims) { c.Issuer = "evil" })),
		"expired":                         mint(t, f.portal, New(DefaultIssuer, DefaultAudience, RoleClient, "c", "ws1", "a", []string{ScopeLedgerRead}, testNow.Add(-3*time.Hour), 2*time.Hour)),
		"not yet valid":                   mint(t, f.portal, with(func(c *Claims) { c.NotBefore = jwt.NewNumericDate(testNow.Add(10 * time.Minute)) })),
		"issued in the future":            mint(t, f.portal, New(DefaultIssuer, DefaultAudience, RoleClient, "c", "ws1", "a", []string{ScopeLedgerRead}, testNow.Add(10*time.Minute), time.Hour)),
		"too long-lived":                  mint(t, f.portal, New(DefaultIssuer, DefaultAudience, RoleClient, "c", "ws1", "a", []string{ScopeLedgerRead}, testNow, 25*time.Hour)),
		"no exp":                          signRaw(t, f.portal, nil, `{"iss":"creditledger","sub":"c","aud":"creditledger","iat":`+unix(testNow)+`,"workspace":"ws1","account":"a","role":"client","scopes":["ledger:read"]}`),
		"no iat":                          signRaw(t, f.portal, nil, `{"iss":"creditledger","sub":"c","aud":"creditledger","exp":`+unix(testNow.Add(time.Hour))+`,"workspace":"ws1","account":"a","role":"client","scopes":["ledger:read"]}`),
		"case-folded workspace":           signRaw(t, f.portal, nil, strings.Replace(string(payload), `"workspace":"ws1"`, `"workspace":"ws1","Workspace":"ws2"`, 1)),
		"case-folded role":                signRaw(t, f.portal, nil, strings.Replace(string(payload), `"role":"client"`, `"ROLE":"admin"`, 1)),
		"duplicate account":               signRaw(t, f.portal, nil, strings.Replace(string(payload), `"account":"acct-7"`, `"account":"acct-7","account":"acct-8"`, 1)),
		"portal key mints an admin":       signRaw(t, f.portal, nil, claimsJSON(t, adminByPortal)),
		"client token with a write scope": signRaw(t, f.portal, nil, claimsJSON(t, clientWithWrite)),
		"client token without account":    signRaw(t, f.portal, nil, strings.Replace(string(payload), `"account":"acct-7",`, "", 1)),
		"HS256 while no secret is set": func() string {
			s, err := MintDev([]byte(strings.Repeat("k", 32)), clientClaims())
			if err != nil {
				t.Fatal(err)
			}
			return s
		}(),
		"garbage":   "not.a.token",
		"too long":  strings.Repeat("a", MaxTokenLength+1),
		"empty":     "",
		"two parts": parts[0] + "." + parts[1],
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := f.verifier.Verify(tok)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			t.Logf("refused: %v", err)
		})
	}
}

func claimsJSON(t testing.TB, c Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodNone, c)
	s, err := tok.SigningString()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := base64.RawURLEncoding.DecodeString(strings.Split(s, ".")[1])
	return string(p)
}

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

func TestMintRefusesWhatTheKeyMayNotMint(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if _, err := Mint(f.portal, serviceClaims()); err == nil {
		t.Error("the portal key minted a service token")
	}
	bad := clientClaims()
	bad.Account = ""
	if _, err := Mint(f.portal, bad); err == nil {
		t.Error("a client token without an account was minted")
	}
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	next, err := GenerateKey(AlgEdDSA, "portal-2", []Role{RoleClient})
	if err != nil {
		t.Fatal(err)
	}
	oldTok, newTok := mint(t, f.portal, clientClaims()), mint(t, next, clientClaims())
	if _, err := f.verifier.Verify(newTok); err == nil {
		t.Fatal("a key not yet published verified")
	}
	both, err := PublicJWKS(f.portal, next, f.ops)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := ParseJWKS(both)
	if err != nil {
		t.Fatal(err)
	}
	f.verifier.SetKeys(ks)
	for _, tok := range []string{oldTok, newTok} {
		if _, err := f.verifier.Verify(tok); err != nil {
			t.Errorf("during rotation: %v", err)
		}
	}
	onlyNew, _ := PublicJWKS(next, f.ops)
	ks, err = ParseJWKS(onlyNew)
	if err != nil {
		t.Fatal(err)
	}
	f.verifier.SetKeys(ks)
	if _, err := f.verifier.Verify(oldTok); err == nil {
		t.Error("a retired key still verifies")
	}
	if _, err := f.verifier.Verify(newTok); err != nil {
		t.Errorf("after rotation: %v", err)
	}
}

func TestSigningKeyRoundTrip(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{AlgEdDSA, AlgES256} {
		k, err := GenerateKey(alg, "k-"+alg, []Role{RoleService})
		if err != nil {
			t.Fatal(err)
		}
		priv, err := k.PrivateJWK()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseSigningKey(priv)
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		pub, _ := PublicJWKS(k)
		ks, err := ParseJWKS(pub)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := NewVerifier(VerifierOptions{Keys: ks, Now: func() time.Time { return testNow }})
		if _, err := v.Verify(mint(t, back, serviceClaims())); err != nil {
			t.Errorf("%s: a token of the reloaded key: %v", alg, err)
		}
		if _, err := ParseJWKS([]byte(`{"keys":[` + string(priv) + `]}`)); err == nil {
			t.Errorf("%s: a key set holding a private key was accepted", alg)
		}
	}
}

func TestParseJWKSRefusesBadKeys(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"empty":         `{"keys":[]}`,
		"no roles":      `{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"a","x":"` + strings.Repeat("A", 43) + `"}]}`,
		"unknown role":  `{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"a","x":"` + strings.Repeat("A", 43) + `","creditledger_roles":["root"]}]}`,
		"symmetric":     `{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"HS256","kid":"a","creditledger_roles":["client"]}]}`,
		"short x":       `{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"a","x":"AAAA","creditledger_roles":["client"]}]}`,
		"off the curve": `{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","kid":"a","x":"` + strings.Repeat("A", 43) + `","y":"` + strings.Repeat("A", 43) + `","creditledger_roles":["client"]}]}`,
		"no kid":        `{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","x":"` + strings.Repeat("A", 43) + `","creditledger_roles":["client"]}]}`,
		"not json":      `{`,
	}
	for name, doc := range cases {
		if _, err := ParseJWKS([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDevSecret(t *testing.T) {
	t.Parallel()
	secret := []byte(strings.Repeat("s", 32))
	v, err := NewVerifier(VerifierOptions{DevSecret: secret, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := MintDev(secret, serviceClaims())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(tok); err != nil {
		t.Errorf("development token refused: %v", err)
	}
	if _, err := NewVerifier(VerifierOptions{DevSecret: []byte("short")}); err == nil {
		t.Error("a short secret was accepted")
	}
	if _, err := NewVerifier(VerifierOptions{}); err == nil {
		t.Error("a verifier without keys was made")
	}
}

func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	f.Add(mint(f, fx.portal, clientClaims()))
	f.Add("e30.e30.")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := fx.verifier.Verify(tok)
		if err == nil && (c.Subject == "" || c.Workspace == "" || c.Role != RoleClient && c.Role != RoleAdmin && c.Role != RoleService) {
			t.Fatalf("incoherent claims accepted: %+v", c)
		}
	})
}
