package checkout

import (
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/consumer/consumertest"
	"github.com/creditledger/creditledger/internal/ledgertest"
	"github.com/creditledger/creditledger/internal/token"
)

// heldOrder places an order for logo (USD 5 = 50 credits) for client-1.
func (e *env) heldOrder() Order {
	e.t.Helper()
	var o Order
	if code := e.do("POST", "/v1/workspaces/"+ws+"/accounts/client-1/orders", map[string]string{"service_id": "logo"}, &o); code != 201 || o.Status != OrderHeld {
		e.t.Fatalf("place order: HTTP %d %+v", code, o)
	}
	return o
}

func (e *env) orderAction(id, verb string, body any, out any, headers ...string) int {
	e.t.Helper()
	return e.do("POST", "/v1/workspaces/"+ws+"/orders/"+id+":"+verb, body, out, headers...)
}

func (e *env) shop(credits int64) {
	e.agency()
	e.ledger.Fund(e.t, ws, "client-1", credits)
	e.putService("logo", usd(5, 0), true)
}

func TestCancelVoidsTheHoldAndSpendsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.shop(100)
	o := e.heldOrder()
	var got Order
	if code := e.orderAction(o.ID, "cancel", nil, &got); code != 200 || got.Status != OrderCancelled {
		t.Fatalf("cancel: HTTP %d %+v", code, got)
	}
	if h := e.ledger.Hold(e.t, ws, o.HoldID); h.GetStatus() != pb.HoldStatus_HOLD_STATUS_VOIDED {
		t.Errorf("hold %v, want VOIDED", h)
	}
	if calls := e.ledger.Calls("VoidHold"); len(calls) != 1 || calls[0].IdempotencyKey != OrderKey(o.ID)+":void" {
		t.Errorf("VoidHold calls %+v", calls)
	}
	b, _ := e.client.Balance(t.Context(), ws, "client-1")
	if b.GetBalance() != 100 || b.GetAvailable() != 100 || len(outs(e.ledger.Transactions(e.t, ws, "client-1"))) != 0 {
		t.Errorf("balance %v: a cancelled order spends nothing and holds nothing", b)
	}
	// Cancelling again answers the same; confirming is refused.
	if code := e.orderAction(o.ID, "cancel", nil, &got); code != 200 || got.Status != OrderCancelled {
		t.Errorf("cancel again: HTTP %d %+v", code, got)
	}
	var body apiError
	if code := e.orderAction(o.ID, "confirm", nil, &body); code != 409 || body.Error.Code != CodeOrderNotHeld {
		t.Errorf("confirm a cancelled order: HTTP %d %+v", code, body.Error)
	}
	if n := len(e.ledger.Calls("VoidHold")) + len(e.ledger.Calls("CaptureHold")); n != 1 {
		t.Errorf("%d capture/void calls, want 1", n)
	}
}

func TestConfirmOrCancelLeftInFlightIsFinishedByReconcile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		verb, method string
		want         OrderStatus
		balance      int64
	}{
		{"confirm", "CaptureHold", OrderConfirmed, 50},
		{"cancel", "VoidHold", OrderCancelled, 100},
	}
	for _, tt := range tests {
		for _, posted := range []bool{true, false} {
			t.Run(tt.verb+map[bool]string{true: "/posted, answer lost", false: "/never arrived"}[posted], func(t *testing.T) {
				t.Parallel()
				e := newEnv(t)
				e.shop(100)
				o := e.heldOrder()
				e.ledger.InjectFault(tt.method,
					ledgertest.Fault{After: posted, Code: codes.Unavailable},
					ledgertest.Fault{Code: codes.Unavailable},
					ledgertest.Fault{Code: codes.Unavailable})
				var body apiError
				if code := e.orderAction(o.ID, tt.verb, nil, &body); code != 503 || body.Order.Status != OrderHeld || body.Order.Action == ActionNone {
					t.Fatalf("HTTP %d %+v %+v: want HELD with the action in flight", code, body.Error, body.Order)
				}
				// The other action is refused while this one is in flight.
				other := map[string]string{"confirm": "cancel", "cancel": "confirm"}[tt.verb]
				if code := e.orderAction(o.ID, other, nil, &body); code != 409 || body.Error.Code != CodeOrderNotHeld {
					t.Errorf("%s while %s is in flight: HTTP %d %+v", other, tt.verb, code, body.Error)
				}
				e.restart()
				rep, err := e.app.Reconcile(t.Context())
				if err != nil || rep.Orders != 1 || rep.OrdersSettled != 1 {
					t.Fatalf("Reconcile = %+v, %v", rep, err)
				}
				got, _ := e.app.GetOrder(t.Context(), ws, o.ID)
				if got.Status != tt.want {
					t.Errorf("order %+v, want %s", got, tt.want)
				}
				if bal, _ := e.ledger.Balance(e.t, ws, "client-1"); bal != tt.balance {
					t.Errorf("balance %d, want %d", bal, tt.balance)
				}
				if b, _ := e.client.Balance(t.Context(), ws, "client-1"); b.GetHeld() != 0 {
					t.Errorf("balance %v: nothing may stay held", b)
				}
			})
		}
	}
}

