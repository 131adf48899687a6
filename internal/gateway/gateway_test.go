package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/creditledger/creditledger/internal/grpcserver"
	"github.com/creditledger/creditledger/internal/grpcserver/fakestore"
	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/creditledger/creditledger/internal/token"
)

// testClient has a connection pool of its own (.golangci.yml's forbidigo
// rule says why tests need one).
var testClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}

var secret = []byte("0123456789abcdef0123456789abcdef")

type env struct {
	url     string
	metrics string // the metrics listener's base URL
	store   *fakestore.Store
	gw      *Handler
}

// start runs the gRPC server and the gateway on real loopback sockets over
// a fake store, the way ledgerd wires them.
func start(t *testing.T, auth grpcserver.Authorizer, warning string) *env {
	t.Helper()
	store := fakestore.New()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	obs, err := grpcserver.NewObserver(reg)
	if err != nil {
		t.Fatal(err)
	}
	log := zap.NewNop()
	srv, err := grpcserver.NewServer(ledger.NewService(store, ledger.WithObserver(obs)),
		grpcserver.Options{Logger: log, Registerer: reg, Authorizer: auth})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	gw, err := New(context.Background(), Options{
		GRPCAddr: lis.Addr().String(), Logger: log, Ping: store.Ping, Warning: warning, MaxBodyBytes: 4096,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Close() })
	hs := httptest.NewServer(gw)
	t.Cleanup(hs.Close)
	ms := httptest.NewServer(NewMetricsHandler(reg, log))
	t.Cleanup(ms.Close)
	return &env{url: hs.URL, metrics: ms.URL, store: store, gw: gw}
}

type reply struct {
	code   int
	header http.Header
	body   map[string]any
	raw    string
}

func do(t *testing.T, method, url, body string, hdr map[string]string) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{code: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("body %q: %v", raw, err)
		}
	}
	return r
}

// detail returns the first detail of the given @type in an error body.
func detail(t *testing.T, body map[string]any, typ string) map[string]any {
	t.Helper()
	ds, _ := body["details"].([]any)
	for _, d := range ds {
		if m, _ := d.(map[string]any); m["@type"] == "type.googleapis.com/"+typ {
			return m
		}
	}
	t.Fatalf("no %s detail in %v", typ, body)
	return nil
}

