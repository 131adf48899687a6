package invoicing

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

// fastEvents: a short backoff, and no discovery (invoicing tells its
// follower of a new workspace itself).
var fastEvents = consumer.FollowerConfig{MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, StableAfter: time.Hour, Discover: time.Hour}

// follow runs invoicing's event follower until the returned stop (or the
// end of the test).
func (e *env) follow() (stop func()) {
	e.t.Helper()
	return consumertest.Go(e.t, e.app.FollowEvents)
}

// waitStored polls the store (not the API) until cond holds.
func (e *env) waitStored(id string, what string, cond func(Invoice) bool) Invoice {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		inv, err := e.store.Get(context.Background(), ws, id)
		if err == nil && cond(inv) {
			return inv
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s: %+v, %v", what, inv, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) waitCursor() {
	e.t.Helper()
	last := int64(len(e.ledger.Events(e.t, ws)))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, _ := e.store.Cursor(context.Background(), ws); c == last {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for the cursor at %d", last)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A payment left PAYING (its capture unanswered) is settled by its hold's
// event: PAID when the lost capture took it, OPEN when the hold expired or
// an operator voided it; nothing reads the invoice or asks about the hold.
func TestHoldEndReachesThePayingInvoice(t *testing.T) {
	t.Parallel()
	unavailable := ledgertest.Fault{Code: codes.Unavailable}
	lost := ledgertest.Fault{After: true, Code: codes.Unavailable}
	tests := []struct {
		name   string
		fault  ledgertest.Fault
		act    func(e *env, inv Invoice)
		want   Status
		reason string
		bal    int64
	}{
		{"the lost capture took it", lost, func(*env, Invoice) {}, StatusPaid, "", 64},
		{"expired", unavailable, func(e *env, _ Invoice) { e.ledger.Advance(e.t, HoldTTL+time.Minute) }, StatusOpen, CodeHoldExpired, 100},
		{"voided by an operator", unavailable, func(e *env, inv Invoice) {
			if _, err := e.client.VoidHold(context.Background(), &pb.VoidHoldRequest{Workspace: ws, HoldId: inv.HoldID, IdempotencyKey: "ops:void"}); err != nil {
				e.t.Fatal(err)
			}
		}, StatusOpen, CodeHoldVoided, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.agency()
			e.ledger.Fund(e.t, ws, "client-1", 100)
			e.follow()
			inv := e.invoice("INV-1", usd(3, 510_000_000))
			e.ledger.InjectFault("CaptureHold", tt.fault, tt.fault, tt.fault)
			if code, body := e.pay(inv.ID); code != 503 || body.Inv == nil || body.Inv.Status != StatusPaying || body.Inv.HoldID == "" {
				t.Fatalf("pay with the capture unanswered: HTTP %d %+v", code, body.Inv)
			}
			paying, _ := e.store.Get(t.Context(), ws, inv.ID)
			tt.act(e, paying)
			got := e.waitStored(inv.ID, string(tt.want), func(i Invoice) bool { return i.Status == tt.want })
			if got.LastFailure != tt.reason || (tt.want == StatusPaid) != (got.TransactionID != "") {
				t.Errorf("invoice %+v, want reason %q", got, tt.reason)
			}
			if bal, _ := e.ledger.Balance(e.t, ws, "client-1"); bal != tt.bal {
				t.Errorf("balance %d, want %d", bal, tt.bal)
			}
			if n := len(e.ledger.Calls("GetHold")); n != 0 {
				t.Errorf("%d GetHold calls: the event alone must settle the payment", n)
			}
		})
	}
}

// A refused capture voids the hold and reopens the invoice with the
// refusal, also when the void's event reopened it first.
func TestVoidOfARefusedCaptureKeepsTheRefusal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	e.ledger.Fund(e.t, ws, "client-1", 100)
	e.follow()
	inv := e.invoice("INV-1", usd(1, 0))
	e.ledger.InjectFault("CaptureHold", ledgertest.Fault{Code: codes.FailedPrecondition, Reason: "CREDIT_PAYMENTS_DISABLED"})
	if code, body := e.pay(inv.ID); code != 422 || body.Error.Code != "CREDIT_PAYMENTS_DISABLED" {
		t.Fatalf("pay: HTTP %d %+v", code, body)
	}
	e.waitCursor()
	if got, _ := e.store.Get(t.Context(), ws, inv.ID); got.Status != StatusOpen || got.LastFailure != "CREDIT_PAYMENTS_DISABLED" {
		t.Errorf("invoice %+v, want OPEN with the refusal", got)
	}
}

// The cursor survives a restart: the follower resumes from it, and an
// event of an earlier attempt's hold leaves the current attempt alone.
func TestInvoicingResumesFromItsStoredCursor(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	e.ledger.Fund(e.t, ws, "client-1", 100)
	stop := e.follow()
	inv := e.invoice("INV-1", usd(1, 0))
	if code, _ := e.pay(inv.ID); code != 200 {
		t.Fatalf("pay: HTTP %d", code)
	}
	e.waitCursor()
	cursor, _ := e.store.Cursor(t.Context(), ws)
	stop()
	e.restart(nil)
	e.follow()
	inv2 := e.invoice("INV-2", usd(1, 0))
	if code, _ := e.pay(inv2.ID); code != 200 {
		t.Fatalf("pay: HTTP %d", code)
	}
	e.waitCursor()
	watches := e.ledger.Calls("WatchEvents")
	if after := watches[len(watches)-1].Request.(*pb.WatchEventsRequest).GetAfterSequence(); after != cursor || cursor == 0 {
		t.Errorf("watch after the restart from %d, want the stored cursor %d", after, cursor)
	}
}