func TestExpiredHold(t *testing.T) {
	t.Parallel()
	t.Run("reconcile marks the order EXPIRED", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, func(c *Config) { c.HoldTTL = time.Hour })
		e.shop(100)
		o := e.heldOrder()
		if rep, err := e.app.Reconcile(t.Context()); err != nil || rep.OrdersExpired != 0 {
			t.Fatalf("Reconcile before the expiry = %+v, %v", rep, err)
		}
		e.ledger.Advance(e.t, 2*time.Hour)
		e.restart(func(c *Config) { c.Now = func() time.Time { return time.Now().Add(2 * time.Hour) } })
		rep, err := e.app.Reconcile(t.Context())
		if err != nil || rep.OrdersExpired != 1 {
			t.Fatalf("Reconcile = %+v, %v", rep, err)
		}
		got, _ := e.app.GetOrder(t.Context(), ws, o.ID)
		if got.Status != OrderExpired || len(outs(e.ledger.Transactions(e.t, ws, "client-1"))) != 0 {
			t.Errorf("order %+v, want EXPIRED with nothing spent", got)
		}
	})
	t.Run("confirm finds it expired", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, func(c *Config) { c.HoldTTL = time.Hour })
		e.shop(100)
		o := e.heldOrder()
		e.ledger.Advance(e.t, 2*time.Hour)
		var body apiError
		if code := e.orderAction(o.ID, "confirm", nil, &body); code != 422 || body.Error.Code != CodeHoldExpired || body.Order.Status != OrderExpired {
			t.Fatalf("confirm: HTTP %d %+v %+v", code, body.Error, body.Order)
		}
		// Cancelling an expired order is done already.
		var got Order
		if code := e.orderAction(o.ID, "cancel", nil, &got); code != 200 || got.Status != OrderExpired {
			t.Errorf("cancel an expired order: HTTP %d %+v", code, got)
		}
		if bal, _ := e.ledger.Balance(e.t, ws, "client-1"); bal != 100 {
			t.Errorf("balance %d, want 100", bal)
		}
	})
}