func TestRESTRoundTripAndErrors(t *testing.T) {
	t.Parallel()
	e := start(t, grpcserver.NoAuth{}, "")
	base := e.url + "/v1/workspaces/acme/accounts/alice"

	r := do(t, "POST", base+":credit", `{"amount":"100","idempotencyKey":"k1","reference":"stripe:pi_1"}`, map[string]string{"X-Request-Id": "rest-1"})
	if r.code != 200 || r.body["balance"] != "100" || r.body["version"] != "1" {
		t.Fatalf("credit: %d %s", r.code, r.raw)
	}
	if tx, _ := r.body["transaction"].(map[string]any); tx["type"] != "TRANSACTION_TYPE_IN" || tx["balanceAfter"] != "100" {
		t.Errorf("transaction JSON = %v", tx)
	}
	if _, present := r.body["replayed"]; present {
		t.Error("unpopulated fields must be omitted")
	}
	if got := r.header.Values("X-Request-Id"); len(got) != 1 || got[0] != "rest-1" {
		t.Errorf("X-Request-Id = %v", got)
	}
	if r.header.Get("Grpc-Metadata-X-Request-Id") != "" || r.header.Get("Grpc-Metadata-Content-Type") != "" {
		t.Errorf("gRPC metadata leaked into HTTP headers: %v", r.header)
	}

	r = do(t, "GET", base+"/balance", "", nil)
	if r.code != 200 || r.body["balance"] != "100" || r.body["creditPaymentsEnabled"] != nil {
		t.Fatalf("balance: %d %s", r.code, r.raw)
	}
	if r.header.Get("X-Request-Id") == "" {
		t.Error("a request id is assigned when none is sent")
	}

	// Credit payments are off by default: the debit is refused with the
	// gateway's JSON status carrying ErrorInfo.
	r = do(t, "POST", base+":debit", `{"amount":"5","idempotencyKey":"d1"}`, nil)
	if r.code != 400 || r.body["code"] != float64(9) {
		t.Fatalf("debit while disabled: %d %s", r.code, r.raw)
	}
	if ei := detail(t, r.body, "google.rpc.ErrorInfo"); ei["reason"] != "CREDIT_PAYMENTS_DISABLED" || ei["domain"] != "creditledger" {
		t.Errorf("ErrorInfo = %v", ei)
	}

	// PATCH with the body only: grpc-gateway derives the field mask.
	r = do(t, "PATCH", e.url+"/v1/workspaces/acme/settings", `{"creditPaymentsEnabled":true}`, nil)
	if r.code != 200 || r.body["creditPaymentsEnabled"] != true {
		t.Fatalf("settings: %d %s", r.code, r.raw)
	}
	r = do(t, "POST", base+":debit", `{"amount":"500","idempotencyKey":"d2"}`, nil)
	t.Logf("INSUFFICIENT_CREDITS body: %s", r.raw)
	ei := detail(t, r.body, "google.rpc.ErrorInfo")
	md, _ := ei["metadata"].(map[string]any)
	if r.code != 400 || ei["reason"] != "INSUFFICIENT_CREDITS" || md["balance"] != "100" || md["required"] != "500" {
		t.Fatalf("insufficient: %d %s", r.code, r.raw)
	}

	// Validation errors carry BadRequest field violations.
	r = do(t, "POST", base+":credit", `{"amount":"-1"}`, nil)
	t.Logf("validation body: %s", r.raw)
	br := detail(t, r.body, "google.rpc.BadRequest")
	vs, _ := br["fieldViolations"].([]any)
	if r.code != 400 || len(vs) != 2 {
		t.Fatalf("validation: %d %s", r.code, r.raw)
	}

	// Unknown JSON fields are refused, not ignored.
	r = do(t, "POST", base+":credit", `{"amount":"5","idempotencyKey":"k9","amountt":"5"}`, nil)
	if r.code != 400 || !strings.Contains(r.raw, "amountt") {
		t.Errorf("unknown field: %d %s", r.code, r.raw)
	}

	// Oversized bodies never reach gRPC.
	r = do(t, "POST", base+":credit", `{"reference":"`+strings.Repeat("x", 5000)+`"}`, nil)
	if r.code != http.StatusRequestEntityTooLarge || detail(t, r.body, "google.rpc.ErrorInfo")["reason"] != "REQUEST_TOO_LARGE" {
		t.Errorf("large body: %d %s", r.code, r.raw)
	}

	// A forged page token is INVALID_ARGUMENT.
	r = do(t, "GET", base+"/transactions?pageToken=Zm9yZ2Vk", "", nil)
	if r.code != 400 || detail(t, r.body, "google.rpc.BadRequest") == nil {
		t.Errorf("forged token: %d %s", r.code, r.raw)
	}

	// Unknown routes are 404 JSON.
	if r = do(t, "GET", e.url+"/v1/nothing", "", nil); r.code != 404 {
		t.Errorf("unknown route: %d %s", r.code, r.raw)
	}
}

