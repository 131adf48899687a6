package ledgerclient_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/type/money"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledgertest"
	"github.com/creditledger/creditledger/ledgerclient"
)

const ws = "agency-1"

// dial connects to the ledger with a fast backoff so that retries do not slow the tests.
func dial(tb testing.TB, addr string, opts ...ledgerclient.Option) *ledgerclient.Client {
	tb.Helper()
	opts = append([]ledgerclient.Option{
		ledgerclient.WithBackoff(time.Millisecond, 5*time.Millisecond),
		ledgerclient.WithAttemptTimeout(2 * time.Second),
	}, opts...)
	c, err := ledgerclient.Dial(context.Background(), addr, opts...)
	if err != nil {
		tb.Fatalf("Dial: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

func keysOf(calls []ledgertest.Call) []string {
	var out []string
	for _, c := range calls {
		out = append(out, c.IdempotencyKey)
	}
	return out
}

func debit(key string, amount int64) *pb.DebitRequest {
	return &pb.DebitRequest{
		Workspace: ws, Account: "client-1", Amount: amount, IdempotencyKey: key,
		Kind: pb.TransactionKind_TRANSACTION_KIND_SERVICE_PURCHASE, Reference: "order:1",
	}
}

func TestRetryUnavailableThenSuccessPostsOnce(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	f.SetEnabled(t, ws, true)
	f.Fund(t, ws, "client-1", 100)
	var retries []ledgerclient.RetryEvent
	c := dial(t, f.Addr, ledgerclient.WithOnRetry(func(e ledgerclient.RetryEvent) { retries = append(retries, e) }))
	f.InjectFault("Debit", ledgertest.Fault{Code: codes.Unavailable}, ledgertest.Fault{Code: codes.Unavailable})

	res, err := c.Debit(t.Context(), debit("checkout-order:1", 30))
	if err != nil {
		t.Fatalf("Debit: %v", err)
	}
	if res.GetBalance() != 70 || res.GetReplayed() {
		t.Errorf("Debit = balance %d replayed %v, want 70 false", res.GetBalance(), res.GetReplayed())
	}
	if diff := cmp.Diff([]string{"checkout-order:1", "checkout-order:1", "checkout-order:1"}, keysOf(f.Calls("Debit"))); diff != "" {
		t.Errorf("keys seen by the server (-want +got):\n%s", diff)
	}
	if len(retries) != 2 || retries[0].Attempt != 1 || retries[1].Attempt != 2 || retries[0].Err.Code != codes.Unavailable {
		t.Errorf("retry events = %+v, want attempts 1 and 2 after UNAVAILABLE", retries)
	}
	if bal, ver := f.Balance(t, ws, "client-1"); bal != 70 || ver != 2 {
		t.Errorf("server balance = %d v%d, want 70 v2", bal, ver)
	}
}

func TestBusinessRefusalsAreNeverRetried(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		setup    func(t *testing.T, f *ledgertest.Server)
		req      *pb.DebitRequest
		sentinel error
		code     codes.Code
	}{
		{
			name:     "insufficient credits",
			setup:    func(t *testing.T, f *ledgertest.Server) { f.SetEnabled(t, ws, true); f.Fund(t, ws, "client-1", 10) },
			req:      debit("k1", 11),
			sentinel: ledgerclient.ErrInsufficientCredits,
			code:     codes.FailedPrecondition,
		},
		{
			name:     "credit payments disabled",
			setup:    func(t *testing.T, f *ledgertest.Server) { f.Fund(t, ws, "client-1", 10) },
			req:      debit("k2", 1),
			sentinel: ledgerclient.ErrCreditPaymentsDisabled,
			code:     codes.FailedPrecondition,
		},
		{
			name:  "version mismatch",
			setup: func(t *testing.T, f *ledgertest.Server) { f.SetEnabled(t, ws, true); f.Fund(t, ws, "client-1", 10) },
			req: func() *pb.DebitRequest {
				r := debit("k3", 1)
				v := int64(7)
				r.ExpectedVersion = &v
				return r
			}(),
			sentinel: ledgerclient.ErrVersionMismatch,
			code:     codes.Aborted,
		},
		{
			name:     "missing idempotency key",
			setup:    func(t *testing.T, f *ledgertest.Server) { f.SetEnabled(t, ws, true); f.Fund(t, ws, "client-1", 10) },
			req:      debit("", 1),
			sentinel: ledgerclient.ErrInvalidArgument,
			code:     codes.InvalidArgument,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := ledgertest.Start(t)
			tt.setup(t, f)
			c := dial(t, f.Addr)
			_, err := c.Debit(t.Context(), tt.req)
			if !errors.Is(err, tt.sentinel) {
				t.Fatalf("Debit error = %v, want %v", err, tt.sentinel)
			}
			var e *ledgerclient.Error
			if !errors.As(err, &e) || e.Code != tt.code {
				t.Fatalf("Debit error = %#v, want an *Error with code %v", err, tt.code)
			}
			if got := status.Code(err); got != tt.code {
				t.Errorf("status.Code = %v, want %v (GRPCStatus kept)", got, tt.code)
			}
			if n := len(f.Calls("Debit")); n != 1 {
				t.Errorf("server saw %d calls, want 1 (never retried)", n)
			}
			if !ledgerclient.IsRefused(err) || ledgerclient.IsTransient(err) {
				t.Errorf("IsRefused=%v IsTransient=%v, want true false", ledgerclient.IsRefused(err), ledgerclient.IsTransient(err))
			}
		})
	}
}

func TestInsufficientCreditsCarriesMetadata(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	f.SetEnabled(t, ws, true)
	f.Fund(t, ws, "client-1", 10)
	c := dial(t, f.Addr)
	_, err := c.Debit(t.Context(), debit("k", 25))
	var e *ledgerclient.Error
	if !errors.As(err, &e) {
		t.Fatalf("Debit error = %v, want *Error", err)
	}
	want := map[string]string{"balance": "10", "required": "25"}
	if diff := cmp.Diff(want, e.Metadata); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
	if e.Reason != ledgerclient.ReasonInsufficientCredits || ledgerclient.ReasonOf(err) != ledgerclient.ReasonInsufficientCredits {
		t.Errorf("reason = %q", e.Reason)
	}
	if errors.Is(err, ledgerclient.ErrCreditPaymentsDisabled) {
		t.Error("INSUFFICIENT_CREDITS matched ErrCreditPaymentsDisabled")
	}
}

func TestKeyInUseIsRetriedWithTheSameKey(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	c := dial(t, f.Addr)
	f.InjectFault("Credit", ledgertest.Fault{Code: codes.Aborted, Reason: ledgerclient.ReasonIdempotencyKeyInUse})
	res, err := c.Credit(t.Context(), &pb.CreditRequest{Workspace: ws, Account: "client-1", Amount: 5, IdempotencyKey: "stripe:pi_1"})
	if err != nil {
		t.Fatalf("Credit: %v", err)
	}
	if res.GetBalance() != 5 {
		t.Errorf("balance = %d, want 5", res.GetBalance())
	}
	if diff := cmp.Diff([]string{"stripe:pi_1", "stripe:pi_1"}, keysOf(f.Calls("Credit"))); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
}

func TestAttemptTimeoutAfterCommitIsResolvedByReplay(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	f.SetEnabled(t, ws, true)
	f.Fund(t, ws, "client-1", 100)
	// Long enough for any real call, short beside the fault's delay.
	c := dial(t, f.Addr, ledgerclient.WithAttemptTimeout(2*time.Second))
	// The first Debit commits, then its answer is held past the attempt deadline.
	f.InjectFault("Debit", ledgertest.Fault{After: true, Delay: time.Minute})

	res, err := c.Debit(t.Context(), debit("invoice:7", 40))
	if err != nil {
		t.Fatalf("Debit: %v", err)
	}
	if !res.GetReplayed() || res.GetBalance() != 60 {
		t.Errorf("Debit = replayed %v balance %d, want the replay of the first attempt (true, 60)", res.GetReplayed(), res.GetBalance())
	}
	calls := f.Calls("Debit")
	if len(calls) != 2 || calls[0].Code != codes.DeadlineExceeded && calls[0].Code != codes.Canceled {
		t.Errorf("calls = %+v, want a timed-out attempt then the replay", calls)
	}
	var outs int
	for _, tx := range f.Transactions(t, ws, "client-1") {
		if tx.GetType() == pb.TransactionType_TRANSACTION_TYPE_OUT {
			outs++
		}
	}
	if outs != 1 {
		t.Errorf("%d debits posted, want exactly 1", outs)
	}
}

func TestRetriesAreBounded(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	c := dial(t, f.Addr, ledgerclient.WithMaxAttempts(3))
	for range 10 {
		f.InjectFault("GetBalance", ledgertest.Fault{Code: codes.Unavailable})
	}
	_, err := c.Balance(t.Context(), ws, "client-1")
	if !errors.Is(err, ledgerclient.ErrUnavailable) || !ledgerclient.IsTransient(err) || ledgerclient.IsRefused(err) {
		t.Fatalf("Balance error = %v, want a transient UNAVAILABLE", err)
	}
	if n := len(f.Calls("GetBalance")); n != 3 {
		t.Errorf("server saw %d calls, want 3", n)
	}
}

func TestCallerDeadlineStopsRetries(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	c := dial(t, f.Addr, ledgerclient.WithBackoff(time.Hour, time.Hour), ledgerclient.WithMaxAttempts(100))
	f.InjectFault("GetBalance", ledgertest.Fault{Code: codes.Unavailable})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Balance(ctx, ws, "client-1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Balance error = %v, want it to wrap context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("call took %v; the caller's deadline was not honoured", d)
	}
}

func TestTokenIsSentOnEveryCall(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t, ledgertest.WithAuth())
	tok := f.ClientToken(t, ws, "client-1")

	anon := dial(t, f.Addr)
	_, err := anon.Balance(t.Context(), ws, "client-1")
	if !errors.Is(err, ledgerclient.ErrUnauthenticated) {
		t.Fatalf("without token: %v, want UNAUTHENTICATED", err)
	}
	if ledgerclient.IsRefused(err) || ledgerclient.IsTransient(err) {
		t.Error("UNAUTHENTICATED must be neither a refusal (nothing was evaluated) nor transient")
	}

	c := dial(t, f.Addr, ledgerclient.WithToken(tok))
	if _, err := c.Balance(t.Context(), ws, "client-1"); err != nil {
		t.Fatalf("with token: %v", err)
	}
	calls := f.Calls("GetBalance")
	if got := calls[len(calls)-1].Authorization; got != "Bearer "+tok {
		t.Errorf("authorization = %q, want %q", got, "Bearer "+tok)
	}
}

