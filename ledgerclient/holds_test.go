package ledgerclient_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledgertest"
	"github.com/creditledger/creditledger/ledgerclient"
)

func holdReq(key string, amount int64) *pb.CreateHoldRequest {
	return &pb.CreateHoldRequest{
		Workspace: ws, Account: "client-1", Amount: amount, IdempotencyKey: key,
		Kind: pb.TransactionKind_TRANSACTION_KIND_SERVICE_PURCHASE, Reference: "order:1", Ttl: durationpb.New(time.Hour),
	}
}

func fundedLedger(t *testing.T, credits int64) *ledgertest.Server {
	t.Helper()
	f := ledgertest.Start(t)
	f.SetEnabled(t, ws, true)
	f.Fund(t, ws, "client-1", credits)
	return f
}

func TestHoldWritesAreRetriedWithTheSameKeyAndTakeEffectOnce(t *testing.T) {
	t.Parallel()
	f := fundedLedger(t, 100)
	c := dial(t, f.Addr)
	// Each write's first attempt takes effect but its answer is lost.
	lost := ledgertest.Fault{After: true, Code: codes.Unavailable}
	f.InjectFault("CreateHold", lost)
	f.InjectFault("CaptureHold", lost)
	f.InjectFault("ReverseTransaction", lost)

	h, err := c.CreateHold(t.Context(), holdReq("order:1:hold", 40))
	if err != nil {
		t.Fatalf("CreateHold: %v", err)
	}
	if !h.GetReplayed() || h.GetAvailable() != 60 || h.GetHold().GetStatus() != pb.HoldStatus_HOLD_STATUS_ACTIVE {
		t.Errorf("CreateHold = %v, want the replay of the lost first attempt, available 60", h)
	}
	if n := len(f.Holds(t, ws, "client-1")); n != 1 {
		t.Errorf("%d holds, want 1", n)
	}
	b, err := c.Balance(t.Context(), ws, "client-1")
	if err != nil || b.GetBalance() != 100 || b.GetHeld() != 40 || b.GetAvailable() != 60 {
		t.Errorf("balance = %v, %v; want balance 100 held 40 available 60", b, err)
	}

	capRes, err := c.CaptureHold(t.Context(), &pb.CaptureHoldRequest{Workspace: ws, HoldId: h.GetHold().GetId(), Amount: 30, IdempotencyKey: "order:1:capture"})
	if err != nil {
		t.Fatalf("CaptureHold: %v", err)
	}
	tx := capRes.GetTransaction()
	if !capRes.GetReplayed() || tx.GetAmount() != 30 || tx.GetType() != pb.TransactionType_TRANSACTION_TYPE_OUT ||
		tx.GetKind() != pb.TransactionKind_TRANSACTION_KIND_SERVICE_PURCHASE || tx.GetHoldId() != h.GetHold().GetId() ||
		capRes.GetHold().GetCapturedAmount() != 30 || capRes.GetHold().GetTransactionId() != tx.GetId() {
		t.Errorf("CaptureHold = %v", capRes)
	}
	if bal, _ := f.Balance(t, ws, "client-1"); bal != 70 {
		t.Errorf("balance after capturing 30 of 40 = %d, want 70 (the rest released)", bal)
	}

	rev, err := c.ReverseTransaction(t.Context(), &pb.ReverseTransactionRequest{
		Workspace: ws, TransactionId: tx.GetId(), Amount: 10, Reason: "refund", IdempotencyKey: "refund:1",
	})
	if err != nil {
		t.Fatalf("ReverseTransaction: %v", err)
	}
	if !rev.GetReplayed() || rev.GetBalance() != 80 || rev.GetTransaction().GetKind() != pb.TransactionKind_TRANSACTION_KIND_REVERSAL ||
		rev.GetTransaction().GetType() != pb.TransactionType_TRANSACTION_TYPE_IN || rev.GetTransaction().GetReversesTransactionId() != tx.GetId() ||
		rev.GetOriginal().GetReversedAmount() != 10 {
		t.Errorf("ReverseTransaction = %v", rev)
	}
	got, err := c.GetTransaction(t.Context(), &pb.GetTransactionRequest{Workspace: ws, TransactionId: tx.GetId()})
	if err != nil || got.GetTransaction().GetReversedAmount() != 10 {
		t.Errorf("GetTransaction = %v, %v; want reversed_amount 10", got, err)
	}
	for _, m := range []string{"CreateHold", "CaptureHold", "ReverseTransaction"} {
		calls := f.Calls(m)
		if len(calls) != 2 || calls[0].IdempotencyKey != calls[1].IdempotencyKey {
			t.Errorf("%s calls %+v, want two with one key", m, calls)
		}
	}
	if n := len(f.Transactions(t, ws, "client-1")); n != 3 {
		t.Errorf("%d entries, want 3 (fund, capture, reversal)", n)
	}
}

func TestHoldEndsOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		end  func(t *testing.T, f *ledgertest.Server, c *ledgerclient.Client, id string)
		then func(c *ledgerclient.Client, id string) error
		want pb.HoldStatus
	}{
		{
			name: "captured, then captured with another key",
			end:  capture("k1"),
			then: func(c *ledgerclient.Client, id string) error {
				_, err := c.CaptureHold(context.Background(), &pb.CaptureHoldRequest{Workspace: ws, HoldId: id, IdempotencyKey: "k2"})
				return err
			},
			want: pb.HoldStatus_HOLD_STATUS_CAPTURED,
		},
		{
			name: "captured, then voided",
			end:  capture("k1"),
			then: voidWith("v1"),
			want: pb.HoldStatus_HOLD_STATUS_CAPTURED,
		},
		{
			name: "voided, then captured",
			end: func(t *testing.T, _ *ledgertest.Server, c *ledgerclient.Client, id string) {
				t.Helper()
				if err := voidWith("v1")(c, id); err != nil {
					t.Fatal(err)
				}
			},
			then: func(c *ledgerclient.Client, id string) error {
				_, err := c.CaptureHold(context.Background(), &pb.CaptureHoldRequest{Workspace: ws, HoldId: id, IdempotencyKey: "k1"})
				return err
			},
			want: pb.HoldStatus_HOLD_STATUS_VOIDED,
		},
		{
			name: "expired, then captured",
			end:  func(t *testing.T, f *ledgertest.Server, _ *ledgerclient.Client, _ string) { f.Advance(t, 2*time.Hour) },
			then: func(c *ledgerclient.Client, id string) error {
				_, err := c.CaptureHold(context.Background(), &pb.CaptureHoldRequest{Workspace: ws, HoldId: id, IdempotencyKey: "k1"})
				return err
			},
			want: pb.HoldStatus_HOLD_STATUS_EXPIRED,
		},
		{
			name: "expired, then voided",
			end:  func(t *testing.T, f *ledgertest.Server, _ *ledgerclient.Client, _ string) { f.Advance(t, 2*time.Hour) },
			then: voidWith("v1"),
			want: pb.HoldStatus_HOLD_STATUS_EXPIRED,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := fundedLedger(t, 100)
			c := dial(t, f.Addr)
			h, err := c.CreateHold(t.Context(), holdReq("h", 40))
			if err != nil {
				t.Fatal(err)
			}
			id := h.GetHold().GetId()
			tt.end(t, f, c, id)
			before := len(f.Calls(""))
			err = tt.then(c, id)
			if !errors.Is(err, ledgerclient.ErrHoldNotActive) || !ledgerclient.IsRefused(err) {
				t.Fatalf("error = %v, want HOLD_NOT_ACTIVE (a refusal)", err)
			}
			if n := len(f.Calls("")) - before; n != 1 {
				t.Errorf("%d calls, want 1: a refusal is not retried", n)
			}
			got, err := c.Hold(t.Context(), ws, id)
			if err != nil || got.GetStatus() != tt.want {
				t.Errorf("hold = %v, %v; want %v", got, err, tt.want)
			}
			b, _ := c.Balance(t.Context(), ws, "client-1")
			if b.GetHeld() != 0 || b.GetAvailable() != b.GetBalance() {
				t.Errorf("balance %v: an ended hold holds nothing", b)
			}
		})
	}
}

