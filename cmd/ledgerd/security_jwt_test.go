package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/token"
)

// signRaw signs header and payload, both given as JSON text, exactly as
// written: duplicate or oddly spelt members reach the server untouched.
func signRaw(tb testing.TB, header, payload string, m jwt.SigningMethod, key any) string {
	tb.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	signing := enc([]byte(header)) + "." + enc([]byte(payload))
	if m == jwt.SigningMethodNone {
		return signing + "."
	}
	sig, err := m.Sign(signing, key)
	if err != nil {
		tb.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return signing + "." + enc(sig)
}

// claimsJSON is a service token's claims for ws, valid now unless edit
// changes them; edit gets the members as a map.
func claimsJSON(tb testing.TB, ws string, edit func(map[string]any)) string {
	tb.Helper()
	now := time.Now().Unix()
	c := map[string]any{
		"iss": token.DefaultIssuer, "aud": token.DefaultAudience, "sub": "checkout",
		"iat": now, "nbf": now, "exp": now + 3600,
		"workspace": ws, "role": "service", "scopes": token.RoleScopes(token.RoleService),
	}
	if edit != nil {
		edit(c)
	}
	buf, err := json.Marshal(c)
	if err != nil {
		tb.Fatal(err)
	}
	return string(buf)
}

func hdr(alg, kid string) string {
	if kid == "" {
		return fmt.Sprintf(`{"alg":%q,"typ":"JWT"}`, alg)
	}
	return fmt.Sprintf(`{"alg":%q,"typ":"JWT","kid":%q}`, alg, kid)
}

// doAuth is do with the Authorization header given whole.
func (s *secLedgerd) doAuth(tb testing.TB, verb, path, auth, body string) rawReply {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, verb, s.base+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", verb, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		tb.Errorf("%s %s: 401 without a Bearer challenge", verb, path)
	}
	return rawReply{code: resp.StatusCode, ct: resp.Header.Get("Content-Type"), body: raw}
}

// metadataAuth sends auth as the gRPC authorization metadata, as is.
func metadataAuth(ctx context.Context, auth string) context.Context {
	if auth == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", auth)
}

