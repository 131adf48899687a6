package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/type/money"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/checkout"
	"github.com/creditledger/creditledger/internal/consumer/consumertest"
	"github.com/creditledger/creditledger/internal/ledgertest"
	"github.com/creditledger/creditledger/internal/stripedev"
	"github.com/creditledger/creditledger/internal/tlstest"
	"github.com/creditledger/creditledger/internal/token"
	"github.com/creditledger/creditledger/ledgerclient"
)

// testClient has a connection pool of its own (.golangci.yml's forbidigo
// rule says why tests need one).
var testClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}

const ws = "agency-1"

// start runs the service in-process and waits for its "listening" log line.
func start(t *testing.T, env map[string]string) (string, func() error) {
	t.Helper()
	r := startRun(t, env)
	return r.URL, r.Stop
}

func startRun(t *testing.T, env map[string]string) *consumertest.Running {
	t.Helper()
	return consumertest.Start(t, run, []string{"--http-addr", "127.0.0.1:0"}, env)
}

// keys returns a fresh operators' key (admins and services) and its JWKS file.
func keys(t *testing.T) (token.SigningKey, string) {
	t.Helper()
	return consumertest.NewOpsKey(t)
}

func adminToken(t *testing.T, k token.SigningKey) string {
	t.Helper()
	return consumertest.MintWith(t, k, token.RoleAdmin, ws, "")
}

// do sends a JSON request with the bearer token tok ("" for none).
func do(t *testing.T, tok, method, url string, body, out any, headers ...string) int {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequestWithContext(t.Context(), method, url, rd)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if out != nil {
		_ = json.NewDecoder(res.Body).Decode(out)
	}
	return res.StatusCode
}

const stripeSecret = "whsec_main_test"