func TestRawClientsShareThePolicy(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	c := dial(t, f.Addr)
	f.InjectFault("GetSettings", ledgertest.Fault{Code: codes.Unavailable})
	if _, err := c.Settings().GetSettings(t.Context(), &pb.GetSettingsRequest{Workspace: ws}); err != nil {
		t.Fatalf("GetSettings through the raw client: %v", err)
	}
	if n := len(f.Calls("GetSettings")); n != 2 {
		t.Errorf("server saw %d calls, want 2", n)
	}
	_, err := c.Ledger().GetRequest(t.Context(), &pb.GetRequestRequest{Workspace: ws, RequestId: "nope"})
	if !errors.Is(err, ledgerclient.ErrNotFound) {
		t.Errorf("GetRequest error = %v, want ErrNotFound", err)
	}
}

func TestCreatePackageRecoversFromAmbiguousFailure(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	c := dial(t, f.Addr)
	f.InjectFault("CreatePackage", ledgertest.Fault{After: true, Code: codes.Unavailable})
	req := &pb.CreatePackageRequest{Workspace: ws, PackageId: "starter", CreditPackage: &pb.CreditPackage{
		DisplayName: "Starter", Credits: 100, Price: &money.Money{CurrencyCode: "USD", Units: 10},
	}}
	res, err := c.CreatePackage(t.Context(), req)
	if err != nil {
		t.Fatalf("CreatePackage: %v", err)
	}
	if res.GetCreditPackage().GetId() != "starter" || !res.GetCreditPackage().GetActive() {
		t.Errorf("package = %v", res.GetCreditPackage())
	}
	// A genuine duplicate is still reported.
	if _, err := c.CreatePackage(t.Context(), req); !errors.Is(err, ledgerclient.ErrAlreadyExists) {
		t.Errorf("second CreatePackage = %v, want ALREADY_EXISTS", err)
	}
	// Without a package_id the server picks the id: never retried.
	f.InjectFault("CreatePackage", ledgertest.Fault{Code: codes.Unavailable})
	req.PackageId = ""
	if _, err := c.CreatePackage(t.Context(), req); !errors.Is(err, ledgerclient.ErrUnavailable) {
		t.Errorf("CreatePackage without id = %v, want UNAVAILABLE unretried", err)
	}
}

