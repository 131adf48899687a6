package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/token"
)

// keygen runs `ledgerd keygen` as an operator would.
func keygen(t *testing.T, args ...string) {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), append([]string{"keygen"}, args...), func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatalf("ledgerd keygen %v: %v (%s)", args, err, errOut.String())
	}
}

// TestTokensFromKeys is the production profile: asymmetric keys from a
// JWKS file, each limited to the roles it may mint, rotated without a
// restart; the development secret is refused.
func TestTokensFromKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	jwks := filepath.Join(dir, "jwks.json")
	portalKey, opsKey := filepath.Join(dir, "portal.jwk"), filepath.Join(dir, "ops.jwk")
	keygen(t, "-alg", "EdDSA", "-kid", "portal-1", "-roles", "client", "-out", portalKey, "-jwks", jwks)
	keygen(t, "-alg", "ES256", "-kid", "ops-1", "-roles", "admin,service", "-out", opsKey, "-jwks", jwks)

	env := map[string]string{
		"LEDGER_AUTH": "token", "LEDGER_AUTH_JWKS_FILE": jwks, "LEDGER_AUTH_JWKS_RELOAD_INTERVAL": "100ms",
	}
	d := startLedgerd(t, []string{"--data-dir", t.TempDir()}, env)
	ctx := testCtx(t)
	mintWith := func(key string, args ...string) string {
		return mintToken(t, func(k string) string { return map[string]string{envSigningKeyFile: key}[k] }, args...)
	}
	svc := mintWith(opsKey, "-sub", "checkout", "-workspace", "acme", "-role", "service")
	alice := mintWith(portalKey, "-sub", "alice", "-workspace", "acme", "-account", "alice")
	if _, err := d.ledger.Credit(bearer(ctx, svc), &pb.CreditRequest{Workspace: "acme", Account: "alice", Amount: 10, IdempotencyKey: "k1"}); err != nil {
		t.Fatalf("service token of the ops key: %v", err)
	}
	if r := d.rest(t, "GET", "/v1/workspaces/acme/accounts/alice/balance", alice, ""); r.code != 200 || r.body["balance"] != "10" {
		t.Fatalf("client token of the portal key: %d %s", r.code, r.raw)
	}

	// The portal's key mints client tokens only: ledgerd token refuses,
	// and a token forged with that key anyway is refused by the server.
	var errOut bytes.Buffer
	err := run(context.Background(), []string{"token", "-key", portalKey, "-sub", "mallory", "-workspace", "acme", "-role", "admin"},
		func(string) string { return "" }, &bytes.Buffer{}, &errOut)
	if err == nil || !strings.Contains(err.Error(), "may not mint admin") {
		t.Fatalf("minting an admin token with the portal key: %v", err)
	}
	pk, err := token.LoadSigningKey(portalKey)
	if err != nil {
		t.Fatal(err)
	}
	forged := jwt.NewWithClaims(jwt.SigningMethodEdDSA, token.New(token.DefaultIssuer, token.DefaultAudience, token.RoleAdmin,
		"mallory", "acme", "", token.RoleScopes(token.RoleAdmin), time.Now(), time.Hour))
	forged.Header["kid"] = "portal-1"
	forgedTok, err := forged.SignedString(pk.Signer)
	if err != nil {
		t.Fatal(err)
	}
	if r := d.rest(t, "PATCH", "/v1/workspaces/acme/settings", forgedTok, `{"creditPaymentsEnabled":true}`); r.code != 401 {
		t.Fatalf("admin token forged with the portal key: %d %s", r.code, r.raw)
	}
	// A development token is refused once keys are configured.
	dev, err := token.MintDev([]byte(e2eSecret), token.New(token.DefaultIssuer, token.DefaultAudience, token.RoleService,
		"checkout", "acme", "", []string{token.ScopeLedgerWrite}, time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ledger.Credit(bearer(ctx, dev), &pb.CreditRequest{Workspace: "acme", Account: "alice", Amount: 10, IdempotencyKey: "k2"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("HS256 token with keys configured: %v", err)
	}

	// Rotation: a new portal key added to the JWKS verifies without a restart.
	nextKey := filepath.Join(dir, "portal-2.jwk")
	keygen(t, "-kid", "portal-2", "-roles", "client", "-out", nextKey, "-jwks", jwks)
	next := mintWith(nextKey, "-sub", "alice", "-workspace", "acme", "-account", "alice")
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := d.rest(t, "GET", "/v1/workspaces/acme/accounts/alice/balance", next, "")
		if r.code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("token of the rotated-in key still refused: %d %s", r.code, r.raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := d.rest(t, "GET", "/v1/workspaces/acme/accounts/alice/balance", alice, ""); r.code != 200 {
		t.Fatalf("the old key stopped verifying during rotation: %d %s", r.code, r.raw)
	}

	// Who did it comes from the token, never from the body; with four
	// eyes on, the submitter cannot decide its own request.
	ann := mintWith(opsKey, "-sub", "admin-ann", "-workspace", "acme", "-role", "admin")
	bob := mintWith(opsKey, "-sub", "admin-bob", "-workspace", "acme", "-role", "admin")
	if r := d.rest(t, "PATCH", "/v1/workspaces/acme/settings", ann, `{"creditPaymentsEnabled":true,"requireDistinctApprover":true}`); r.code != 200 || r.body["requireDistinctApprover"] != true {
		t.Fatalf("four eyes on: %d %s", r.code, r.raw)
	}
	submit := func(tok, key string) string {
		t.Helper()
		r := d.rest(t, "POST", "/v1/workspaces/acme/accounts/alice/creditRequests", tok,
			`{"amount":"5","paymentMethod":"PAYMENT_METHOD_BANK_TRANSFER","idempotencyKey":"`+key+`"}`)
		req, _ := r.body["request"].(map[string]any)
		if r.code != 200 || req == nil {
			t.Fatalf("submit: %d %s", r.code, r.raw)
		}
		return str(req["id"]) + "|" + str(req["submittedBy"])
	}
	byClient := strings.Split(submit(alice, "s1"), "|")
	if byClient[1] != "alice" {
		t.Fatalf("submittedBy = %q, want the client's subject", byClient[1])
	}
	r := d.rest(t, "POST", "/v1/workspaces/acme/creditRequests/"+byClient[0]+":decide", ann,
		`{"decision":"DECISION_ACCEPT","decidedBy":"someone-else","idempotencyKey":"d1"}`)
	if req, _ := r.body["request"].(map[string]any); r.code != 200 || req["decidedBy"] != "admin-ann" {
		t.Fatalf("decide: decidedBy must be the caller's subject: %d %s", r.code, r.raw)
	}
	byAnn := strings.Split(submit(ann, "s2"), "|")
	r = d.rest(t, "POST", "/v1/workspaces/acme/creditRequests/"+byAnn[0]+":decide", ann,
		`{"decision":"DECISION_ACCEPT","idempotencyKey":"d2"}`)
	if r.code != 400 || r.errorInfo(t)["reason"] != "APPROVER_IS_SUBMITTER" {
		t.Fatalf("the submitter deciding its own request: %d %s", r.code, r.raw)
	}
	r = d.rest(t, "POST", "/v1/workspaces/acme/creditRequests/"+byAnn[0]+":decide", bob,
		`{"decision":"DECISION_ACCEPT","idempotencyKey":"d2"}`)
	if req, _ := r.body["request"].(map[string]any); r.code != 200 || req["decidedBy"] != "admin-bob" || req["submittedBy"] != "admin-ann" {
		t.Fatalf("a second admin deciding: %d %s", r.code, r.raw)
	}
}
