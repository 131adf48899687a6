package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
)

// testClient has a connection pool of its own (.golangci.yml's forbidigo
// rule says why tests need one).
var testClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}

const e2eSecret = "e2e-secret-e2e-secret-e2e-secret-0123"

// logSink collects ledgerd's JSON log lines and reports the "listening" line.
type logSink struct {
	mu        sync.Mutex
	buf       []byte
	lines     []map[string]any
	raw       []string
	listening chan map[string]any
}

func newLogSink() *logSink { return &logSink{listening: make(chan map[string]any, 1)} }

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, p...)
	for {
		i := bytes.IndexByte(s.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(s.buf[:i])
		s.buf = s.buf[i+1:]
		s.raw = append(s.raw, line)
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		s.lines = append(s.lines, m)
		if m["msg"] == "listening" {
			select {
			case s.listening <- m:
			default:
			}
		}
	}
}

func (s *logSink) all() ([]map[string]any, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.lines...), strings.Join(s.raw, "\n")
}

// ledgerd is one running instance of run(), on real sockets.
type ledgerd struct {
	grpcAddr, httpAddr string
	metricsAddr        string
	base               string       // http://host:port (https with TLS)
	http               *http.Client // for base
	logs               *logSink
	stop               func() error
	ledger             pb.CreditLedgerClient
	settings           pb.CreditSettingsClient
	webhooks           pb.CreditWebhooksClient
	health             healthpb.HealthClient
	getenv             func(string) string
}

// startLedgerd runs `ledgerd serve` with args on 127.0.0.1:0 and waits for
// its "listening" log line; the instance is stopped (and must stop cleanly)
// at the end of the test.
func startLedgerd(t *testing.T, args []string, env map[string]string) *ledgerd {
	t.Helper()
	return startLedgerdTLS(t, args, env, nil)
}

// startLedgerdTLS is startLedgerd for a ledgerd serving TLS: the test's
// gRPC and REST clients connect with clientTLS (plaintext when nil).
func startLedgerdTLS(t *testing.T, args []string, env map[string]string, clientTLS *tls.Config) *ledgerd {
	t.Helper()
	getenv := func(k string) string { return env[k] }
	logs := newLogSink()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	args = append([]string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"}, args...)
	go func() { done <- run(ctx, args, getenv, io.Discard, logs) }()

	d := &ledgerd{logs: logs, getenv: getenv}
	var once sync.Once
	var stopErr error
	d.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(60 * time.Second):
				stopErr = fmt.Errorf("ledgerd did not stop within 60s")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := d.stop(); err != nil {
			t.Errorf("ledgerd stopped with: %v", err)
		}
	})
	select {
	case m := <-logs.listening:
		d.grpcAddr, _ = m["grpc_addr"].(string)
		d.httpAddr, _ = m["http_addr"].(string)
		d.metricsAddr, _ = m["metrics_addr"].(string)
	case err := <-done:
		_, raw := logs.all()
		t.Fatalf("ledgerd exited before listening: %v\n%s", err, raw)
	case <-time.After(60 * time.Second):
		_, raw := logs.all()
		t.Fatalf("no listening line within 60s:\n%s", raw)
	}
	if d.grpcAddr == "" || d.httpAddr == "" || d.metricsAddr == "" || strings.HasSuffix(d.grpcAddr, ":0") {
		t.Fatalf("bad listening line: grpc %q http %q metrics %q", d.grpcAddr, d.httpAddr, d.metricsAddr)
	}
	d.base, d.http = "http://"+d.httpAddr, testClient
	creds := insecure.NewCredentials()
	if clientTLS != nil {
		d.base = "https://" + d.httpAddr
		d.http = &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS.Clone(), ForceAttemptHTTP2: true}}
		t.Cleanup(d.http.CloseIdleConnections)
		creds = credentials.NewTLS(clientTLS.Clone())
	}
	conn, err := grpc.NewClient(d.grpcAddr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	d.ledger, d.settings, d.health = pb.NewCreditLedgerClient(conn), pb.NewCreditSettingsClient(conn), healthpb.NewHealthClient(conn)
	d.webhooks = pb.NewCreditWebhooksClient(conn)
	return d
}