func TestTransactionsWalksEveryPage(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	c := dial(t, f.Addr)
	for i := range 7 {
		if _, err := c.Credit(t.Context(), &pb.CreditRequest{Workspace: ws, Account: "a", Amount: int64(i + 1), IdempotencyKey: fmt.Sprint("k", i)}); err != nil {
			t.Fatal(err)
		}
	}
	var versions []int64
	for tx, err := range c.Transactions(t.Context(), &pb.ListTransactionsRequest{Workspace: ws, Account: "a", PageSize: 3}) {
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, tx.GetAccountVersion())
	}
	if diff := cmp.Diff([]int64{7, 6, 5, 4, 3, 2, 1}, versions); diff != "" {
		t.Errorf("versions (-want +got):\n%s", diff)
	}
	got := f.Calls("ListTransactions")
	if len(got) != 3 {
		t.Errorf("%d pages fetched, want 3", len(got))
	}
}

func TestSetCreditPaymentsEnabled(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	c := dial(t, f.Addr)
	st, err := c.SetCreditPaymentsEnabled(t.Context(), ws, true)
	if err != nil {
		t.Fatal(err)
	}
	want := &pb.Settings{Workspace: ws, CreditPaymentsEnabled: true, PaymentMethods: []pb.PaymentMethod{ // never chosen: every method
		pb.PaymentMethod_PAYMENT_METHOD_BANK_TRANSFER, pb.PaymentMethod_PAYMENT_METHOD_CRYPTO,
		pb.PaymentMethod_PAYMENT_METHOD_STRIPE, pb.PaymentMethod_PAYMENT_METHOD_PAYPAL,
	}}
	if diff := cmp.Diff(want, st, protocmp.Transform(), protocmp.IgnoreFields(&pb.Settings{}, "update_time")); diff != "" {
		t.Errorf("settings (-want +got):\n%s", diff)
	}
}