// createPackage creates the package "starter": 100 credits for USD 10.
func createPackage(t *testing.T, addr string) {
	t.Helper()
	c, err := ledgerclient.Dial(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if _, err := c.CreatePackage(t.Context(), &pb.CreatePackageRequest{
		Workspace: ws, PackageId: "starter",
		CreditPackage: &pb.CreditPackage{DisplayName: "Starter", Credits: 100, Price: &money.Money{CurrencyCode: "USD", Units: 10}},
	}); err != nil {
		t.Fatal(err)
	}
}

func TestServeAndRestartKeepsState(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	f.SetEnabled(t, ws, true)
	f.SetRate(t, ws, "USD", "10")
	f.Fund(t, ws, "client-1", 100)
	k, jwks := keys(t)
	secretFile := filepath.Join(t.TempDir(), "stripe-secret")
	if err := os.WriteFile(secretFile, []byte(stripeSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"LEDGER_ADDR": f.Addr, "CHECKOUT_DB": filepath.Join(t.TempDir(), "checkout.db"), "CHECKOUT_RECONCILE_INTERVAL": "1h",
		"CHECKOUT_AUTH_JWKS_FILE": jwks, "CHECKOUT_STRIPE_WEBHOOK_SECRET_FILE": secretFile,
	}
	admin := adminToken(t, k)

	url, stop := start(t, env)
	if code := do(t, "", "GET", url+"/v1/workspaces/"+ws+"/services", nil, nil); code != 401 {
		t.Errorf("without a token: HTTP %d, want 401", code)
	}
	if code := do(t, admin, "PUT", url+"/v1/workspaces/"+ws+"/services/logo", map[string]any{
		"name": "Logo", "price": checkout.Money{CurrencyCode: "USD", Units: 5}, "credit_eligible": true,
	}, nil); code != 200 {
		t.Fatalf("put service: %d", code)
	}
	var o checkout.Order
	if code := do(t, admin, "POST", url+"/v1/workspaces/"+ws+"/accounts/client-1/orders", map[string]string{"service_id": "logo"}, &o); code != 201 || o.Status != checkout.OrderHeld {
		t.Fatalf("buy: %d %+v", code, o)
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}

	url, _ = start(t, env)
	var got checkout.Order
	if code := do(t, admin, "GET", url+"/v1/workspaces/"+ws+"/orders/"+o.ID, nil, &got); code != 200 || got.Status != checkout.OrderHeld || got.HoldID != o.HoldID {
		t.Errorf("after restart: %d %+v", code, got)
	}
	if code := do(t, admin, "POST", url+"/v1/workspaces/"+ws+"/orders/"+o.ID+":confirm", nil, &got); code != 200 || got.Status != checkout.OrderConfirmed || got.TransactionID == "" {
		t.Errorf("confirm after restart: %d %+v", code, got)
	}
	var health map[string]string
	if code := do(t, "", "GET", url+"/healthz", nil, &health); code != 200 || health["status"] != "ok" {
		t.Errorf("healthz: %d %v", code, health)
	}
}

// TestCardPurchaseThroughStripe: with a Stripe key and API URL (the
// stand-in here), a card purchase answers the session's checkout_url;
// paying there credits the account once, through the signed webhook.
func TestCardPurchaseThroughStripe(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	createPackage(t, f.Addr)
	k, jwks := keys(t)
	admin := adminToken(t, k)
	sd, err := stripedev.New(stripedev.Config{SecretKey: "sk_test_cmd", WebhookSecret: stripeSecret})
	if err != nil {
		t.Fatal(err)
	}
	stripeSrv := httptest.NewServer(sd.Handler())
	t.Cleanup(stripeSrv.Close)
	keyFile := filepath.Join(t.TempDir(), "stripe-key")
	if err := os.WriteFile(keyFile, []byte("sk_test_cmd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"LEDGER_ADDR": f.Addr, "CHECKOUT_DB": filepath.Join(t.TempDir(), "checkout.db"), "CHECKOUT_RECONCILE_INTERVAL": "1h",
		"CHECKOUT_AUTH_JWKS_FILE": jwks, "CHECKOUT_STRIPE_WEBHOOK_SECRET": stripeSecret,
		"CHECKOUT_STRIPE_SECRET_KEY_FILE": keyFile, "CHECKOUT_STRIPE_API_URL": stripeSrv.URL,
	}
	r := startRun(t, env)
	url, logs := r.URL, r.Logs
	if err := sd.SetWebhookURL(url + "/webhooks/payments"); err != nil {
		t.Fatal(err)
	}
	// The log reaches logs just after the "listening" line was seen.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), `"card_payments":"stripe test"`); {
		if time.Now().After(deadline) {
			t.Fatalf("the listening line does not say card payments are on: %s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var p checkout.Purchase
	if code := do(t, admin, "POST", url+"/v1/workspaces/"+ws+"/accounts/client-1/credit-purchases",
		checkout.PurchaseInput{PackageID: "starter", Method: checkout.MethodStripe, SuccessURL: "https://portal.example/done"}, &p); code != 201 ||
		p.CheckoutURL != stripeSrv.URL+"/pay/"+p.StripeSessionID {
		t.Fatalf("start purchase: HTTP %d %+v", code, p)
	}
	if r := sd.Requests(); len(r) != 1 || r[0].Header.Get("Authorization") != "Bearer sk_test_cmd" {
		t.Fatalf("requests to Stripe: %+v", r)
	}

	// The old unsigned body, even with an admin token: refused.
	unsigned := checkout.PaymentConfirmation{Provider: "stripe", PaymentID: "pi_1", Workspace: ws, Account: "client-1", PackageID: "starter", PurchaseID: p.ID}
	if code := do(t, admin, "POST", url+"/webhooks/payments", unsigned, nil); code != 400 {
		t.Errorf("unsigned webhook: HTTP %d, want 400", code)
	}
	if bal, _ := f.Balance(t, ws, "client-1"); bal != 0 {
		t.Fatalf("credited %d by an unsigned webhook", bal)
	}

	form := strings.NewReader("action=pay")
	req, _ := http.NewRequestWithContext(t.Context(), "POST", p.CheckoutURL, form)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	noRedirect := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "https://portal.example/done" {
		t.Errorf("Pay: HTTP %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	if bal, ver := f.Balance(t, ws, "client-1"); bal != 100 || ver != 1 {
		t.Errorf("balance %d v%d, want 100 v1", bal, ver)
	}
}

// Without a Stripe secret the checkout does not start unless told what to
// do with webhooks; told "off", it refuses every one.
func TestUnsignedWebhooksAreRefusedByDefault(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	createPackage(t, f.Addr)
	_, jwks := keys(t)
	env := map[string]string{"LEDGER_ADDR": f.Addr, "CHECKOUT_DB": filepath.Join(t.TempDir(), "checkout.db"), "CHECKOUT_AUTH_JWKS_FILE": jwks}
	err := run(t.Context(), []string{"--http-addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "CHECKOUT_STRIPE_WEBHOOK_SECRET") {
		t.Fatalf("started without a webhook secret: %v", err)
	}

	env["CHECKOUT_WEBHOOKS"] = "off"
	url, _ := start(t, env)
	hook := checkout.PaymentConfirmation{Provider: "stripe", PaymentID: "pi_1", Workspace: ws, Account: "client-1", PackageID: "starter"}
	if code := do(t, "", "POST", url+"/webhooks/payments", hook, nil); code != 400 {
		t.Errorf("webhooks off: HTTP %d, want 400", code)
	}
	if bal, _ := f.Balance(t, ws, "client-1"); bal != 0 {
		t.Errorf("credited %d", bal)
	}
}

func TestDevelopmentModes(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	createPackage(t, f.Addr)
	env := map[string]string{
		"LEDGER_ADDR": f.Addr, "CHECKOUT_DB": filepath.Join(t.TempDir(), "checkout.db"),
		"CHECKOUT_AUTH": "none", "CHECKOUT_WEBHOOKS": "unsigned",
	}
	r := startRun(t, env)
	url, logs := r.URL, r.Logs
	if code := do(t, "", "GET", url+"/v1/workspaces/"+ws+"/services", nil, nil); code != 200 {
		t.Errorf("auth none: HTTP %d", code)
	}
	hook := checkout.PaymentConfirmation{Provider: "stripe", PaymentID: "pi_1", Workspace: ws, Account: "client-1", PackageID: "starter"}
	if code := do(t, "", "POST", url+"/webhooks/payments", hook, nil); code != 200 {
		t.Errorf("unsigned webhook in development: HTTP %d", code)
	}
	for _, want := range []string{"WITHOUT AUTHENTICATION", "UNSIGNED payment webhooks"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no warning %q in the log", want)
		}
	}
}

func TestJWKSIsReloaded(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	old, jwks := keys(t)
	env := map[string]string{
		"LEDGER_ADDR": f.Addr, "CHECKOUT_DB": filepath.Join(t.TempDir(), "checkout.db"), "CHECKOUT_WEBHOOKS": "off",
		"CHECKOUT_AUTH_JWKS_FILE": jwks, "CHECKOUT_AUTH_JWKS_RELOAD_INTERVAL": "100ms",
	}
	url, _ := start(t, env)
	next, err := token.GenerateKey(token.AlgES256, "ops-2", []token.Role{token.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	list := url + "/v1/workspaces/" + ws + "/services"
	if code := do(t, adminToken(t, next), "GET", list, nil, nil); code != 401 {
		t.Fatalf("unpublished key: HTTP %d", code)
	}
	doc, _ := token.PublicJWKS(next)
	if err := os.WriteFile(jwks+".tmp", doc, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(jwks+".tmp", jwks); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for do(t, adminToken(t, next), "GET", list, nil, nil) != 200 {
		if time.Now().After(deadline) {
			t.Fatal("the new key was never loaded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := do(t, adminToken(t, old), "GET", list, nil, nil); code != 401 {
		t.Errorf("retired key: HTTP %d", code)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	_, jwks := keys(t)
	base := func(kv ...string) map[string]string {
		m := map[string]string{"LEDGER_ADDR": "x:1", "CHECKOUT_AUTH_JWKS_FILE": jwks, "CHECKOUT_STRIPE_WEBHOOK_SECRET": stripeSecret}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no ledger address", nil, nil, "ledger address is required"},
		{"bad interval", nil, base("CHECKOUT_RECONCILE_INTERVAL", "-1s"), "reconcile interval"},
		{"unknown flag", []string{"--port", "1"}, base(), "flag provided but not defined"},
		{"secret flags are gone", []string{"--ledger-token", "t"}, base(), "flag provided but not defined"},
		{"webhook secret flag is gone", []string{"--webhook-secret", "t"}, base(), "flag provided but not defined"},
		{"no token keys", nil, base("CHECKOUT_AUTH_JWKS_FILE", ""), "CHECKOUT_AUTH_JWKS_FILE"},
		{"keys and a dev secret", nil, base("CHECKOUT_AUTH_SECRET", strings.Repeat("s", 32)), "both set"},
		{"short dev secret", nil, base("CHECKOUT_AUTH_JWKS_FILE", "", "CHECKOUT_AUTH_SECRET", "short"), "at least 32 bytes"},
		{"unknown auth mode", nil, base("CHECKOUT_AUTH", "maybe"), "must be token or none"},
		{"auth none on every interface", []string{"--http-addr", "0.0.0.0:8081"}, base("CHECKOUT_AUTH", "none"), "loopback"},
		{"unsigned webhooks on every interface", []string{"--http-addr", ":8081"}, base("CHECKOUT_WEBHOOKS", "unsigned"), "loopback"},
		{"unknown webhooks mode", nil, base("CHECKOUT_WEBHOOKS", "maybe"), "must be stripe, off or unsigned"},
		{"no stripe secret", nil, base("CHECKOUT_STRIPE_WEBHOOK_SECRET", ""), "CHECKOUT_STRIPE_WEBHOOK_SECRET"},
		{"old HMAC secret", nil, base("CHECKOUT_WEBHOOK_SECRET", "x"), "no longer accepted"},
		{"secret twice", nil, base("LEDGER_TOKEN", "a", "LEDGER_TOKEN_FILE", "/nonexistent"), "both set"},
		{"unreadable JWKS", nil, base("CHECKOUT_AUTH_JWKS_FILE", jwks+".none"), "CHECKOUT_AUTH_JWKS_FILE"},
		{"stripe API URL without a key", nil, base("CHECKOUT_STRIPE_API_URL", "http://127.0.0.1:12111"), "without CHECKOUT_STRIPE_SECRET_KEY"},
		{"stripe key with webhooks off", nil, base("CHECKOUT_STRIPE_SECRET_KEY", "sk_test_x", "CHECKOUT_WEBHOOKS", "off", "CHECKOUT_STRIPE_WEBHOOK_SECRET", ""), "never credited"},
		{"stripe key without a webhook secret", nil, base("CHECKOUT_STRIPE_SECRET_KEY", "sk_test_x", "CHECKOUT_WEBHOOKS", "unsigned", "CHECKOUT_STRIPE_WEBHOOK_SECRET", ""), "needs CHECKOUT_STRIPE_WEBHOOK_SECRET"},
		{"publishable key", nil, base("CHECKOUT_STRIPE_SECRET_KEY", "pk_test_x"), "secret (sk_test_"},
		{"live key to a stand-in", nil, base("CHECKOUT_STRIPE_SECRET_KEY", "sk_live_x", "CHECKOUT_STRIPE_API_URL", "http://127.0.0.1:12111"), "only sent to Stripe's API"},
		{"stripe key twice", nil, base("CHECKOUT_STRIPE_SECRET_KEY", "sk_test_x", "CHECKOUT_STRIPE_SECRET_KEY_FILE", "/nonexistent"), "both set"},
		{"stripe key flag is not a thing", []string{"--stripe-secret-key", "sk_test_x"}, base(), "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := run(t.Context(), tt.args, func(k string) string { return tt.env[k] }, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestLedgerOverMTLS: checkout reaches ledgerd over TLS with a CA file and
// presents its client certificate to an mTLS gRPC port.
func TestLedgerOverMTLS(t *testing.T) {
	t.Parallel()
	p := tlstest.New(t)
	srv := p.ServerConfig(t)
	srv.ClientAuth, srv.ClientCAs = tls.RequireAndVerifyClientCert, p.Pool
	f := ledgertest.Start(t, ledgertest.WithServerTLS(srv))
	f.SetEnabled(t, ws, true)
	f.SetRate(t, ws, "USD", "10")
	f.Fund(t, ws, "client-1", 100)
	k, jwks := keys(t)
	admin := adminToken(t, k)
	env := map[string]string{
		"LEDGER_ADDR": f.Addr, "CHECKOUT_DB": filepath.Join(t.TempDir(), "checkout.db"), "CHECKOUT_RECONCILE_INTERVAL": "1h",
		"CHECKOUT_AUTH_JWKS_FILE": jwks, "CHECKOUT_WEBHOOKS": "off",
		"LEDGER_CA_FILE": p.CAFile, "LEDGER_CLIENT_CERT_FILE": p.ClientCert, "LEDGER_CLIENT_KEY_FILE": p.ClientKey,
	}
	url, _ := start(t, env)
	if code := do(t, admin, "PUT", url+"/v1/workspaces/"+ws+"/services/logo", map[string]any{
		"name": "Logo", "price": checkout.Money{CurrencyCode: "USD", Units: 5}, "credit_eligible": true,
	}, nil); code != 200 {
		t.Fatalf("put service: %d", code)
	}
	var o checkout.Order
	if code := do(t, admin, "POST", url+"/v1/workspaces/"+ws+"/accounts/client-1/orders", map[string]any{"service_id": "logo", "confirm": true}, &o); code != 201 || o.Status != checkout.OrderConfirmed {
		t.Fatalf("buy over mTLS: %d %+v", code, o)
	}
	if n := len(f.Calls("CaptureHold")); n != 1 {
		t.Fatalf("ledger saw %d captures, want 1", n)
	}
}

// The running checkout follows the ledger's events with its own ledger
// token: an order whose hold expires is EXPIRED without anyone acting on
// it or the checkout asking about the hold.
func TestFollowsTheLedgersEvents(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t, ledgertest.WithAuth())
	ledgerTok := f.ServiceToken(t, ws)
	f.SetEnabled(t, ws, true)
	f.SetRate(t, ws, "USD", "10")
	f.Fund(t, ws, "client-1", 100)
	env := map[string]string{
		"LEDGER_ADDR": f.Addr, "LEDGER_TOKEN": ledgerTok, "CHECKOUT_DB": filepath.Join(t.TempDir(), "checkout.db"),
		"CHECKOUT_AUTH": "none", "CHECKOUT_WEBHOOKS": "off", "CHECKOUT_RECONCILE_INTERVAL": "1h", "CHECKOUT_HOLD_TTL": "1h",
	}
	r := startRun(t, env)
	url, logs := r.URL, r.Logs
	if code := do(t, "", "PUT", url+"/v1/workspaces/"+ws+"/services/logo", map[string]any{
		"name": "Logo", "price": checkout.Money{CurrencyCode: "USD", Units: 5}, "credit_eligible": true,
	}, nil); code != 200 {
		t.Fatalf("put service: %d", code)
	}
	var o checkout.Order
	if code := do(t, "", "POST", url+"/v1/workspaces/"+ws+"/accounts/client-1/orders", map[string]string{"service_id": "logo"}, &o); code != 201 || o.Status != checkout.OrderHeld {
		t.Fatalf("buy: %d %+v", code, o)
	}
	f.Advance(t, 2*time.Hour)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), `"msg":"ledger event applied"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no event applied; log:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var got checkout.Order // a read of the store: orders are not refreshed on read
	if code := do(t, "", "GET", url+"/v1/workspaces/"+ws+"/orders/"+o.ID, nil, &got); code != 200 || got.Status != checkout.OrderExpired {
		t.Errorf("order after its hold expired: %d %+v", code, got)
	}
	if n := len(f.Calls("GetHold")); n != 0 {
		t.Errorf("%d GetHold calls", n)
	}
	watches := f.Calls("WatchEvents")
	if len(watches) == 0 || watches[0].Authorization != "Bearer "+ledgerTok {
		t.Errorf("watches %+v, want the checkout's ledger token", watches)
	}
}
