package grpcserver

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/grpcserver/fakestore"
	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/creditledger/creditledger/internal/token"
)

type testServer struct {
	ledger   pb.CreditLedgerClient
	settings pb.CreditSettingsClient
	logs     *observer.ObservedLogs
	reg      *prometheus.Registry
}

// startServer serves NewServer over store on a real loopback socket.
func startServer(t *testing.T, store ledger.Store, auth Authorizer) *testServer {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	reg := prometheus.NewRegistry()
	obs, err := NewObserver(reg)
	if err != nil {
		t.Fatal(err)
	}
	svc := ledger.NewService(store, ledger.WithObserver(obs))
	ts := serveWith(t, svc, Options{Logger: zap.New(core), Registerer: reg, Authorizer: auth})
	ts.logs, ts.reg = logs, reg
	return ts
}

// serveWith serves NewServer(svc, opts) on a real loopback socket and
// returns its clients.
func serveWith(t *testing.T, svc *ledger.Service, opts Options) *testServer {
	t.Helper()
	srv, err := NewServer(svc, opts)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &testServer{ledger: pb.NewCreditLedgerClient(conn), settings: pb.NewCreditSettingsClient(conn)}
}

func ctxTimeout(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestServerRequestIDLogAndMetrics(t *testing.T) {
	t.Parallel()
	ts := startServer(t, fakestore.New(), NoAuth{})
	ctx := ctxTimeout(t)

	const key = "stripe:pi_3NqSECRETKEY"
	var hdr metadata.MD
	res, err := ts.ledger.Credit(metadata.AppendToOutgoingContext(ctx, "x-request-id", "req-123"),
		&pb.CreditRequest{Workspace: "acme", Account: "alice", Amount: 100, IdempotencyKey: key}, grpc.Header(&hdr))
	if err != nil {
		t.Fatal(err)
	}
	if res.GetBalance() != 100 || res.GetVersion() != 1 || res.GetTransaction().GetKind() != pb.TransactionKind_TRANSACTION_KIND_PURCHASE {
		t.Errorf("credit = %v", res)
	}
	if got := hdr.Get("x-request-id"); len(got) != 1 || got[0] != "req-123" {
		t.Errorf("x-request-id header = %v, want the caller's", got)
	}

	// A generated id when none (or a malformed one) is sent.
	for _, sent := range []string{"", "bad id with spaces", strings.Repeat("x", 200)} {
		ctx := ctx
		if sent != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", sent)
		}
		var h metadata.MD
		if _, err := ts.ledger.GetBalance(ctx, &pb.GetBalanceRequest{Workspace: "acme", Account: "alice"}, grpc.Header(&h)); err != nil {
			t.Fatal(err)
		}
		if got := h.Get("x-request-id"); len(got) != 1 || got[0] == "" || got[0] == sent {
			t.Errorf("sent %q, got request id %v", sent, got)
		}
	}

	// The refusal carries its status and reaches the log and the metrics.
	var ehdr metadata.MD
	_, err = ts.ledger.Debit(ctx, &pb.DebitRequest{Workspace: "acme", Account: "alice", Amount: 5, IdempotencyKey: "d1"}, grpc.Header(&ehdr))
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || reasonOf(st) != ledger.ReasonCreditPaymentsDisabled {
		t.Fatalf("debit while disabled: %v", err)
	}
	if len(ehdr.Get("x-request-id")) != 1 {
		t.Errorf("error response lacks x-request-id: %v", ehdr)
	}

	lines := ts.logs.FilterMessage("request").All()
	if len(lines) != 5 {
		t.Fatalf("%d request lines, want one per call: %v", len(lines), lines)
	}
	first := lines[0].ContextMap()
	for field, want := range map[string]any{
		"method": "/creditledger.v1.CreditLedger/Credit", "workspace": "acme", "account": "alice",
		"code": "OK", "request_id": "req-123", "subject": "anonymous (auth disabled)",
	} {
		if first[field] != want {
			t.Errorf("log field %s = %v, want %v", field, first[field], want)
		}
	}
	if d, ok := first["duration_seconds"].(float64); !ok || d <= 0 {
		t.Errorf("duration_seconds = %v", first["duration_seconds"])
	}
	if h, _ := first["idempotency_key_sha256"].(string); len(h) != 12 {
		t.Errorf("idempotency key hash = %q", h)
	}
	last := lines[4].ContextMap()
	if last["code"] != "FailedPrecondition" || last["reason"] != "CREDIT_PAYMENTS_DISABLED" {
		t.Errorf("refusal line = %v", last)
	}
	assertNotLogged(t, ts.logs, key)

	handled := func(method, code string) float64 {
		return counterValue(t, ts.reg, "creditledger_grpc_server_handled_total",
			map[string]string{"grpc_method": method, "grpc_code": code})
	}
	if got := handled("Credit", "OK"); got != 1 {
		t.Errorf("handled{Credit,OK} = %v", got)
	}
	if got := handled("Debit", "FailedPrecondition"); got != 1 {
		t.Errorf("handled{Debit,FailedPrecondition} = %v", got)
	}
	if got := handled("ListAccounts", "OK"); got != 0 {
		t.Errorf("pre-registered handled{ListAccounts,OK} = %v", got)
	}
	if got := counterValue(t, ts.reg, "creditledger_credits_posted_total", map[string]string{"type": "IN", "kind": "PURCHASE"}); got != 100 {
		t.Errorf("credits posted = %v", got)
	}
	if got := counterValue(t, ts.reg, "creditledger_refusals_total", map[string]string{"operation": "debit", "reason": "CREDIT_PAYMENTS_DISABLED"}); got != 1 {
		t.Errorf("refusals = %v", got)
	}
}