func TestErrorClassification(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err       *ledgerclient.Error
		refused   bool
		transient bool
	}{
		{&ledgerclient.Error{Code: codes.FailedPrecondition, Reason: "INSUFFICIENT_CREDITS"}, true, false},
		{&ledgerclient.Error{Code: codes.FailedPrecondition, Reason: "CREDIT_PAYMENTS_DISABLED"}, true, false},
		{&ledgerclient.Error{Code: codes.Aborted, Reason: "VERSION_MISMATCH"}, true, false},
		{&ledgerclient.Error{Code: codes.Aborted, Reason: "IDEMPOTENCY_KEY_IN_USE"}, false, true},
		{&ledgerclient.Error{Code: codes.InvalidArgument, Reason: "IDEMPOTENCY_KEY_REUSED"}, false, false},
		{&ledgerclient.Error{Code: codes.InvalidArgument, Reason: "INVALID_ARGUMENT"}, true, false},
		{&ledgerclient.Error{Code: codes.NotFound, Reason: "NOT_FOUND"}, true, false},
		{&ledgerclient.Error{Code: codes.Unavailable}, false, true},
		{&ledgerclient.Error{Code: codes.DeadlineExceeded}, false, true},
		{&ledgerclient.Error{Code: codes.Internal, Reason: "INTERNAL"}, false, true},
		{&ledgerclient.Error{Code: codes.Unauthenticated}, false, false},
		{&ledgerclient.Error{Code: codes.PermissionDenied}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			t.Parallel()
			wrapped := fmt.Errorf("pay: %w", tt.err)
			if got := ledgerclient.IsRefused(wrapped); got != tt.refused {
				t.Errorf("IsRefused = %v, want %v", got, tt.refused)
			}
			if got := ledgerclient.IsTransient(wrapped); got != tt.transient {
				t.Errorf("IsTransient = %v, want %v", got, tt.transient)
			}
		})
	}
	if ledgerclient.IsRefused(errors.New("x")) || ledgerclient.IsTransient(nil) {
		t.Error("foreign errors must be neither")
	}
}

func TestParseMoney(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    *money.Money
		wantErr bool
	}{
		{in: "USD 3.51", want: &money.Money{CurrencyCode: "USD", Units: 3, Nanos: 510_000_000}},
		{in: "USD:10", want: &money.Money{CurrencyCode: "USD", Units: 10}},
		{in: "0.000000001 EUR", want: &money.Money{CurrencyCode: "EUR", Nanos: 1}},
		{in: "USD -1", wantErr: true},
		{in: "USD 1.0000000001", wantErr: true},
		{in: "usd 1", wantErr: true},
		{in: "USD 1e3", wantErr: true},
		{in: "USD", wantErr: true},
		{in: "USD .5", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ledgerclient.ParseMoney(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseMoney(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if got != nil {
				back, err := ledgerclient.ParseMoney(ledgerclient.FormatMoney(got))
				if err != nil || !cmp.Equal(got, back, protocmp.Transform()) {
					t.Errorf("round trip of %q via %q failed: %v", tt.in, ledgerclient.FormatMoney(got), err)
				}
			}
		})
	}
	if got := ledgerclient.FormatMoney(&money.Money{CurrencyCode: "USD", Units: 3, Nanos: 500_000_000}); got != "USD 3.50" {
		t.Errorf("FormatMoney = %q, want USD 3.50", got)
	}
}
