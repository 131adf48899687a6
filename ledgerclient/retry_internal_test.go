package ledgerclient

import (
	"testing"
	"time"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
)

func TestBackoffIsBoundedExponentialWithJitter(t *testing.T) {
	t.Parallel()
	c := &Client{opts: options{initialBackoff: 100 * time.Millisecond, maxBackoff: time.Second}}
	tests := []struct {
		attempt int
		ceiling time.Duration
	}{
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{3, 400 * time.Millisecond},
		{4, 800 * time.Millisecond},
		{5, time.Second},
		{50, time.Second},
	}
	for _, tt := range tests {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := c.backoff(tt.attempt)
			if d < tt.ceiling/2 || d > tt.ceiling {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", tt.attempt, d, tt.ceiling/2, tt.ceiling)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("backoff(%d) always %v: no jitter", tt.attempt, seen)
		}
	}
}

func TestRetryableMethods(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		method string
		req    any
		want   bool
	}{
		{"debit with key", pb.CreditLedger_Debit_FullMethodName, &pb.DebitRequest{IdempotencyKey: "k"}, true},
		{"debit without key", pb.CreditLedger_Debit_FullMethodName, &pb.DebitRequest{}, false},
		{"credit with key", pb.CreditLedger_Credit_FullMethodName, &pb.CreditRequest{IdempotencyKey: "k"}, true},
		{"submit with key", pb.CreditLedger_SubmitRequest_FullMethodName, &pb.SubmitRequestRequest{IdempotencyKey: "k"}, true},
		{"decide without key", pb.CreditLedger_DecideRequest_FullMethodName, &pb.DecideRequestRequest{}, false},
		{"cancel with key", pb.CreditLedger_CancelRequest_FullMethodName, &pb.CancelRequestRequest{IdempotencyKey: "k"}, true},
		{"cancel without key", pb.CreditLedger_CancelRequest_FullMethodName, &pb.CancelRequestRequest{}, false},
		{"create hold with key", pb.CreditLedger_CreateHold_FullMethodName, &pb.CreateHoldRequest{IdempotencyKey: "k"}, true},
		{"create hold without key", pb.CreditLedger_CreateHold_FullMethodName, &pb.CreateHoldRequest{}, false},
		{"capture with key", pb.CreditLedger_CaptureHold_FullMethodName, &pb.CaptureHoldRequest{IdempotencyKey: "k"}, true},
		{"capture without key", pb.CreditLedger_CaptureHold_FullMethodName, &pb.CaptureHoldRequest{}, false},
		{"void with key", pb.CreditLedger_VoidHold_FullMethodName, &pb.VoidHoldRequest{IdempotencyKey: "k"}, true},
		{"void without key", pb.CreditLedger_VoidHold_FullMethodName, &pb.VoidHoldRequest{}, false},
		{"reverse with key", pb.CreditLedger_ReverseTransaction_FullMethodName, &pb.ReverseTransactionRequest{IdempotencyKey: "k"}, true},
		{"reverse without key", pb.CreditLedger_ReverseTransaction_FullMethodName, &pb.ReverseTransactionRequest{}, false},
		{"get hold", pb.CreditLedger_GetHold_FullMethodName, &pb.GetHoldRequest{}, true},
		{"list holds", pb.CreditLedger_ListHolds_FullMethodName, &pb.ListHoldsRequest{}, true},
		{"get transaction", pb.CreditLedger_GetTransaction_FullMethodName, &pb.GetTransactionRequest{}, true},
		{"list events", pb.CreditLedger_ListEvents_FullMethodName, &pb.ListEventsRequest{}, true},
		{"watch events (a stream: resumed by the caller)", pb.CreditLedger_WatchEvents_FullMethodName, &pb.WatchEventsRequest{}, false},
		{"read", pb.CreditLedger_CheckCreditPayment_FullMethodName, &pb.CheckCreditPaymentRequest{}, true},
		{"create package with id", pb.CreditSettings_CreatePackage_FullMethodName, &pb.CreatePackageRequest{PackageId: "p"}, true},
		{"create package without id", pb.CreditSettings_CreatePackage_FullMethodName, &pb.CreatePackageRequest{}, false},
		{"unknown method", "/x.Y/Z", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := retryable(tt.method, tt.req); got != tt.want {
				t.Errorf("retryable = %v, want %v", got, tt.want)
			}
		})
	}
}