func TestRefund(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.shop(100)
	o := e.heldOrder()
	type refundAnswer struct {
		Refund Refund `json:"refund"`
		Order  Order  `json:"order"`
		apiError
	}
	var r refundAnswer
	// Not before it is confirmed.
	if code := e.orderAction(o.ID, "refund", nil, &r); code != 409 || r.Error.Code != CodeOrderNotConfirmed {
		t.Fatalf("refund a held order: HTTP %d %+v", code, r.Error)
	}
	var conf Order
	if code := e.orderAction(o.ID, "confirm", nil, &conf); code != 200 {
		t.Fatalf("confirm: HTTP %d", code)
	}
	tests := []struct {
		name    string
		body    any
		code    int
		errCode string
		status  OrderStatus
		balance int64
	}{
		{"partial", map[string]int64{"credits": 20}, 201, "", OrderPartiallyRefunded, 70},
		{"more than remains", map[string]int64{"credits": 31}, 422, CodeRefundExceedsOrder, OrderPartiallyRefunded, 70},
		{"negative", map[string]int64{"credits": -1}, 400, CodeInvalidArgument, OrderPartiallyRefunded, 70},
		{"the rest", nil, 201, "", OrderRefunded, 100},
		{"nothing left", nil, 422, CodeRefundExceedsOrder, OrderRefunded, 100},
	}
	for _, tt := range tests { // in order: each step builds on the last
		r = refundAnswer{}
		if code := e.orderAction(o.ID, "refund", tt.body, &r); code != tt.code || r.Error.Code != tt.errCode {
			t.Fatalf("%s: HTTP %d %+v, want %d %s", tt.name, code, r.Error, tt.code, tt.errCode)
		}
		got, _ := e.app.GetOrder(t.Context(), ws, o.ID)
		if got.Status != tt.status {
			t.Errorf("%s: order %s, want %s", tt.name, got.Status, tt.status)
		}
		if bal, _ := e.ledger.Balance(e.t, ws, "client-1"); bal != tt.balance {
			t.Errorf("%s: balance %d, want %d", tt.name, bal, tt.balance)
		}
		if tt.code == 201 {
			if r.Refund.Status != RefundRefunded || r.Refund.TransactionID == "" || r.Order.Status != tt.status {
				t.Errorf("%s: answer %+v", tt.name, r)
			}
		}
	}
	var reversals []*pb.Transaction
	for _, tx := range e.ledger.Transactions(e.t, ws, "client-1") {
		if tx.GetKind() == pb.TransactionKind_TRANSACTION_KIND_REVERSAL {
			reversals = append(reversals, tx)
		}
	}
	if len(reversals) != 2 || reversals[0].GetAmount() != 20 || reversals[1].GetAmount() != 30 ||
		reversals[0].GetReversesTransactionId() != conf.TransactionID || reversals[0].GetType() != pb.TransactionType_TRANSACTION_TYPE_IN {
		t.Errorf("reversals %v", reversals)
	}
	var list struct{ Refunds []Refund }
	if code := e.do("GET", "/v1/workspaces/"+ws+"/orders/"+o.ID+"/refunds", nil, &list); code != 200 || len(list.Refunds) != 2 ||
		list.Refunds[0].IdempotencyKey != RefundKey(list.Refunds[0].ID) {
		t.Errorf("refunds: HTTP %d %+v", code, list.Refunds)
	}
	if got, _ := e.app.GetOrder(t.Context(), ws, o.ID); got.RefundedCredits != 50 {
		t.Errorf("refunded credits %d, want 50", got.RefundedCredits)
	}
}

func TestRefundRetriesAndReconcile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.shop(100)
	var o Order
	if code := e.do("POST", "/v1/workspaces/"+ws+"/accounts/client-1/orders", map[string]any{"service_id": "logo", "confirm": true}, &o); code != 201 {
		t.Fatalf("order: HTTP %d", code)
	}
	type refundAnswer struct {
		Refund Refund `json:"refund"`
		Order  Order  `json:"order"`
		apiError
	}
	// The reversal posts but its answer is lost, then the ledger is unreachable.
	e.ledger.InjectFault("ReverseTransaction",
		ledgertest.Fault{After: true, Code: codes.Unavailable},
		ledgertest.Fault{Code: codes.Unavailable},
		ledgertest.Fault{Code: codes.Unavailable})
	var r refundAnswer
	if code := e.orderAction(o.ID, "refund", map[string]int64{"credits": 10}, &r, "Idempotency-Key", "rma-1"); code != 503 || r.Refund.Status != RefundPending {
		t.Fatalf("HTTP %d %+v", code, r)
	}
	// While it is pending, its credits are not refundable again.
	var over refundAnswer
	if code := e.orderAction(o.ID, "refund", map[string]int64{"credits": 41}, &over); code != 422 || over.Error.Code != CodeRefundExceedsOrder {
		t.Errorf("refund beyond what is not being refunded: HTTP %d %+v", code, over.Error)
	}
	e.restart()
	rep, err := e.app.Reconcile(t.Context())
	if err != nil || rep.Refunds != 1 || rep.RefundsSettled != 1 {
		t.Fatalf("Reconcile = %+v, %v", rep, err)
	}
	// The client's retry with its key answers the same refund.
	var again refundAnswer
	if code := e.orderAction(o.ID, "refund", map[string]int64{"credits": 10}, &again, "Idempotency-Key", "rma-1"); code != 200 ||
		again.Refund.ID != r.Refund.ID || again.Refund.Status != RefundRefunded || again.Order.Status != OrderPartiallyRefunded {
		t.Errorf("retry: HTTP %d %+v", code, again)
	}
	if bal, _ := e.ledger.Balance(e.t, ws, "client-1"); bal != 60 {
		t.Errorf("balance %d, want 60 (one refund of 10)", bal)
	}
	for _, c := range e.ledger.Calls("ReverseTransaction") {
		if c.IdempotencyKey != RefundKey(r.Refund.ID) {
			t.Errorf("ReverseTransaction key %q", c.IdempotencyKey)
		}
	}
}