func TestRESTAuth(t *testing.T) {
	t.Parallel()
	v, err := token.NewVerifier(token.VerifierOptions{DevSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, grpcserver.NewTokenAuth(v), "")
	tok, err := token.MintDev(secret, token.New(token.DefaultIssuer, token.DefaultAudience, token.RoleService,
		"portal", "acme", "", []string{token.ScopeLedgerRead}, time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	url := e.url + "/v1/workspaces/acme/accounts/alice/balance"
	r := do(t, "GET", url, "", nil)
	if r.code != 401 || r.header.Get("WWW-Authenticate") != `Bearer realm="creditledger"` ||
		detail(t, r.body, "google.rpc.ErrorInfo")["reason"] != "UNAUTHENTICATED" {
		t.Fatalf("no token: %d %v %s", r.code, r.header, r.raw)
	}
	if r = do(t, "GET", url, "", map[string]string{"Authorization": "Bearer " + tok}); r.code != 200 {
		t.Fatalf("with token: %d %s", r.code, r.raw)
	}
	r = do(t, "GET", e.url+"/v1/workspaces/globex/accounts/alice/balance", "", map[string]string{"Authorization": "Bearer " + tok})
	if r.code != 404 {
		t.Fatalf("other workspace: %d %s", r.code, r.raw)
	}
	r = do(t, "POST", e.url+"/v1/workspaces/acme/accounts/alice:credit", `{"amount":"1","idempotencyKey":"k"}`, map[string]string{"Authorization": "Bearer " + tok})
	if r.code != 403 {
		t.Fatalf("read token crediting: %d %s", r.code, r.raw)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	t.Parallel()
	const warning = "WARNING: authentication is disabled"
	e := start(t, grpcserver.NoAuth{}, warning)

	if r := do(t, "GET", e.url+"/healthz", "", nil); r.code != 200 {
		t.Errorf("healthz: %d", r.code)
	}
	r := do(t, "GET", e.url+"/readyz", "", nil)
	if r.code != 200 || !strings.Contains(r.raw, "ready") || !strings.Contains(r.raw, warning) {
		t.Errorf("readyz: %d %q", r.code, r.raw)
	}
	e.store.SetPingError(errors.New("connection refused"))
	if r := do(t, "GET", e.url+"/readyz", "", nil); r.code != 503 || !strings.Contains(r.raw, "store unavailable") {
		t.Errorf("readyz with the store down: %d %q", r.code, r.raw)
	}
	e.store.SetPingError(nil)
	if r := do(t, "GET", e.url+"/readyz", "", nil); r.code != 200 {
		t.Errorf("readyz after recovery: %d", r.code)
	}

	do(t, "GET", e.url+"/v1/workspaces/acme/accounts/alice/balance", "", nil)
	if r := do(t, "GET", e.url+"/metrics", "", nil); r.code != http.StatusNotFound {
		t.Errorf("/metrics on the REST port: %d, want 404 (it has its own listener)", r.code)
	}
	r = do(t, "GET", e.metrics+"/metrics", "", nil)
	for _, want := range []string{
		`creditledger_grpc_server_handled_total{grpc_code="OK",grpc_method="GetBalance",grpc_service="creditledger.v1.CreditLedger",grpc_type="unary"} 1`,
		"creditledger_grpc_server_handling_seconds_bucket",
		"go_goroutines",
	} {
		if !strings.Contains(r.raw, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	e.gw.Drain()
	if r := do(t, "GET", e.url+"/readyz", "", nil); r.code != 503 || !strings.Contains(r.raw, "draining") {
		t.Errorf("readyz while draining: %d %q", r.code, r.raw)
	}
	if r := do(t, "GET", e.url+"/healthz", "", nil); r.code != 200 {
		t.Errorf("healthz while draining: %d", r.code)
	}
}

func TestDialTarget(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"127.0.0.1:9090": "127.0.0.1:9090",
		"0.0.0.0:9090":   "127.0.0.1:9090",
		":9090":          "127.0.0.1:9090",
		"[::]:9090":      "[::1]:9090",
		"db.local:1":     "db.local:1",
	} {
		if got := dialTarget(in); got != want {
			t.Errorf("dialTarget(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRESTAgencyControls: the workspace's payment methods and low-balance
// threshold through PATCH …/settings, SubmitRequest refused for a method not
// offered, and POST …/creditRequests/{id}:cancel.
func TestRESTAgencyControls(t *testing.T) {
	t.Parallel()
	e := start(t, grpcserver.NoAuth{}, "")
	ws := e.url + "/v1/workspaces/acme"

	r := do(t, "GET", ws+"/settings", "", nil)
	if methods, _ := r.body["paymentMethods"].([]any); r.code != 200 || len(methods) != 4 || r.body["lowBalanceThreshold"] != nil {
		t.Fatalf("defaults: %d %s", r.code, r.raw)
	}
	// The mask is derived from the body's fields.
	r = do(t, "PATCH", ws+"/settings", `{"creditPaymentsEnabled": true, "paymentMethods": ["PAYMENT_METHOD_STRIPE", "PAYMENT_METHOD_CRYPTO"], "lowBalanceThreshold": "250"}`, nil)
	if r.code != 200 || r.body["lowBalanceThreshold"] != "250" {
		t.Fatalf("set: %d %s", r.code, r.raw)
	}
	if got, _ := json.Marshal(r.body["paymentMethods"]); string(got) != `["PAYMENT_METHOD_CRYPTO","PAYMENT_METHOD_STRIPE"]` {
		t.Errorf("payment methods = %s, want them in enum order", got)
	}
	r = do(t, "PATCH", ws+"/settings", `{"paymentMethods": ["PAYMENT_METHOD_CRYPTO", "PAYMENT_METHOD_CRYPTO"]}`, nil)
	if vs, _ := detail(t, r.body, "google.rpc.BadRequest")["fieldViolations"].([]any); r.code != 400 || len(vs) != 1 ||
		vs[0].(map[string]any)["field"] != "settings.payment_methods" {
		t.Fatalf("a method twice: %d %s", r.code, r.raw)
	}

	r = do(t, "POST", ws+"/accounts/alice/creditRequests",
		`{"amount": "50", "paymentMethod": "PAYMENT_METHOD_BANK_TRANSFER", "idempotencyKey": "s1"}`, nil)
	if ei := detail(t, r.body, "google.rpc.ErrorInfo"); r.code != 400 || ei["reason"] != "PAYMENT_METHOD_NOT_OFFERED" {
		t.Fatalf("bank transfer not offered: %d %s", r.code, r.raw)
	}
	r = do(t, "POST", ws+"/accounts/alice/creditRequests",
		`{"amount": "50", "paymentMethod": "PAYMENT_METHOD_CRYPTO", "idempotencyKey": "s1"}`, nil)
	req, _ := r.body["request"].(map[string]any)
	id, _ := req["id"].(string)
	if r.code != 200 || id == "" {
		t.Fatalf("crypto: %d %s", r.code, r.raw)
	}

	cancel := ws + "/creditRequests/" + id + ":cancel"
	r = do(t, "POST", cancel, `{"idempotencyKey": "c1", "reason": "paid by card"}`, nil)
	req, _ = r.body["request"].(map[string]any)
	if r.code != 200 || req["status"] != "REQUEST_STATUS_CANCELLED" || req["decisionReason"] != "paid by card" ||
		req["decidedBy"] == nil || req["decideTime"] == nil || r.body["replayed"] != nil {
		t.Fatalf("cancel: %d %s", r.code, r.raw)
	}
	if r = do(t, "POST", cancel, `{"idempotencyKey": "c1", "reason": "paid by card"}`, nil); r.code != 200 || r.body["replayed"] != true {
		t.Fatalf("cancel again with the key: %d %s", r.code, r.raw)
	}
	r = do(t, "POST", cancel, `{"idempotencyKey": "c2"}`, nil)
	if ei := detail(t, r.body, "google.rpc.ErrorInfo"); r.code != 400 || ei["reason"] != "REQUEST_ALREADY_DECIDED" {
		t.Fatalf("cancel again with another key: %d %s", r.code, r.raw)
	}
	if r = do(t, "POST", ws+"/creditRequests/nope:cancel", `{"idempotencyKey": "c3"}`, nil); r.code != 404 {
		t.Fatalf("cancel an unknown request: %d %s", r.code, r.raw)
	}
	r = do(t, "GET", ws+"/creditRequests?status=REQUEST_STATUS_CANCELLED", "", nil)
	if reqs, _ := r.body["requests"].([]any); r.code != 200 || len(reqs) != 1 {
		t.Fatalf("list cancelled: %d %s", r.code, r.raw)
	}
	if r = do(t, "GET", ws+"/accounts/alice/balance", "", nil); r.code != 200 || r.body["pendingRequestCredits"] != nil {
		t.Fatalf("pending credits after the cancel: %d %s", r.code, r.raw)
	}

	// Named by the mask, an empty list offers none (and is omitted).
	r = do(t, "PATCH", ws+"/settings?updateMask=payment_methods", `{"paymentMethods": []}`, nil)
	if r.code != 200 || r.body["paymentMethods"] != nil || r.body["lowBalanceThreshold"] != "250" {
		t.Fatalf("offer none: %d %s", r.code, r.raw)
	}
	r = do(t, "POST", ws+"/accounts/alice/creditRequests",
		`{"amount": "50", "paymentMethod": "PAYMENT_METHOD_CRYPTO", "idempotencyKey": "s2"}`, nil)
	if ei := detail(t, r.body, "google.rpc.ErrorInfo"); r.code != 400 || ei["reason"] != "PAYMENT_METHOD_NOT_OFFERED" {
		t.Fatalf("crypto no longer offered: %d %s", r.code, r.raw)
	}
}