func TestServerRefusesWithoutToken(t *testing.T) {
	t.Parallel()
	ts := startServer(t, fakestore.New(), NewTokenAuth(testVerifier))
	ctx := ctxTimeout(t)
	_, err := ts.ledger.GetBalance(ctx, &pb.GetBalanceRequest{Workspace: "acme", Account: "alice"})
	if st := status.Convert(err); st.Code() != codes.Unauthenticated || reasonOf(st) != "UNAUTHENTICATED" {
		t.Fatalf("no token: %v", err)
	}
	tok := mint(t, grant{role: token.RoleService, sub: "portal", ws: "acme", scopes: []string{ScopeLedgerRead}})
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	if _, err := ts.ledger.GetBalance(authed, &pb.GetBalanceRequest{Workspace: "acme", Account: "alice"}); err != nil {
		t.Fatalf("with token: %v", err)
	}
	_, err = ts.ledger.GetBalance(authed, &pb.GetBalanceRequest{Workspace: "globex", Account: "alice"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("other workspace: %v", err)
	}
	_, err = ts.ledger.Credit(authed, &pb.CreditRequest{Workspace: "acme", Account: "alice", Amount: 1, IdempotencyKey: "k"})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("read token crediting: %v", err)
	}
	assertNotLogged(t, ts.logs, tok)
	lines := ts.logs.FilterMessage("request").All()
	if got := lines[len(lines)-1].ContextMap()["subject"]; got != "portal" {
		t.Errorf("subject = %v", got)
	}
}

// panicStore panics inside every read, as a bug in a store would.
type panicStore struct{ *fakestore.Store }

func (panicStore) View(context.Context, func(context.Context, ledger.ReadTx) error) error {
	panic("store bug: nil map")
}

func TestServerRecoversPanics(t *testing.T) {
	t.Parallel()
	ts := startServer(t, panicStore{fakestore.New()}, NoAuth{})
	ctx := ctxTimeout(t)
	_, err := ts.ledger.GetBalance(ctx, &pb.GetBalanceRequest{Workspace: "acme", Account: "alice"})
	st := status.Convert(err)
	if st.Code() != codes.Internal || st.Message() != "internal error" || strings.Contains(err.Error(), "nil map") {
		t.Fatalf("panic surfaced as %v", err)
	}
	errs := ts.logs.FilterLevelExact(zapcore.ErrorLevel).All()
	if len(errs) != 1 || !strings.Contains(errs[0].ContextMap()["error"].(string), "store bug: nil map") ||
		!strings.Contains(errs[0].ContextMap()["stack"].(string), "goroutine") {
		t.Fatalf("want one error line with the panic and its stack, got %v", errs)
	}
	// The process survived and still answers.
	if _, err := ts.ledger.Credit(ctx, &pb.CreditRequest{Workspace: "acme", Account: "alice", Amount: 1, IdempotencyKey: "k"}); err != nil {
		t.Fatalf("after panic: %v", err)
	}
	if got := counterValue(t, ts.reg, "creditledger_grpc_server_handled_total",
		map[string]string{"grpc_method": "GetBalance", "grpc_code": "Internal"}); got != 1 {
		t.Errorf("handled{GetBalance,Internal} = %v", got)
	}
}

