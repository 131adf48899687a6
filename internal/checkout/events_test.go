package checkout

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/consumer"
	"github.com/creditledger/creditledger/internal/consumer/consumertest"
	"github.com/creditledger/creditledger/internal/ledgertest"
)

// fastEvents makes the follower's backoff short, and its discovery rare:
// the checkout tells it of a new workspace itself.
func fastEvents(c *Config) {
	c.Events = consumer.FollowerConfig{
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, StableAfter: time.Hour, Discover: time.Hour,
	}
}

// follow runs the checkout's event follower until the returned stop (or the
// end of the test).
func (e *env) follow() (stop func()) {
	e.t.Helper()
	return consumertest.Go(e.t, e.app.FollowEvents)
}

// waitFor polls the store (never the API, which would ask the ledger)
// until cond holds, or fails the test after a deadline.
func waitFor[T any](e *env, what string, get func() (T, error), cond func(T) bool) T {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := get()
		if err == nil && cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s: last %+v, %v", what, v, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) waitPurchase(id string, status PurchaseStatus) Purchase {
	e.t.Helper()
	return waitFor(e, "purchase "+string(status), func() (Purchase, error) { return e.store.GetPurchase(context.Background(), ws, id) },
		func(p Purchase) bool { return p.Status == status })
}

// waitCursor waits until the follower saved its cursor at the ledger's
// last event.
func (e *env) waitCursor() int64 {
	e.t.Helper()
	last := int64(len(e.ledger.Events(e.t, ws)))
	return waitFor(e, "the cursor at the last event", func() (int64, error) { return e.store.Cursor(context.Background(), ws) },
		func(c int64) bool { return c == last })
}

func (e *env) waitOrder(id string, status OrderStatus) Order {
	e.t.Helper()
	return waitFor(e, "order "+string(status), func() (Order, error) { return e.store.GetOrder(context.Background(), ws, id) },
		func(o Order) bool { return o.Status == status })
}

// bankPurchase has client-1 buy package pro by bank transfer: PENDING_APPROVAL.
func (e *env) bankPurchase() Purchase {
	e.t.Helper()
	var p Purchase
	if code := e.do("POST", "/v1/workspaces/"+ws+"/accounts/client-1/credit-purchases",
		PurchaseInput{PackageID: "pro", Method: MethodBankTransfer, PaymentReference: "SEPA-1"}, &p); code != 201 || p.Status != PurchasePendingApproval {
		e.t.Fatalf("bank purchase: HTTP %d %+v", code, p)
	}
	return p
}

func (e *env) decide(requestID string, d pb.Decision) {
	e.t.Helper()
	if _, err := e.client.DecideRequest(context.Background(), &pb.DecideRequestRequest{
		Workspace: ws, RequestId: requestID, Decision: d, Reason: "bank statement checked", DecidedBy: "admin", IdempotencyKey: "decide:" + requestID,
	}); err != nil {
		e.t.Fatal(err)
	}
}

// The agency's decision (or the client's cancellation) reaches the
// purchase by the ledger's event: nobody reads the purchase, and the
// checkout never asks the ledger about the request.
func TestDecisionReachesThePurchaseWithoutARead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		act        func(e *env, p Purchase)
		want       PurchaseStatus
		wantReason string
		wantCredit int64
	}{
		{"accepted", func(e *env, p Purchase) { e.decide(p.RequestID, pb.Decision_DECISION_ACCEPT) }, PurchaseCredited, "", 500},
		{"rejected", func(e *env, p Purchase) { e.decide(p.RequestID, pb.Decision_DECISION_REJECT) }, PurchaseRejected, "bank statement checked", 0},
		{"cancelled by the client", func(e *env, p Purchase) {
			if !e.ledger.CancelRequest(e.t, ws, p.RequestID) {
				e.t.Fatal("CancelRequest")
			}
		}, PurchaseCancelled, "CANCELLED", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, fastEvents)
			e.agency()
			createPackage(t, e, "pro", 500)
			e.follow()
			p := e.bankPurchase()
			tt.act(e, p)
			got := e.waitPurchase(p.ID, tt.want)
			if got.FailureReason != tt.wantReason || (tt.want == PurchaseCredited) != (got.TransactionID != "") {
				t.Errorf("purchase %+v, want reason %q", got, tt.wantReason)
			}
			if bal, _ := e.ledger.Balance(e.t, ws, "client-1"); bal != tt.wantCredit {
				t.Errorf("balance %d, want %d", bal, tt.wantCredit)
			}
			if n := len(e.ledger.Calls("GetRequest")); n != 0 {
				t.Errorf("%d GetRequest calls: the event alone must move the purchase", n)
			}
			e.waitCursor()
		})
	}
}