func capture(key string) func(t *testing.T, f *ledgertest.Server, c *ledgerclient.Client, id string) {
	return func(t *testing.T, _ *ledgertest.Server, c *ledgerclient.Client, id string) {
		t.Helper()
		if _, err := c.CaptureHold(t.Context(), &pb.CaptureHoldRequest{Workspace: ws, HoldId: id, IdempotencyKey: key}); err != nil {
			t.Fatal(err)
		}
	}
}

func voidWith(key string) func(c *ledgerclient.Client, id string) error {
	return func(c *ledgerclient.Client, id string) error {
		_, err := c.VoidHold(context.Background(), &pb.VoidHoldRequest{Workspace: ws, HoldId: id, IdempotencyKey: key})
		return err
	}
}

func TestHoldsReduceWhatCanBeSpent(t *testing.T) {
	t.Parallel()
	f := fundedLedger(t, 100)
	c := dial(t, f.Addr)
	if _, err := c.CreateHold(t.Context(), holdReq("h1", 70)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Debit(t.Context(), debit("d1", 31)); !errors.Is(err, ledgerclient.ErrInsufficientCredits) {
		t.Errorf("Debit above available: %v, want INSUFFICIENT_CREDITS", err)
	}
	if _, err := c.CreateHold(t.Context(), holdReq("h2", 31)); !errors.Is(err, ledgerclient.ErrInsufficientCredits) {
		t.Errorf("CreateHold above available: %v, want INSUFFICIENT_CREDITS", err)
	}
	chk, err := c.CheckCreditPayment(t.Context(), &pb.CheckCreditPaymentRequest{Workspace: ws, Account: "client-1", Cost: &pb.CheckCreditPaymentRequest_Credits{Credits: 31}})
	if err != nil || chk.GetAllowed() || chk.GetReason() != ledgerclient.ReasonInsufficientCredits {
		t.Errorf("CheckCreditPayment of 31 with 30 available = %v, %v", chk, err)
	}
	if _, err := c.Debit(t.Context(), debit("d2", 30)); err != nil {
		t.Errorf("Debit of what is available: %v", err)
	}
	f.SetEnabled(t, ws, false)
	if _, err := c.CreateHold(t.Context(), holdReq("h3", 1)); !errors.Is(err, ledgerclient.ErrCreditPaymentsDisabled) {
		t.Errorf("CreateHold while disabled: %v, want CREDIT_PAYMENTS_DISABLED", err)
	}
	list, err := c.ListHolds(t.Context(), &pb.ListHoldsRequest{Workspace: ws, Account: "client-1", Status: pb.HoldStatus_HOLD_STATUS_ACTIVE})
	if err != nil || len(list.GetHolds()) != 1 || list.GetHolds()[0].GetAmount() != 70 {
		t.Errorf("ListHolds = %v, %v", list, err)
	}
}

func TestReverseTransaction(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// setup returns the entry to reverse.
		setup    func(t *testing.T, f *ledgertest.Server, c *ledgerclient.Client) string
		amounts  []int64 // reversed in turn; the last one is checked
		sentinel error   // nil: the last reversal posts
		balance  int64
	}{
		{"a debit in two parts", spent(30), []int64{10, 0}, nil, 100},
		{"a debit beyond what remains", spent(30), []int64{20, 11}, ledgerclient.ErrReversalExceedsOriginal, 90},
		{"a debit already reversed in full", spent(30), []int64{0, 0}, ledgerclient.ErrReversalExceedsOriginal, 100},
		{"a credit not spent", credited(50), []int64{50}, nil, 100},
		{"a credit already spent", func(t *testing.T, f *ledgertest.Server, c *ledgerclient.Client) string {
			t.Helper()
			id := credited(50)(t, f, c)
			if _, err := c.Debit(t.Context(), debit("spend", 120)); err != nil {
				t.Fatal(err)
			}
			return id
		}, []int64{50}, ledgerclient.ErrInsufficientCredits, 30},
		{"a reversal", func(t *testing.T, f *ledgertest.Server, c *ledgerclient.Client) string {
			t.Helper()
			id := spent(30)(t, f, c)
			r, err := c.ReverseTransaction(t.Context(), &pb.ReverseTransactionRequest{Workspace: ws, TransactionId: id, IdempotencyKey: "r0"})
			if err != nil {
				t.Fatal(err)
			}
			return r.GetTransaction().GetId()
		}, []int64{0}, ledgerclient.ErrNotReversible, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := fundedLedger(t, 100)
			c := dial(t, f.Addr)
			id := tt.setup(t, f, c)
			var err error
			for i, amount := range tt.amounts {
				_, err = c.ReverseTransaction(t.Context(), &pb.ReverseTransactionRequest{
					Workspace: ws, TransactionId: id, Amount: amount, Reason: "test", IdempotencyKey: "r" + string(rune('a'+i)),
				})
				if i < len(tt.amounts)-1 && err != nil {
					t.Fatalf("reversal %d: %v", i, err)
				}
			}
			if tt.sentinel == nil && err != nil {
				t.Fatalf("last reversal: %v", err)
			}
			if tt.sentinel != nil && (!errors.Is(err, tt.sentinel) || !ledgerclient.IsRefused(err)) {
				t.Fatalf("last reversal: %v, want %v", err, tt.sentinel)
			}
			if bal, _ := f.Balance(t, ws, "client-1"); bal != tt.balance {
				t.Errorf("balance %d, want %d", bal, tt.balance)
			}
		})
	}
}