func TestServerBadRequestDetails(t *testing.T) {
	t.Parallel()
	ts := startServer(t, fakestore.New(), NoAuth{})
	_, err := ts.ledger.Credit(ctxTimeout(t), &pb.CreditRequest{Workspace: "acme", Account: "bad account!", Amount: -1})
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("got %v", err)
	}
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	if strings.Join(fields, ",") != "account,amount,idempotency_key" {
		t.Errorf("field violations = %v", fields)
	}
}

func TestNewServerRequiresAuthorizer(t *testing.T) {
	t.Parallel()
	_, err := NewServer(ledger.NewService(fakestore.New()), Options{Logger: zap.NewNop(), Registerer: prometheus.NewRegistry()})
	if err == nil {
		t.Fatal("a server without an explicit Authorizer was built")
	}
}

func reasonOf(st *status.Status) string {
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return ei.GetReason()
		}
	}
	return ""
}

// assertNotLogged fails if secret appears anywhere in the log output.
func assertNotLogged(t *testing.T, logs *observer.ObservedLogs, secret string) {
	t.Helper()
	for _, e := range logs.All() {
		b, _ := json.Marshal(e.ContextMap())
		if strings.Contains(string(b), secret) || strings.Contains(e.Message, secret) {
			t.Errorf("secret %q logged: %s %s", secret, e.Message, b)
		}
	}
}

// counterValue returns the counter of name whose labels include want (0 if none).
func counterValue(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// A name far beyond the limit is refused, and the request's log line holds
// only its first characters: the line is written before validation.
func TestLogNamesBounded(t *testing.T) {
	t.Parallel()
	ts := startServer(t, fakestore.New(), NoAuth{})
	ctx := ctxTimeout(t)
	huge := strings.Repeat("w", 400<<10)
	if _, err := ts.ledger.GetBalance(ctx, &pb.GetBalanceRequest{Workspace: huge, Account: huge}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("GetBalance with a 400 KiB workspace and account: %v, want INVALID_ARGUMENT", err)
	}
	for _, e := range ts.logs.FilterMessage("request").All() {
		for _, f := range e.Context {
			if (f.Key == "workspace" || f.Key == "account") && len(f.String) > ledger.MaxIDLength+len("…") {
				t.Fatalf("log field %s is %d bytes long", f.Key, len(f.String))
			}
		}
	}

	if n := ts.logs.FilterMessage("request").Len(); n != 1 {
		t.Fatalf("%d request lines, want 1", n)
	}
}

// Options' interceptors wrap the server's chain: they see every call,
// even one refused by authentication, with the status its caller gets.
func TestOptionsInterceptorsAreOutermost(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	var seen []codes.Code
	record := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if RequestIDFromContext(ctx) != "" {
			t.Error("an outer interceptor runs after the request id was assigned")
		}
		res, err := handler(ctx, req)
		seen = append(seen, status.Code(err))
		return res, err
	}
	ts := serveWith(t, ledger.NewService(fakestore.New()), Options{
		Logger: zap.NewNop(), Registerer: reg, Authorizer: NewTokenAuth(testVerifier),
		UnaryInterceptors: []grpc.UnaryServerInterceptor{record},
	})
	_, err := ts.ledger.GetBalance(ctxTimeout(t), &pb.GetBalanceRequest{Workspace: "acme", Account: "alice"})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("GetBalance without a token: %v", err)
	}
	if len(seen) != 1 || seen[0] != codes.Unauthenticated {
		t.Errorf("the outer interceptor saw %v, want the one call refused UNAUTHENTICATED", seen)
	}
}