// TestSecurityJWTAttacks sends forged, broken and over-reaching tokens to
// a running ledgerd (keys from a JWKS file, no development secret): every
// one is 401 over REST and UNAUTHENTICATED over gRPC, on a write and on a
// read, and the ledger is unchanged afterwards.
func TestSecurityJWTAttacks(t *testing.T) {
	t.Parallel()
	keys := newSecKeys(t)
	s := startSecLedgerd(t, keys, "")
	const ws = "sec-jwt"
	ops, portal := keys.ops, keys.portal
	es, ed := jwt.SigningMethodES256, jwt.SigningMethodEdDSA
	valid := func(edit func(map[string]any)) string { return claimsJSON(t, ws, edit) }
	clientClaims := func(edit func(map[string]any)) string {
		return claimsJSON(t, ws, func(c map[string]any) {
			c["role"], c["sub"], c["account"], c["scopes"] = "client", "alice", "alice", token.RoleScopes(token.RoleClient)
			if edit != nil {
				edit(c)
			}
		})
	}
	now := time.Now().Unix()

	// The raw builder is right: the same path with nothing wrong is accepted.
	svc := signRaw(t, hdr("ES256", "ops-1"), valid(nil), es, ops.Signer)
	if r := s.do(t, http.MethodPost, "/v1/workspaces/"+ws+"/accounts/alice:credit", svc, "application/json",
		[]byte(`{"amount":"100","idempotencyKey":"jwt-control"}`)); r.code != http.StatusOK {
		t.Fatalf("control: a correctly signed service token is refused: HTTP %d %s", r.code, r.body)
	}
	if r := s.do(t, http.MethodGet, "/v1/workspaces/"+ws+"/accounts/alice/balance",
		signRaw(t, hdr("EdDSA", "portal-1"), clientClaims(nil), ed, portal.Signer), "", nil); r.code != http.StatusOK {
		t.Fatalf("control: a correctly signed client token is refused: HTTP %d %s", r.code, r.body)
	}

	otherES, err := token.GenerateKey(token.AlgES256, "ops-1", []token.Role{token.RoleAdmin, token.RoleService})
	if err != nil {
		t.Fatal(err)
	}
	otherED, err := token.GenerateKey(token.AlgEdDSA, "ops-1", []token.Role{token.RoleService})
	if err != nil {
		t.Fatal(err)
	}
	unknown, err := token.GenerateKey(token.AlgES256, "ops-9", []token.Role{token.RoleService})
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := os.ReadFile(keys.jwks)
	if err != nil {
		t.Fatal(err)
	}
	opsPub := ops.Signer.Public()
	pkix, err := x509.MarshalPKIXPublicKey(opsPub)
	if err != nil {
		t.Fatal(err)
	}
	rawPub, err := opsPub.(*ecdsa.PublicKey).Bytes()
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct{ name, tok string }{
		{"alg none", signRaw(t, hdr("none", "ops-1"), valid(nil), jwt.SigningMethodNone, nil)},
		{"alg None", signRaw(t, hdr("None", "ops-1"), valid(nil), jwt.SigningMethodNone, nil)},
		{"alg none without kid", signRaw(t, hdr("none", ""), valid(nil), jwt.SigningMethodNone, nil)},
		{"alg none with the real signature kept", signRaw(t, hdr("none", "ops-1"), valid(nil), jwt.SigningMethodNone, nil) +
			svc[strings.LastIndexByte(svc, '.')+1:]},
		{"HS256 keyed with the JWKS file", signRaw(t, hdr("HS256", "ops-1"), valid(nil), jwt.SigningMethodHS256, jwks)},
		{"HS256 keyed with the PKIX public key", signRaw(t, hdr("HS256", "ops-1"), valid(nil), jwt.SigningMethodHS256, pkix)},
		{"HS256 keyed with the raw public point", signRaw(t, hdr("HS256", "ops-1"), valid(nil), jwt.SigningMethodHS256, rawPub)},
		{"HS256 keyed with the JWK x coordinate", signRaw(t, hdr("HS256", "ops-1"), valid(nil), jwt.SigningMethodHS256,
			[]byte(base64.RawURLEncoding.EncodeToString(rawPub[1:33])))},
		{"HS256 without kid", signRaw(t, hdr("HS256", ""), valid(nil), jwt.SigningMethodHS256, pkix)},
		{"wrong key under a known kid", signRaw(t, hdr("ES256", "ops-1"), valid(nil), es, otherES.Signer)},
		{"EdDSA under the kid of an ES256 key", signRaw(t, hdr("EdDSA", "ops-1"), valid(nil), ed, otherED.Signer)},
		{"unknown kid", signRaw(t, hdr("ES256", "ops-9"), valid(nil), es, unknown.Signer)},
		{"no kid", signRaw(t, hdr("ES256", ""), valid(nil), es, ops.Signer)},
		{"signature of another token", svc[:strings.LastIndexByte(svc, '.')-1] + "A" + svc[strings.LastIndexByte(svc, '.'):]},
		{"payload changed after signing", strings.Split(svc, ".")[0] + "." +
			base64.RawURLEncoding.EncodeToString([]byte(valid(func(c map[string]any) { c["sub"] = "mallory" }))) + "." +
			strings.Split(svc, ".")[2]},
		{"wrong aud", signRaw(t, hdr("ES256", "ops-1"), valid(func(c map[string]any) { c["aud"] = "someone-else" }), es, ops.Signer)},
		{"no aud", signRaw(t, hdr("ES256", "ops-1"), valid(func(c map[string]any) { delete(c, "aud") }), es, ops.Signer)},
		{"wrong iss", signRaw(t, hdr("ES256", "ops-1"), valid(func(c map[string]any) { c["iss"] = "evil" }), es, ops.Signer)},
		{"expired", signRaw(t, hdr("ES256", "ops-1"), valid(func(c map[string]any) {
			c["iat"], c["nbf"], c["exp"] = now-7200, now-7200, now-3600
		}), es, ops.Signer)},
		{"no exp", signRaw(t, hdr("ES256", "ops-1"), valid(func(c map[string]any) { delete(c, "exp") }), es, ops.Signer)},
		{"not yet valid (nbf)", signRaw(t, hdr("ES256", "ops-1"), valid(func(c map[string]any) {
			c["nbf"], c["exp"] = now+3600, now+7200
		}), es, ops.Signer)},
		{"iat in the future", signRaw(t, hdr("ES256", "ops-1"), valid(func(c map[string]any) {
			c["iat"], c["exp"] = now+3600, now+7200
		}), es, ops.Signer)},
		{"no iat", signRaw(t, hdr("ES256", "ops-1"), valid(func(c map[string]any) { delete(c, "iat") }), es, ops.Signer)},
		{"too long-lived (25h)", signRaw(t, hdr("ES256", "ops-1"), valid(func(c map[string]any) { c["exp"] = now + 25*3600 }), es, ops.Signer)},
		{"too long-lived (10 years)", signRaw(t, hdr("ES256", "ops-1"), valid(func(c map[string]any) { c["exp"] = now + 10*365*86400 }), es, ops.Signer)},
		{"case-folded Workspace alongside workspace", signRaw(t, hdr("ES256", "ops-1"),
			strings.TrimSuffix(valid(nil), "}")+`,"Workspace":"sec-jwt-other"}`, es, ops.Signer)},
		{"case-folded ROLE alongside role (client)", signRaw(t, hdr("EdDSA", "portal-1"),
			strings.TrimSuffix(clientClaims(nil), "}")+`,"ROLE":"service"}`, ed, portal.Signer)},
		{"duplicate workspace claim", signRaw(t, hdr("ES256", "ops-1"),
			strings.TrimSuffix(valid(nil), "}")+`,"workspace":"sec-jwt-other"}`, es, ops.Signer)},
		{"duplicate role claim (client then service)", signRaw(t, hdr("EdDSA", "portal-1"),
			strings.TrimSuffix(clientClaims(nil), "}")+`,"role":"service"}`, ed, portal.Signer)},
		{"portal key mints an admin token", signRaw(t, hdr("EdDSA", "portal-1"), valid(func(c map[string]any) {
			c["role"], c["scopes"] = "admin", token.RoleScopes(token.RoleAdmin)
		}), ed, portal.Signer)},
		{"portal key mints a service token", signRaw(t, hdr("EdDSA", "portal-1"), valid(nil), ed, portal.Signer)},
		{"client token with the write scope", signRaw(t, hdr("EdDSA", "portal-1"), clientClaims(func(c map[string]any) {
			c["scopes"] = []string{token.ScopeLedgerWrite, token.ScopeLedgerRead}
		}), ed, portal.Signer)},
		{"client token without an account", signRaw(t, hdr("EdDSA", "portal-1"), clientClaims(func(c map[string]any) {
			delete(c, "account")
		}), ed, portal.Signer)},
		{"service token naming an account", signRaw(t, hdr("ES256", "ops-1"), valid(func(c map[string]any) { c["account"] = "alice" }), es, ops.Signer)},
		{"unknown role", signRaw(t, hdr("ES256", "ops-1"), valid(func(c map[string]any) { c["role"] = "root" }), es, ops.Signer)},
		{"no scopes", signRaw(t, hdr("ES256", "ops-1"), valid(func(c map[string]any) { delete(c, "scopes") }), es, ops.Signer)},
		{"scopes as a string", signRaw(t, hdr("ES256", "ops-1"), valid(func(c map[string]any) { c["scopes"] = "ledger:write" }), es, ops.Signer)},
		{"no sub", signRaw(t, hdr("ES256", "ops-1"), valid(func(c map[string]any) { delete(c, "sub") }), es, ops.Signer)},
		{"claims not an object", signRaw(t, hdr("ES256", "ops-1"), `["workspace","sec-jwt"]`, es, ops.Signer)},
		{"longer than 4096 bytes", signRaw(t, hdr("ES256", "ops-1"), valid(func(c map[string]any) { c["jti"] = strings.Repeat("x", 5000) }), es, ops.Signer)},
		{"garbage", "not.a.jwt"},
		{"two parts", strings.Join(strings.Split(svc, ".")[:2], ".")},
		{"empty", ""},
	}

	ctx := testCtx(t)
	// balance runs at the start and in a cleanup, after every parallel
	// case: it takes a context of its own.
	balance := func() string {
		t.Helper()
		bctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		b, err := s.ledger.ListTransactions(bearer(bctx, svc), &pb.ListTransactionsRequest{Workspace: ws, Account: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(len(b.GetTransactions()), b.GetTransactions()[0].GetBalanceAfter())
	}
	before := balance()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			key := fmt.Sprintf("jwt-attack-%d", i)
			auth := "Bearer " + tc.tok
			restChecks := []struct{ verb, path, body string }{
				{http.MethodPost, "/v1/workspaces/" + ws + "/accounts/alice:credit", `{"amount":"5","idempotencyKey":"` + key + `"}`},
				{http.MethodGet, "/v1/workspaces/" + ws + "/accounts/alice/balance", ""},
			}
			for _, c := range restChecks {
				r := s.doAuth(t, c.verb, c.path, auth, c.body)
				if r.code != http.StatusUnauthorized {
					t.Errorf("REST %s %s: HTTP %d %s, want 401", c.verb, c.path, r.code, r.body)
					continue
				}
				if code, err := statusShape(r); err != nil || code != codes.Unauthenticated {
					t.Errorf("REST %s %s: %v %s", c.verb, c.path, err, r.body)
				}
			}
			md := metadataAuth(testCtx(t), auth) // the parent's may expire while parallel cases wait
			_, err := s.ledger.Credit(md, &pb.CreditRequest{Workspace: ws, Account: "alice", Amount: 5, IdempotencyKey: key})
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("gRPC Credit: %v, want UNAUTHENTICATED", err)
			}
			_, err = s.ledger.GetBalance(md, &pb.GetBalanceRequest{Workspace: ws, Account: "alice"})
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("gRPC GetBalance: %v, want UNAUTHENTICATED", err)
			}
		})
	}
	t.Cleanup(func() {
		if after := balance(); after != before {
			t.Errorf("the ledger changed under refused tokens: %s → %s", before, after)
		}
	})

	// Other ways of not presenting a bearer token.
	for _, auth := range []string{
		"", "Bearer", "Bearer ", "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:admin")),
		"bearer" + svc, "Token " + svc, "Bearer " + svc + " " + svc, "Bearer  " + svc + "x",
	} {
		r := s.doAuth(t, http.MethodGet, "/v1/workspaces/"+ws+"/accounts/alice/balance", auth, "")
		if r.code != http.StatusUnauthorized {
			t.Errorf("Authorization %q: HTTP %d %s, want 401", auth, r.code, r.body)
		}
		_, err := s.ledger.GetBalance(metadataAuth(ctx, auth), &pb.GetBalanceRequest{Workspace: ws, Account: "alice"})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("gRPC authorization %q: %v, want UNAUTHENTICATED", auth, err)
		}
	}
}