// mintToken mints through `ledgerd token`, as an operator would.
func mintToken(t *testing.T, getenv func(string) string, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), append([]string{"token"}, args...), getenv, &out, &errOut); err != nil {
		t.Fatalf("ledgerd token: %v (%s)", err, errOut.String())
	}
	return strings.TrimSpace(out.String())
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func bearer(ctx context.Context, tok string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

type httpReply struct {
	code int
	hdr  http.Header
	body map[string]any
	raw  string
}

func (d *ledgerd) rest(t *testing.T, method, path, tok, body string) httpReply {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), method, d.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := d.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := httpReply{code: resp.StatusCode, hdr: resp.Header, raw: string(raw)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: body %q: %v", method, path, raw, err)
		}
	}
	return r
}

// scrape returns GET /metrics of the metrics listener (plaintext).
func (d *ledgerd) scrape(t *testing.T) httpReply {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodGet, "http://"+d.metricsAddr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: HTTP %d %s", resp.StatusCode, raw)
	}
	return httpReply{code: resp.StatusCode, hdr: resp.Header, raw: string(raw)}
}

// errorInfo returns the ErrorInfo of a REST error body.
func (r httpReply) errorInfo(t *testing.T) map[string]any {
	t.Helper()
	return r.detail(t, "google.rpc.ErrorInfo")
}

func (r httpReply) detail(t *testing.T, typ string) map[string]any {
	t.Helper()
	ds, _ := r.body["details"].([]any)
	for _, d := range ds {
		if m, _ := d.(map[string]any); m["@type"] == "type.googleapis.com/"+typ {
			return m
		}
	}
	t.Fatalf("no %s in %d %s", typ, r.code, r.raw)
	return nil
}

func grpcInfo(t *testing.T, err error) (codes.Code, *errdetails.ErrorInfo, *errdetails.BadRequest) {
	t.Helper()
	st := status.Convert(err)
	var ei *errdetails.ErrorInfo
	var br *errdetails.BadRequest
	for _, d := range st.Details() {
		switch v := d.(type) {
		case *errdetails.ErrorInfo:
			ei = v
		case *errdetails.BadRequest:
			br = v
		}
	}
	return st.Code(), ei, br
}

func str(v any) string { s, _ := v.(string); return s }