func TestOrderActionsAuthorization(t *testing.T) {
	t.Parallel()
	const (
		u  = 401
		f  = 403
		nf = 404
	)
	tests := []struct {
		verb    string
		confirm bool // the order is confirmed first
		want    [7]int
	}{
		{"confirm", false, [7]int{u, 200, nf, nf, 200, nf, 200}},
		{"cancel", false, [7]int{u, 200, nf, nf, 200, nf, 200}},
		// A client may never refund: denied before any order is looked up,
		// so the answer tells nothing of the order.
		{"refund", true, [7]int{u, f, f, nf, 201, nf, 201}},
	}
	e := newEnv(t)
	e.shop(10_000)
	for _, tt := range tests {
		for i, pr := range principals {
			t.Run(tt.verb+"/"+pr.Name, func(t *testing.T) {
				o := e.heldOrder()
				if tt.confirm {
					if code := e.orderAction(o.ID, "confirm", nil, nil); code != 200 {
						t.Fatalf("confirm: HTTP %d", code)
					}
				}
				auth := ""
				if !pr.Anonymous {
					auth = "Bearer " + mintToken(t, pr.Role, pr.Workspace, pr.Account)
				}
				var body apiError
				if code := e.orderAction(o.ID, tt.verb, nil, &body, "Authorization", auth); code != tt.want[i] {
					t.Fatalf("HTTP %d, want %d (%+v)", code, tt.want[i], body.Error)
				}
			})
		}
	}
	var body apiError
	if code := e.orderAction("nope", "confirm", nil, &body); code != 404 || body.Error.Code != CodeNotFound {
		t.Errorf("unknown order: HTTP %d %+v", code, body.Error)
	}
	if code := e.do("POST", "/v1/workspaces/"+ws+"/orders/x:explode", nil, &body); code != 404 {
		t.Errorf("unknown verb: HTTP %d", code)
	}
	if code := e.do("GET", "/v1/workspaces/"+ws+"/orders/x/refunds", nil, &body, "Authorization",
		"Bearer "+mintToken(t, token.RoleClient, ws, "client-2")); code != 404 {
		t.Errorf("refunds of an unknown order: HTTP %d", code)
	}
}

// An order PENDING under the one-step debit of a version without holds is
// finished by replaying that debit, under its key.
func TestPendingOrderFromBeforeHoldsIsSettledByItsDebit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	e.ledger.Fund(e.t, ws, "client-1", 100)
	e.close()
	// A version-1 database with an order whose debit was in flight.
	consumertest.OldDB(t, e.dbPath, schema, 1, `INSERT INTO orders (id, workspace, account, service_id, service_name,
		currency, units, nanos, credits, status, idempotency_key, create_time, update_time) VALUES ('o-1', 'agency-1', 'client-1', 'logo', 'Logo',
		'USD', 5, 0, 50, 'PENDING', 'checkout-order:o-1', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')`)
	e.open()
	rep, err := e.app.Reconcile(t.Context())
	if err != nil || rep.Orders != 1 || rep.OrdersSettled != 1 {
		t.Fatalf("Reconcile = %+v, %v", rep, err)
	}
	got, _ := e.app.GetOrder(t.Context(), ws, "o-1")
	calls := e.ledger.Calls("Debit")
	if got.Status != OrderConfirmed || len(calls) != 1 || calls[0].IdempotencyKey != "checkout-order:o-1" || len(e.ledger.Calls("CreateHold")) != 0 {
		t.Errorf("order %+v, Debit calls %+v", got, calls)
	}
	// It can be refunded like any confirmed order.
	if code := e.orderAction("o-1", "refund", nil, nil); code != http.StatusCreated {
		t.Errorf("refund: HTTP %d", code)
	}
	if bal, _ := e.ledger.Balance(e.t, ws, "client-1"); bal != 100 {
		t.Errorf("balance %d, want 100", bal)
	}
}