func spent(amount int64) func(t *testing.T, f *ledgertest.Server, c *ledgerclient.Client) string {
	return func(t *testing.T, _ *ledgertest.Server, c *ledgerclient.Client) string {
		t.Helper()
		res, err := c.Debit(t.Context(), debit("spent", amount))
		if err != nil {
			t.Fatal(err)
		}
		return res.GetTransaction().GetId()
	}
}

func credited(amount int64) func(t *testing.T, f *ledgertest.Server, c *ledgerclient.Client) string {
	return func(t *testing.T, _ *ledgertest.Server, c *ledgerclient.Client) string {
		t.Helper()
		res, err := c.Credit(t.Context(), &pb.CreditRequest{Workspace: ws, Account: "client-1", Amount: amount, IdempotencyKey: "credited"})
		if err != nil {
			t.Fatal(err)
		}
		return res.GetTransaction().GetId()
	}
}

func TestHoldKeyReusedForAnotherHoldIsRefused(t *testing.T) {
	t.Parallel()
	f := fundedLedger(t, 100)
	c := dial(t, f.Addr)
	first, err := c.CreateHold(t.Context(), holdReq("h", 10))
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.CreateHold(t.Context(), holdReq("h", 10))
	if err != nil || !again.GetReplayed() || again.GetHold().GetId() != first.GetHold().GetId() {
		t.Errorf("replay = %v, %v", again, err)
	}
	if _, err := c.CreateHold(t.Context(), holdReq("h", 11)); !errors.Is(err, ledgerclient.ErrIdempotencyKeyReused) {
		t.Errorf("same key, other amount: %v, want IDEMPOTENCY_KEY_REUSED", err)
	}
	if diff := cmp.Diff([]int64{10}, amountsOf(f.Holds(t, ws, "client-1"))); diff != "" {
		t.Errorf("holds (-want +got):\n%s", diff)
	}
}

func amountsOf(hs []*pb.Hold) []int64 {
	var out []int64
	for _, h := range hs {
		out = append(out, h.GetAmount())
	}
	return out
}
