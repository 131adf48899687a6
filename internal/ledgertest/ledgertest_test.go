package ledgertest_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledgertest"
	"github.com/creditledger/creditledger/internal/tlstest"
)

// testClient has a connection pool of its own (.golangci.yml's forbidigo
// rule says why tests need one).
var testClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}

const ws = "agency-1"

func dial(tb testing.TB, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	tb.Helper()
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return conn
}

func ledgerClient(tb testing.TB, f *ledgertest.Server) pb.CreditLedgerClient {
	tb.Helper()
	return pb.NewCreditLedgerClient(dial(tb, f.Addr))
}

func reasonOf(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

func debit(key string, amount int64) *pb.DebitRequest {
	return &pb.DebitRequest{Workspace: ws, Account: "client-1", Amount: amount, IdempotencyKey: key, Reference: "order:1"}
}

// The server applies the ledger's own rules: what a fake could get wrong
// (a refusal's reason and metadata, a replay) comes from the real domain.
func TestRealRules(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	c := ledgerClient(t, f)
	ctx := t.Context()
	f.Fund(t, ws, "client-1", 10)
	if _, err := c.Debit(ctx, debit("d1", 5)); reasonOf(err) != "CREDIT_PAYMENTS_DISABLED" {
		t.Errorf("Debit while credit payments are off: %v", err)
	}
	f.SetEnabled(t, ws, true)
	_, err := c.Debit(ctx, debit("d1", 25))
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || reasonOf(err) != "INSUFFICIENT_CREDITS" {
		t.Errorf("Debit above the balance: %v", err)
	}
	first, err := c.Debit(ctx, debit("d1", 4))
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Debit(ctx, debit("d1", 4))
	if err != nil || !again.GetReplayed() || again.GetTransaction().GetId() != first.GetTransaction().GetId() {
		t.Errorf("replay = %v, %v; want the first answer, replayed", again, err)
	}
	if _, err := c.Debit(ctx, debit("d1", 3)); reasonOf(err) != "IDEMPOTENCY_KEY_REUSED" {
		t.Errorf("same key, other amount: %v", err)
	}
	if bal, ver := f.Balance(t, ws, "client-1"); bal != 6 || ver != 2 {
		t.Errorf("balance %d v%d, want 6 v2", bal, ver)
	}
	txs := f.Transactions(t, ws, "client-1")
	if len(txs) != 2 || txs[0].GetKind() != pb.TransactionKind_TRANSACTION_KIND_ADJUSTMENT || txs[0].GetReference() != "ledgertest:fund" ||
		txs[1].GetId() != first.GetTransaction().GetId() {
		t.Errorf("history, oldest first: %v", txs)
	}
}

// Calls records what callers asked, and only that: setup through the
// Server's methods is not among them.
func TestCallsRecordWhatCallersAsked(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	f.SetEnabled(t, ws, true)
	f.Fund(t, ws, "client-1", 10)
	f.SetRate(t, ws, "USD", "10")
	c := ledgerClient(t, f)
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer anything")
	if _, err := c.Debit(ctx, debit("d1", 4)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Debit(ctx, debit("d2", 40)); reasonOf(err) != "INSUFFICIENT_CREDITS" {
		t.Fatal(err)
	}
	if _, err := c.GetBalance(ctx, &pb.GetBalanceRequest{Workspace: ws, Account: "client-1"}); err != nil {
		t.Fatal(err)
	}
	all := f.Calls("")
	got := make([]ledgertest.Call, len(all))
	for i, call := range all {
		got[i] = call
		got[i].Request = nil
	}
	want := []ledgertest.Call{
		{Method: "Debit", IdempotencyKey: "d1", Authorization: "Bearer anything", Code: codes.OK},
		{Method: "Debit", IdempotencyKey: "d2", Authorization: "Bearer anything", Code: codes.FailedPrecondition},
		{Method: "GetBalance", Authorization: "Bearer anything", Code: codes.OK},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if r, ok := all[1].Request.(*pb.DebitRequest); !ok || r.GetAmount() != 40 || r.GetReference() != "order:1" {
		t.Errorf("recorded request %v", all[1].Request)
	}
	if n := len(f.Calls("Debit")); n != 2 {
		t.Errorf("Calls(Debit) = %d calls, want 2", n)
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	t.Run("refused before the call", func(t *testing.T) {
		t.Parallel()
		f := ledgertest.Start(t)
		f.SetEnabled(t, ws, true)
		f.Fund(t, ws, "client-1", 10)
		c := ledgerClient(t, f)
		f.InjectFault("Debit", ledgertest.Fault{Code: codes.Unavailable}, ledgertest.Fault{Code: codes.Aborted, Reason: "IDEMPOTENCY_KEY_IN_USE"})
		if _, err := c.Debit(t.Context(), debit("d1", 4)); status.Code(err) != codes.Unavailable {
			t.Errorf("first: %v, want UNAVAILABLE", err)
		}
		if _, err := c.Debit(t.Context(), debit("d1", 4)); status.Code(err) != codes.Aborted || reasonOf(err) != "IDEMPOTENCY_KEY_IN_USE" {
			t.Errorf("second: %v, want ABORTED IDEMPOTENCY_KEY_IN_USE", err)
		}
		if bal, ver := f.Balance(t, ws, "client-1"); bal != 10 || ver != 1 {
			t.Errorf("after two refused calls: balance %d v%d, want nothing posted", bal, ver)
		}
		res, err := c.Debit(t.Context(), debit("d1", 4))
		if err != nil || res.GetReplayed() || res.GetBalance() != 6 {
			t.Errorf("third: %v, %v; want posted, not a replay", res, err)
		}
	})
	t.Run("committed, answer lost", func(t *testing.T) {
		t.Parallel()
		f := ledgertest.Start(t)
		c := ledgerClient(t, f)
		f.InjectFault("Credit", ledgertest.Fault{After: true, Code: codes.Unavailable})
		req := &pb.CreditRequest{Workspace: ws, Account: "client-1", Amount: 7, IdempotencyKey: "stripe:pi_1"}
		if _, err := c.Credit(t.Context(), req); status.Code(err) != codes.Unavailable {
			t.Fatalf("first: %v, want UNAVAILABLE", err)
		}
		if bal, _ := f.Balance(t, ws, "client-1"); bal != 7 {
			t.Errorf("balance %d after the lost answer, want 7: the call was applied", bal)
		}
		res, err := c.Credit(t.Context(), req)
		if err != nil || !res.GetReplayed() || res.GetBalance() != 7 {
			t.Errorf("retry with the key: %v, %v; want the replay", res, err)
		}
		if calls := f.Calls("Credit"); len(calls) != 2 || calls[0].Code != codes.Unavailable || calls[1].Code != codes.OK {
			t.Errorf("calls %+v", calls)
		}
	})
	t.Run("delayed past the caller's deadline", func(t *testing.T) {
		t.Parallel()
		f := ledgertest.Start(t)
		c := ledgerClient(t, f)
		f.InjectFault("Credit", ledgertest.Fault{After: true, Delay: time.Minute})
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		start := time.Now()
		_, err := c.Credit(ctx, &pb.CreditRequest{Workspace: ws, Account: "client-1", Amount: 7, IdempotencyKey: "k"})
		if status.Code(err) != codes.DeadlineExceeded || time.Since(start) > 30*time.Second {
			t.Errorf("Credit: %v after %v, want DEADLINE_EXCEEDED at the caller's deadline", err, time.Since(start))
		}
		if bal, _ := f.Balance(t, ws, "client-1"); bal != 7 {
			t.Errorf("balance %d, want 7: applied before the delay, whatever the caller did", bal)
		}
	})
	t.Run("delayed only", func(t *testing.T) {
		t.Parallel()
		f := ledgertest.Start(t)
		c := ledgerClient(t, f)
		f.InjectFault("GetBalance", ledgertest.Fault{Delay: 100 * time.Millisecond})
		start := time.Now()
		if _, err := c.GetBalance(t.Context(), &pb.GetBalanceRequest{Workspace: ws, Account: "a"}); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 100*time.Millisecond {
			t.Errorf("answered after %v, want at least the delay", d)
		}
		if _, err := c.GetBalance(t.Context(), &pb.GetBalanceRequest{Workspace: ws, Account: "a"}); err != nil {
			t.Errorf("the next call: %v", err)
		}
	})
}

// A watch sends what follows its cursor, then each new event; a broken
// watch resumed from the last sequence received repeats nothing. A fault
// refuses a watch before it starts.
func TestWatchEventsFollowsAndBreaks(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	c := ledgerClient(t, f)
	f.Fund(t, ws, "a", 1)
	f.Fund(t, ws, "a", 1)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	st, err := c.WatchEvents(ctx, &pb.WatchEventsRequest{Workspace: ws, AfterSequence: 1})
	if err != nil {
		t.Fatal(err)
	}
	recv := func() *pb.Event {
		t.Helper()
		m, err := st.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		return m.GetEvent()
	}
	if e := recv(); e.GetSequence() != 2 {
		t.Fatalf("first event after 1: %v", e)
	}
	f.Fund(t, ws, "a", 1)
	if e := recv(); e.GetSequence() != 3 {
		t.Fatalf("the next commit: %v", e)
	}
	if calls := f.Calls("WatchEvents"); len(calls) != 1 || calls[0].Code != codes.OK ||
		calls[0].Request.(*pb.WatchEventsRequest).GetAfterSequence() != 1 {
		t.Errorf("the open watch is recorded: %+v", calls)
	}
	f.BreakWatches()
	if _, err := st.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("after BreakWatches: %v, want UNAVAILABLE", err)
	}
	f.Fund(t, ws, "a", 1)
	f.InjectFault("WatchEvents", ledgertest.Fault{Code: codes.Unavailable})
	if st, err = c.WatchEvents(ctx, &pb.WatchEventsRequest{Workspace: ws, AfterSequence: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("a watch with a fault: %v, want UNAVAILABLE", err)
	}
	if st, err = c.WatchEvents(ctx, &pb.WatchEventsRequest{Workspace: ws, AfterSequence: 3}); err != nil {
		t.Fatal(err)
	}
	if e := recv(); e.GetSequence() != 4 {
		t.Fatalf("resumed after 3: %v", e)
	}
	var codesSeen []codes.Code
	for _, call := range f.Calls("WatchEvents") {
		codesSeen = append(codesSeen, call.Code)
	}
	// The broken watch had answered: it started, so it stays OK.
	if diff := cmp.Diff([]codes.Code{codes.OK, codes.Unavailable, codes.OK}, codesSeen); diff != "" {
		t.Errorf("watch outcomes (-want +got):\n%s", diff)
	}
}

// A watch the server refuses is recorded with the code its caller got.
func TestRefusedWatchIsRecordedAsRefused(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	c := ledgerClient(t, f)
	st, err := c.WatchEvents(t.Context(), &pb.WatchEventsRequest{Workspace: ws, Types: []string{"no.such.type"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Recv: %v, want INVALID_ARGUMENT", err)
	}
	if calls := f.Calls("WatchEvents"); len(calls) != 1 || calls[0].Code != codes.InvalidArgument || calls[0].Request == nil {
		t.Errorf("calls %+v, want one refused watch with its request", calls)
	}
}

// Advance moves the ledger's clock and sweeps, as ledgerd's sweeper does:
// a hold past its expiry is released without another call.
func TestAdvanceExpiresHolds(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	c := ledgerClient(t, f)
	f.SetEnabled(t, ws, true)
	f.Fund(t, ws, "client-1", 100)
	h, err := c.CreateHold(t.Context(), &pb.CreateHoldRequest{
		Workspace: ws, Account: "client-1", Amount: 40, IdempotencyKey: "h1", Ttl: durationpb.New(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.Advance(t, 30*time.Minute)
	if got := f.Hold(t, ws, h.GetHold().GetId()); got.GetStatus() != pb.HoldStatus_HOLD_STATUS_ACTIVE {
		t.Errorf("hold after 30 minutes: %v, want ACTIVE", got)
	}
	f.Advance(t, time.Hour)
	if got := f.Hold(t, ws, h.GetHold().GetId()); got.GetStatus() != pb.HoldStatus_HOLD_STATUS_EXPIRED {
		t.Errorf("hold after 90 minutes: %v, want EXPIRED", got)
	}
	if hs := f.Holds(t, ws, "client-1"); len(hs) != 1 || hs[0].GetId() != h.GetHold().GetId() {
		t.Errorf("holds %v", hs)
	}
	if f.Hold(t, ws, "no-such-hold") != nil {
		t.Error("an unknown hold was found")
	}
	evs := f.Events(t, ws)
	if last := evs[len(evs)-1]; last.GetType() != "hold.expired" || last.GetHold().GetId() != h.GetHold().GetId() {
		t.Errorf("last event %v, want hold.expired", last)
	}
	if len(f.Calls("")) != 1 {
		t.Errorf("calls %+v, want only CreateHold", f.Calls(""))
	}
}

func TestCancelRequestWritesRequestCancelled(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	c := ledgerClient(t, f)
	f.SetEnabled(t, ws, true)
	sub, err := c.SubmitRequest(t.Context(), &pb.SubmitRequestRequest{
		Workspace: ws, Account: "client-1", Amount: 5, PaymentMethod: pb.PaymentMethod_PAYMENT_METHOD_CRYPTO, IdempotencyKey: "r",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !f.CancelRequest(t, ws, sub.GetRequest().GetId()) || f.CancelRequest(t, ws, sub.GetRequest().GetId()) {
		t.Fatal("a pending request is cancelled once")
	}
	if f.CancelRequest(t, ws, "no-such-request") {
		t.Error("an unknown request was cancelled")
	}
	evs := f.Events(t, ws)
	if last := evs[len(evs)-1]; last.GetType() != "request.cancelled" || last.GetRequest().GetId() != sub.GetRequest().GetId() {
		t.Errorf("last event: %v", last)
	}
}

// WithAuth: the production authorizer, with tokens minted by the harness.
func TestWithAuth(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t, ledgertest.WithAuth())
	f.SetEnabled(t, ws, true) // setup needs no token
	c := ledgerClient(t, f)
	as := func(tok string) context.Context {
		return metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+tok)
	}
	credit := &pb.CreditRequest{Workspace: ws, Account: "client-1", Amount: 5, IdempotencyKey: "k"}
	for _, tt := range []struct {
		name string
		ctx  context.Context
		want codes.Code
	}{
		{"no token", t.Context(), codes.Unauthenticated},
		{"not a token", as("s3cret"), codes.Unauthenticated},
		{"a client cannot move credits", as(f.ClientToken(t, ws, "client-1")), codes.PermissionDenied},
		{"an admin cannot either", as(f.AdminToken(t, ws)), codes.PermissionDenied},
		{"another workspace's service", as(f.ServiceToken(t, "agency-2")), codes.NotFound},
		{"the workspace's service", as(f.ServiceToken(t, ws)), codes.OK},
	} {
		if _, err := c.Credit(tt.ctx, credit); status.Code(err) != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := c.GetBalance(as(f.ClientToken(t, ws, "client-2")), &pb.GetBalanceRequest{Workspace: ws, Account: "client-1"}); status.Code(err) != codes.NotFound {
		t.Errorf("a client reading another's balance: %v, want NOT_FOUND", err)
	}
}

func TestWithServerTLS(t *testing.T) {
	t.Parallel()
	p := tlstest.New(t)
	cfg := p.ServerConfig(t)
	cfg.ClientCAs, cfg.ClientAuth = p.Pool, tls.RequireAndVerifyClientCert
	f := ledgertest.Start(t, ledgertest.WithServerTLS(cfg))
	f.Fund(t, ws, "client-1", 3)
	conn := dial(t, f.Addr, grpc.WithTransportCredentials(credentials.NewTLS(p.ClientConfig(t, true))))
	res, err := pb.NewCreditLedgerClient(conn).GetBalance(t.Context(), &pb.GetBalanceRequest{Workspace: ws, Account: "client-1"})
	if err != nil || res.GetBalance().GetBalance() != 3 {
		t.Errorf("GetBalance over mTLS: %v, %v", res, err)
	}
	plain := pb.NewCreditLedgerClient(dial(t, f.Addr))
	if _, err := plain.GetBalance(t.Context(), &pb.GetBalanceRequest{Workspace: ws, Account: "client-1"}); status.Code(err) != codes.Unavailable {
		t.Errorf("plaintext to the TLS port: %v, want UNAVAILABLE", err)
	}
}

// WithGateway: the REST gateway in front of the same server, its calls
// recorded like any other.
func TestWithGateway(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t, ledgertest.WithGateway())
	f.Fund(t, ws, "client-1", 12)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, f.URL+"/v1/workspaces/"+ws+"/accounts/client-1/balance", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var got struct {
		Balance string `json:"balance"`
	}
	if err := json.Unmarshal(body, &got); err != nil || res.StatusCode != http.StatusOK || got.Balance != "12" {
		t.Errorf("GET balance: HTTP %d %s (%v)", res.StatusCode, body, err)
	}
	if calls := f.Calls("GetBalance"); len(calls) != 1 || calls[0].Code != codes.OK {
		t.Errorf("calls %+v, want the gateway's GetBalance", calls)
	}
}

// Each Start is a ledger of its own.
func TestServersAreIsolated(t *testing.T) {
	t.Parallel()
	a, b := ledgertest.Start(t), ledgertest.Start(t)
	a.Fund(t, ws, "client-1", 5)
	if bal, ver := b.Balance(t, ws, "client-1"); bal != 0 || ver != 0 {
		t.Errorf("the other server's account: %d v%d, want nothing", bal, ver)
	}
}