// scenario is the end-to-end contract, exercised over both doors of one
// running ledgerd in token mode.
func scenario(t *testing.T, d *ledgerd) {
	ctx := testCtx(t)
	admin := mintToken(t, d.getenv, "-sub", "acme-admin", "-workspace", "acme", "-role", "admin")
	svc := mintToken(t, d.getenv, "-sub", "checkout", "-workspace", "acme", "-role", "service")
	reader := mintToken(t, d.getenv, "-sub", "portal", "-workspace", "acme", "-scopes", "ledger:read")
	actx := bearer(ctx, svc)
	const secretKey = "stripe:pi_e2e_SECRET_KEY_0001"

	// Health: gRPC follows the store, HTTP probes answer.
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := d.health.Check(ctx, &healthpb.HealthCheckRequest{Service: "creditledger.v1.CreditLedger"})
		if err == nil && res.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gRPC health never SERVING: %v %v", res, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := d.rest(t, "GET", "/readyz", "", ""); r.code != 200 {
		t.Fatalf("/readyz = %d %q", r.code, r.raw)
	}
	if r := d.rest(t, "GET", "/healthz", "", ""); r.code != 200 {
		t.Fatalf("/healthz = %d", r.code)
	}
	// The OpenAPI document needs no token; the API it describes does.
	doc := d.rest(t, "GET", "/openapi.json", "", "")
	info, _ := doc.body["info"].(map[string]any)
	if doc.code != 200 || doc.hdr.Get("Content-Type") != "application/json" || str(doc.body["swagger"]) != "2.0" || str(info["title"]) != "CreditLedger API" {
		t.Fatalf("/openapi.json = %d %q %.200s", doc.code, doc.hdr.Get("Content-Type"), doc.raw)
	}

	// Turn credit payments on (REST PATCH, mask derived from the body).
	if r := d.rest(t, "PATCH", "/v1/workspaces/acme/settings", admin, `{"creditPaymentsEnabled":true}`); r.code != 200 || r.body["creditPaymentsEnabled"] != true {
		t.Fatalf("settings: %d %s", r.code, r.raw)
	}

	// Credits and debits over both doors.
	c1, err := d.ledger.Credit(actx, &pb.CreditRequest{Workspace: "acme", Account: "alice", Amount: 100, IdempotencyKey: secretKey, Reference: "stripe:pi_1"})
	if err != nil || c1.GetBalance() != 100 || c1.GetVersion() != 1 || c1.GetReplayed() {
		t.Fatalf("gRPC credit: %v %v", c1, err)
	}
	r := d.rest(t, "POST", "/v1/workspaces/acme/accounts/alice:credit", svc, `{"amount":"50","idempotencyKey":"c2","kind":"TRANSACTION_KIND_REFUND","metadata":{"order":"42"}}`)
	if r.code != 200 || r.body["balance"] != "150" || r.body["version"] != "2" {
		t.Fatalf("REST credit: %d %s", r.code, r.raw)
	}
	c2ID := str(r.body["transaction"].(map[string]any)["id"])
	if _, err := d.ledger.Debit(actx, &pb.DebitRequest{Workspace: "acme", Account: "alice", Amount: 30, IdempotencyKey: "d1", Kind: pb.TransactionKind_TRANSACTION_KIND_INVOICE_PAYMENT, Reference: "invoice:INV-1"}); err != nil {
		t.Fatalf("gRPC debit: %v", err)
	}
	if r := d.rest(t, "POST", "/v1/workspaces/acme/accounts/alice:debit", svc, `{"amount":"20","idempotencyKey":"d2","expectedVersion":"3"}`); r.code != 200 || r.body["balance"] != "100" {
		t.Fatalf("REST debit: %d %s", r.code, r.raw)
	}

	// Balance over both doors.
	b, err := d.ledger.GetBalance(bearer(ctx, reader), &pb.GetBalanceRequest{Workspace: "acme", Account: "alice"})
	if err != nil || b.GetBalance().GetBalance() != 100 || b.GetBalance().GetVersion() != 4 || !b.GetBalance().GetCreditPaymentsEnabled() {
		t.Fatalf("gRPC balance: %v %v", b, err)
	}
	if r := d.rest(t, "GET", "/v1/workspaces/acme/accounts/alice/balance", reader, ""); r.code != 200 || r.body["balance"] != "100" || r.body["version"] != "4" {
		t.Fatalf("REST balance: %d %s", r.code, r.raw)
	}

	// History: newest first, running balance, pagination (REST).
	r = d.rest(t, "GET", "/v1/workspaces/acme/accounts/alice/transactions?pageSize=3", reader, "")
	rows, _ := r.body["transactions"].([]any)
	if r.code != 200 || len(rows) != 3 || str(r.body["nextPageToken"]) == "" {
		t.Fatalf("history page 1: %d %s", r.code, r.raw)
	}
	wantRows := [][3]string{{"4", "100", "TRANSACTION_TYPE_OUT"}, {"3", "120", "TRANSACTION_TYPE_OUT"}, {"2", "150", "TRANSACTION_TYPE_IN"}}
	for i, w := range wantRows {
		row := rows[i].(map[string]any)
		if row["accountVersion"] != w[0] || row["balanceAfter"] != w[1] || row["type"] != w[2] {
			t.Errorf("history row %d = %v, want version/balance/type %v", i, row, w)
		}
	}
	page2 := d.rest(t, "GET", "/v1/workspaces/acme/accounts/alice/transactions?pageSize=3&pageToken="+str(r.body["nextPageToken"]), reader, "")
	rows2, _ := page2.body["transactions"].([]any)
	if page2.code != 200 || len(rows2) != 1 || rows2[0].(map[string]any)["balanceAfter"] != "100" || page2.body["nextPageToken"] != nil {
		t.Fatalf("history page 2: %d %s", page2.code, page2.raw)
	}
	// …and over gRPC, with a filter.
	h, err := d.ledger.ListTransactions(bearer(ctx, reader), &pb.ListTransactionsRequest{Workspace: "acme", Account: "alice", PageSize: 1, Type: pb.TransactionType_TRANSACTION_TYPE_IN})
	if err != nil || len(h.GetTransactions()) != 1 || h.GetTransactions()[0].GetAccountVersion() != 2 || h.GetNextPageToken() == "" {
		t.Fatalf("gRPC history: %v %v", h, err)
	}
	h2, err := d.ledger.ListTransactions(bearer(ctx, reader), &pb.ListTransactionsRequest{Workspace: "acme", Account: "alice", PageSize: 1, Type: pb.TransactionType_TRANSACTION_TYPE_IN, PageToken: h.GetNextPageToken()})
	if err != nil || len(h2.GetTransactions()) != 1 || h2.GetTransactions()[0].GetBalanceAfter() != 100 || h2.GetNextPageToken() != "" {
		t.Fatalf("gRPC history page 2: %v %v", h2, err)
	}

	// Idempotent replay: the original outcome, replayed: true.
	r = d.rest(t, "POST", "/v1/workspaces/acme/accounts/alice:credit", svc, `{"amount":"50","idempotencyKey":"c2","kind":"TRANSACTION_KIND_REFUND","metadata":{"order":"42"}}`)
	if r.code != 200 || r.body["replayed"] != true || str(r.body["transaction"].(map[string]any)["id"]) != c2ID || r.body["balance"] != "150" {
		t.Fatalf("REST replay: %d %s", r.code, r.raw)
	}
	rep, err := d.ledger.Credit(actx, &pb.CreditRequest{Workspace: "acme", Account: "alice", Amount: 100, IdempotencyKey: secretKey, Reference: "stripe:pi_1"})
	if err != nil || !rep.GetReplayed() || rep.GetTransaction().GetId() != c1.GetTransaction().GetId() || rep.GetBalance() != 100 {
		t.Fatalf("gRPC replay: %v %v", rep, err)
	}

	// Same key, different request.
	r = d.rest(t, "POST", "/v1/workspaces/acme/accounts/alice:credit", svc, `{"amount":"51","idempotencyKey":"c2"}`)
	if r.code != 400 || r.errorInfo(t)["reason"] != "IDEMPOTENCY_KEY_REUSED" {
		t.Fatalf("REST key reuse: %d %s", r.code, r.raw)
	}
	_, err = d.ledger.Debit(actx, &pb.DebitRequest{Workspace: "acme", Account: "alice", Amount: 1, IdempotencyKey: secretKey})
	if c, ei, _ := grpcInfo(t, err); c != codes.InvalidArgument || ei.GetReason() != "IDEMPOTENCY_KEY_REUSED" {
		t.Fatalf("gRPC key reuse: %v", err)
	}

	// Insufficient credits: reason and metadata in the JSON body.
	r = d.rest(t, "POST", "/v1/workspaces/acme/accounts/alice:debit", svc, `{"amount":"1000","idempotencyKey":"d-big","reference":"invoice:INV-1042"}`)
	ei := r.errorInfo(t)
	md, _ := ei["metadata"].(map[string]any)
	if r.code != 400 || r.body["code"] != float64(codes.FailedPrecondition) || ei["reason"] != "INSUFFICIENT_CREDITS" ||
		ei["domain"] != "creditledger" || md["balance"] != "100" || md["required"] != "1000" {
		t.Fatalf("REST insufficient: %d %s", r.code, r.raw)
	}
	t.Logf("INSUFFICIENT_CREDITS over REST: HTTP %d %s", r.code, r.raw)
	_, err = d.ledger.Debit(actx, &pb.DebitRequest{Workspace: "acme", Account: "alice", Amount: 1000, IdempotencyKey: "d-big"})
	if c, ei, _ := grpcInfo(t, err); c != codes.FailedPrecondition || ei.GetReason() != "INSUFFICIENT_CREDITS" || ei.GetMetadata()["required"] != "1000" {
		t.Fatalf("gRPC insufficient: %v", err)
	}

	// Validation errors carry field violations.
	r = d.rest(t, "POST", "/v1/workspaces/acme/accounts/alice:credit", svc, `{"amount":"0"}`)
	vs, _ := r.detail(t, "google.rpc.BadRequest")["fieldViolations"].([]any)
	if r.code != 400 || r.errorInfo(t)["reason"] != "INVALID_ARGUMENT" || len(vs) != 2 ||
		vs[0].(map[string]any)["field"] != "amount" || vs[1].(map[string]any)["field"] != "idempotency_key" {
		t.Fatalf("REST validation: %d %s", r.code, r.raw)
	}
	_, err = d.ledger.Credit(actx, &pb.CreditRequest{Workspace: "acme", Account: "bad account", Amount: 1, IdempotencyKey: "v", Kind: 99})
	if c, _, br := grpcInfo(t, err); c != codes.InvalidArgument || len(br.GetFieldViolations()) != 1 || br.GetFieldViolations()[0].GetField() != "kind" {
		t.Fatalf("gRPC unknown enum: %v", err)
	}

	// A forged page token, and a token of another listing.
	r = d.rest(t, "GET", "/v1/workspaces/acme/accounts/alice/transactions?pageToken=AAAAforged", reader, "")
	if r.code != 400 || r.detail(t, "google.rpc.BadRequest")["fieldViolations"].([]any)[0].(map[string]any)["field"] != "page_token" {
		t.Fatalf("REST forged page token: %d %s", r.code, r.raw)
	}
	_, err = d.ledger.ListTransactions(bearer(ctx, reader), &pb.ListTransactionsRequest{Workspace: "acme", Account: "bob", PageToken: h.GetNextPageToken()})
	if c, _, _ := grpcInfo(t, err); c != codes.InvalidArgument {
		t.Fatalf("gRPC page token of another listing: %v", err)
	}

	// Manual purchase: submitted over REST, accepted over gRPC.
	r = d.rest(t, "POST", "/v1/workspaces/acme/accounts/alice/creditRequests", admin, `{"amount":"25","paymentMethod":"PAYMENT_METHOD_BANK_TRANSFER","paymentReference":"SEPA-1","idempotencyKey":"s1"}`)
	req, _ := r.body["request"].(map[string]any)
	if r.code != 200 || req["status"] != "REQUEST_STATUS_PENDING" {
		t.Fatalf("submit: %d %s", r.code, r.raw)
	}
	dec, err := d.ledger.DecideRequest(bearer(ctx, admin), &pb.DecideRequestRequest{Workspace: "acme", RequestId: str(req["id"]), Decision: pb.Decision_DECISION_ACCEPT, DecidedBy: "admin-1", IdempotencyKey: "dec1"})
	if err != nil || dec.GetRequest().GetStatus() != pb.RequestStatus_REQUEST_STATUS_ACCEPTED || dec.GetTransaction().GetBalanceAfter() != 125 {
		t.Fatalf("decide: %v %v", dec, err)
	}

	// A client reads its own request, and another client's is NOT_FOUND.
	aliceTok := mintToken(t, d.getenv, "-sub", "alice", "-workspace", "acme", "-account", "alice", "-scopes", "ledger:read")
	bobTok := mintToken(t, d.getenv, "-sub", "bob", "-workspace", "acme", "-account", "bob", "-scopes", "ledger:read")
	if r := d.rest(t, "GET", "/v1/workspaces/acme/creditRequests/"+str(req["id"]), aliceTok, ""); r.code != 200 {
		t.Fatalf("client reading its own request: %d %s", r.code, r.raw)
	}
	if _, err := d.ledger.GetRequest(bearer(ctx, bobTok), &pb.GetRequestRequest{Workspace: "acme", RequestId: str(req["id"])}); status.Code(err) != codes.NotFound {
		t.Fatalf("client reading another client's request: %v", err)
	}

	// Auth: no token, and a token of another workspace.
	if r := d.rest(t, "GET", "/v1/workspaces/acme/accounts/alice/balance", "", ""); r.code != 401 || r.errorInfo(t)["reason"] != "UNAUTHENTICATED" {
		t.Fatalf("REST without token: %d %s", r.code, r.raw)
	}
	if _, err := d.ledger.GetBalance(ctx, &pb.GetBalanceRequest{Workspace: "acme", Account: "alice"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("gRPC without token: %v", err)
	}
	globex := mintToken(t, d.getenv, "-sub", "globex-checkout", "-workspace", "globex", "-role", "service")
	if r := d.rest(t, "GET", "/v1/workspaces/acme/accounts/alice/balance", globex, ""); r.code != 404 || r.errorInfo(t)["reason"] != "NOT_FOUND" {
		t.Fatalf("REST cross-workspace: %d %s", r.code, r.raw)
	}
	if _, err := d.ledger.Debit(bearer(ctx, globex), &pb.DebitRequest{Workspace: "acme", Account: "alice", Amount: 1, IdempotencyKey: "x"}); status.Code(err) != codes.NotFound {
		t.Fatalf("gRPC cross-workspace: %v", err)
	}
	if _, err := d.ledger.Credit(bearer(ctx, reader), &pb.CreditRequest{Workspace: "acme", Account: "alice", Amount: 1, IdempotencyKey: "x"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("read token crediting: %v", err)
	}

	// A second request stays pending for the queue gauges.
	if r := d.rest(t, "POST", "/v1/workspaces/acme/accounts/alice/creditRequests", admin, `{"amount":"5","paymentMethod":"PAYMENT_METHOD_CRYPTO","paymentReference":"btc:tx9","idempotencyKey":"s2"}`); r.code != 200 {
		t.Fatalf("submit pending: %d %s", r.code, r.raw)
	}

	// Metrics: per-RPC counters (REST calls went through gRPC too), the
	// business counters, and the store's.
	if r := d.rest(t, "GET", "/metrics", "", ""); r.code != http.StatusNotFound {
		t.Errorf("/metrics on the REST port: %d, want 404 (metrics have their own listener)", r.code)
	}
	r = d.scrape(t)
	for _, want := range []string{
		`creditledger_grpc_server_handled_total{grpc_code="OK",grpc_method="Credit",grpc_service="creditledger.v1.CreditLedger",grpc_type="unary"} 4`,
		`creditledger_grpc_server_handled_total{grpc_code="FailedPrecondition",grpc_method="Debit",grpc_service="creditledger.v1.CreditLedger",grpc_type="unary"} 2`,
		`creditledger_grpc_server_handled_total{grpc_code="Unauthenticated",grpc_method="GetBalance",grpc_service="creditledger.v1.CreditLedger",grpc_type="unary"} 2`,
		`creditledger_grpc_server_handling_seconds_bucket{grpc_method="Credit"`,
		`creditledger_transactions_posted_total{kind="PURCHASE",type="IN"} 1`,
		`creditledger_credits_posted_total{kind="REQUEST_APPROVED",type="IN"} 25`,
		`creditledger_refusals_total{operation="debit",reason="INSUFFICIENT_CREDITS"} 2`,
		`creditledger_idempotent_replays_total{operation="credit"} 2`,
		"creditledger_store_up 1",
		"creditledger_pending_requests 1",
		"creditledger_pending_requests_oldest_age_seconds ",
		`creditledger_store_transaction_seconds_count{mode="write",outcome="ok"}`,
		`creditledger_write_batch_size_count `,
		`creditledger_write_batches_total{outcome="committed"}`,
		"creditledger_write_queue_ops 0",
		`creditledger_store_transaction_seconds_count{mode="view",outcome="ok"}`,
		`creditledger_store_pool_connections{state="in_use"}`,
		"creditledger_store_pool_max_connections ",
		"go_goroutines",
		"process_resident_memory_bytes",
	} {
		if !strings.Contains(r.raw, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Logs: one line per request with the agreed fields; no token and no
	// full idempotency key anywhere.
	lines, raw := d.logs.all()
	for _, leak := range []string{admin, svc, reader, globex, secretKey, e2eSecret} {
		if strings.Contains(raw, leak) {
			t.Errorf("log output contains a secret (%.12s…)", leak)
		}
	}
	found := false
	for _, l := range lines {
		if l["msg"] == "request" && l["method"] == "/creditledger.v1.CreditLedger/Debit" && l["code"] == "FailedPrecondition" {
			found = l["workspace"] == "acme" && l["request_id"] != "" && l["duration_seconds"] != nil && l["reason"] == "INSUFFICIENT_CREDITS"
		}
	}
	if !found {
		t.Errorf("no complete request log line for the refused debit")
	}
}

func TestEndToEndEmbedded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{
		"LEDGER_AUTH": "token", "LEDGER_AUTH_SECRET": e2eSecret, "LEDGER_PAGE_TOKEN_KEY": "000102030405060708090a0b0c0d0e0f",
		// restConcurrency is one subject writing as fast as it can: a
		// concurrency test, not a rate-limit test.
		"LEDGER_RATE_LIMIT_SUBJECT_WRITES": "0",
	}
	d := startLedgerd(t, []string{"--data-dir", dir}, env)
	scenario(t, d)
	restConcurrency(t, d, mintToken(t, d.getenv, "-sub", "load", "-workspace", "acme", "-scopes", "ledger:write,ledger:read"))
	if _, err := os.Stat(filepath.Join(dir, "ledger.db")); err != nil {
		t.Errorf("embedded store file: %v", err)
	}
	assertStoreLogged(t, d, "embedded", filepath.Join(dir, "ledger.db"))
	assertVerifies(t, func(k string) string {
		if k == "LEDGER_DATA_DIR" {
			return dir
		}
		return env[k]
	})
}

// assertStoreLogged checks that ledgerd said which store it uses and where.
func assertStoreLogged(t *testing.T, d *ledgerd, kind, where string) {
	t.Helper()
	lines, _ := d.logs.all()
	for _, l := range lines {
		if l["store"] == kind && (str(l["path"]) == where || str(l["database_url"]) == where) {
			return
		}
	}
	t.Errorf("no log line naming the %s store at %s", kind, where)
}

// TestDevelopmentModeAndShutdown runs without authentication (explicitly),
// and checks the loud warning and the graceful drain: readiness and gRPC
// health go NOT_SERVING before the listeners close.
func TestDevelopmentModeAndShutdown(t *testing.T) {
	t.Parallel()
	d := startLedgerd(t, []string{"--data-dir", t.TempDir(), "--drain-delay", "1s"}, map[string]string{"LEDGER_AUTH": "none"})
	ctx := testCtx(t)
	r := d.rest(t, "GET", "/readyz", "", "")
	if !strings.Contains(r.raw, "authentication is DISABLED") {
		t.Errorf("/readyz does not warn about development mode: %q", r.raw)
	}
	lines, _ := d.logs.all()
	warned := false
	for _, l := range lines {
		warned = warned || (l["level"] == "warn" && strings.Contains(str(l["msg"]), "authentication is DISABLED"))
	}
	if !warned {
		t.Error("no WARN line about development mode at start")
	}
	if _, err := d.ledger.Credit(ctx, &pb.CreditRequest{Workspace: "w", Account: "a", Amount: 1, IdempotencyKey: "k"}); err != nil {
		t.Fatalf("no-auth credit: %v", err)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- d.stop() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, herr := d.health.Check(ctx, &healthpb.HealthCheckRequest{})
		r := d.rest(t, "GET", "/readyz", "", "")
		if r.code == 503 && strings.Contains(r.raw, "draining") && herr == nil && res.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never saw NOT_SERVING while draining: readyz %d %q, health %v %v", r.code, r.raw, res, herr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	lines, _ = d.logs.all()
	if last := lines[len(lines)-1]; last["msg"] != "stopped" {
		t.Errorf("last log line = %v", last)
	}
}

func TestCommands(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"version"}, func(string) string { return "" }, &out, &errOut); err != nil || !strings.HasPrefix(out.String(), "ledgerd ") {
		t.Errorf("version: %q %v", out.String(), err)
	}
	if err := run(context.Background(), []string{"frobnicate"}, func(string) string { return "" }, &out, &errOut); err == nil {
		t.Error("unknown command accepted")
	}
	if err := run(context.Background(), []string{"serve", "-h"}, func(string) string { return "" }, &out, &errOut); err != nil {
		t.Errorf("serve -h: %v", err)
	}
	// Serving in token mode without a secret is refused before anything opens.
	err := run(context.Background(), []string{"serve"}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "LEDGER_AUTH_SECRET") {
		t.Errorf("serve without a secret: %v", err)
	}
	// token refuses unknown scopes and a missing secret.
	env := func(k string) string { return map[string]string{"LEDGER_AUTH_SECRET": e2eSecret}[k] }
	if err := run(context.Background(), []string{"token", "-sub", "s", "-workspace", "w", "-scopes", "root"}, env, io.Discard, io.Discard); err == nil {
		t.Error("unknown scope accepted")
	}
	if err := run(context.Background(), []string{"token", "-sub", "s", "-workspace", "w"}, func(string) string { return "" }, io.Discard, io.Discard); err == nil {
		t.Error("token without a secret minted")
	}
	// migrate creates the embedded store.
	dir := t.TempDir()
	if err := run(context.Background(), []string{"migrate", "--data-dir", dir}, func(string) string { return "" }, io.Discard, io.Discard); err != nil {
		t.Fatalf("migrate embedded: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ledger.db")); err != nil {
		t.Errorf("migrate did not create the store: %v", err)
	}
}