// A HELD order follows its hold's end as the ledger reports it: expired
// (EXPIRED), voided by an operator (CANCELLED), captured by its own
// confirmation whose answer was lost (CONFIRMED); nobody reads the order
// and the checkout never asks about the hold.
func TestHoldEndReachesTheOrderWithoutARead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		act  func(e *env, o Order)
		want OrderStatus
		bal  int64
	}{
		{"expired", func(e *env, _ Order) { e.ledger.Advance(e.t, 2*time.Hour) }, OrderExpired, 100},
		{"voided by an operator", func(e *env, o Order) {
			if _, err := e.client.VoidHold(context.Background(), &pb.VoidHoldRequest{Workspace: ws, HoldId: o.HoldID, IdempotencyKey: "ops:void"}); err != nil {
				e.t.Fatal(err)
			}
		}, OrderCancelled, 100},
		{"captured by a confirmation whose answer was lost", func(e *env, o Order) {
			lost := ledgertest.Fault{After: true, Code: codes.Unavailable}
			e.ledger.InjectFault("CaptureHold", lost, lost, lost)
			if code := e.orderAction(o.ID, "confirm", nil, nil); code != 503 {
				e.t.Fatalf("confirm with the answer lost: HTTP %d", code)
			}
		}, OrderConfirmed, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, fastEvents, func(c *Config) { c.HoldTTL = time.Hour })
			e.shop(100)
			e.follow()
			o := e.heldOrder()
			tt.act(e, o)
			got := e.waitOrder(o.ID, tt.want)
			if (tt.want == OrderConfirmed) != (got.TransactionID != "") || got.Action != ActionNone {
				t.Errorf("order %+v", got)
			}
			if bal, _ := e.ledger.Balance(e.t, ws, "client-1"); bal != tt.bal {
				t.Errorf("balance %d, want %d", bal, tt.bal)
			}
			if n := len(e.ledger.Calls("GetHold")); n != 0 {
				t.Errorf("%d GetHold calls: the event alone must move the order", n)
			}
		})
	}
}

// A refused capture voids the hold and fails the order with the refusal:
// the void's event does not turn it into CANCELLED.
func TestVoidOfARefusedCaptureKeepsTheRefusal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastEvents)
	e.shop(100)
	e.follow()
	o := e.heldOrder()
	e.ledger.InjectFault("CaptureHold", ledgertest.Fault{Code: codes.FailedPrecondition, Reason: "CREDIT_PAYMENTS_DISABLED"})
	if code := e.orderAction(o.ID, "confirm", nil, nil); code != 422 {
		t.Fatalf("confirm: HTTP %d", code)
	}
	e.waitCursor() // the void's event is applied: it changed nothing
	if got, _ := e.store.GetOrder(t.Context(), ws, o.ID); got.Status != OrderFailed || got.FailureReason != "CREDIT_PAYMENTS_DISABLED" {
		t.Errorf("order %+v, want FAILED with the refusal", got)
	}
}

// After a restart the follower resumes from the stored cursor: the
// decision taken while the checkout was down is applied, and nothing
// before the cursor is sent again.
func TestFollowerResumesFromTheStoredCursorAfterARestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastEvents)
	e.agency()
	createPackage(t, e, "pro", 500)
	stop := e.follow()
	first, second := e.bankPurchase(), e.bankPurchase2()
	e.decide(first.RequestID, pb.Decision_DECISION_ACCEPT)
	done := e.waitPurchase(first.ID, PurchaseCredited)
	cursor := e.waitCursor()
	stop()

	e.decide(second.RequestID, pb.Decision_DECISION_ACCEPT) // while the checkout is down
	e.restart(fastEvents)
	e.follow()
	e.waitPurchase(second.ID, PurchaseCredited)
	if again, _ := e.store.GetPurchase(t.Context(), ws, first.ID); again.UpdateTime != done.UpdateTime {
		t.Errorf("the first purchase was changed again: %+v", again)
	}
	watches := e.ledger.Calls("WatchEvents")
	if last := watches[len(watches)-1].Request.(*pb.WatchEventsRequest); last.GetAfterSequence() != cursor || cursor == 0 {
		t.Errorf("watch after the restart from %d, want the stored cursor %d", last.GetAfterSequence(), cursor)
	}
	if n := len(e.ledger.Calls("GetRequest")); n != 0 {
		t.Errorf("%d GetRequest calls", n)
	}
}

// bankPurchase2 is a second purchase of client-2.
func (e *env) bankPurchase2() Purchase {
	e.t.Helper()
	var p Purchase
	if code := e.do("POST", "/v1/workspaces/"+ws+"/accounts/client-2/credit-purchases",
		PurchaseInput{PackageID: "pro", Method: MethodCrypto, PaymentReference: "0xfeed"}, &p); code != 201 || p.Status != PurchasePendingApproval {
		e.t.Fatalf("crypto purchase: HTTP %d %+v", code, p)
	}
	return p
}

// A broken stream, and a ledger refusing new ones for a while, delay the
// decision; they do not lose it.
func TestBrokenStreamIsResumed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastEvents)
	e.agency()
	createPackage(t, e, "pro", 500)
	e.follow()
	p := e.bankPurchase()
	waitFor(e, "the watch", func() (int, error) { return len(e.ledger.Calls("WatchEvents")), nil }, func(n int) bool { return n == 1 })
	unavailable := ledgertest.Fault{Code: codes.Unavailable}
	e.ledger.InjectFault("WatchEvents", unavailable, unavailable)
	e.ledger.BreakWatches()
	e.decide(p.RequestID, pb.Decision_DECISION_ACCEPT)
	e.waitPurchase(p.ID, PurchaseCredited)
	if n := len(e.ledger.Calls("WatchEvents")); n != 4 {
		t.Errorf("%d watches, want 4: the first, two refused, the one that resumed", n)
	}
}

// While the events are followed, neither Reconcile nor a read asks the
// ledger about a pending request or a due hold: the events will tell.
// Without the follower, both ask, as before.
func TestAskingTheLedgerIsTheFallback(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastEvents)
	e.agency()
	createPackage(t, e, "pro", 500)
	stop := e.follow()
	p := e.bankPurchase()
	waitFor(e, "the follower", func() (bool, error) { return e.app.Events.Following(ws), nil }, func(ok bool) bool { return ok })
	if _, err := e.app.Reconcile(t.Context()); err != nil {
		t.Fatal(err)
	}
	if code := e.do("GET", "/v1/workspaces/"+ws+"/credit-purchases/"+p.ID, nil, nil); code != 200 {
		t.Fatalf("GET: HTTP %d", code)
	}
	if n := len(e.ledger.Calls("GetRequest")); n != 0 {
		t.Errorf("%d GetRequest calls while following the events", n)
	}
	stop()
	var got Purchase
	if code := e.do("GET", "/v1/workspaces/"+ws+"/credit-purchases/"+p.ID, nil, &got); code != 200 || got.Status != PurchasePendingApproval {
		t.Fatalf("GET: HTTP %d %+v", code, got)
	}
	if n := len(e.ledger.Calls("GetRequest")); n != 1 {
		t.Errorf("%d GetRequest calls without the follower, want 1", n)
	}
}
