package checkout

import (
	"context"
	"errors"

	"go.uber.org/zap"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/consumer"
	"github.com/creditledger/creditledger/internal/ledger"
)

// EventTypes are the ledger events the checkout acts on.
var EventTypes = []string{
	string(ledger.EventRequestDecided), string(ledger.EventRequestCancelled),
	string(ledger.EventHoldCaptured), string(ledger.EventHoldVoided), string(ledger.EventHoldExpired),
}

// FollowEvents follows the ledger's events of every workspace the checkout
// has orders or purchases in, until ctx ends: the agency's decision on a
// manual purchase, and the end of an order's hold, are applied as they
// happen, without anyone reading the purchase or the order. The cursor of
// each workspace is kept in the store (consumer.Follower).
func (a *App) FollowEvents(ctx context.Context) error { return a.Events.Run(ctx) }

// HandleEvent applies one ledger event; applying it again changes
// nothing. An event about a request or a hold the checkout does not know
// (another consumer's, an operator's, or one whose creation the checkout
// has not recorded yet: Reconcile finishes those) is ignored. Only a
// failure of the store is an error: the event then comes again.
//
//   - request.decided, request.cancelled: the PENDING_APPROVAL purchase of
//     the request is CREDITED, or REJECTED (reason CANCELLED when its
//     client cancelled it);
//   - hold.expired: the HELD order is EXPIRED; hold.captured: CONFIRMED
//     with the captured entry (only the order's own capture takes it);
//   - hold.voided: the HELD order is CANCELLED, unless it has an action in
//     flight: only the checkout voids its holds, and that action records
//     its own outcome and reason (a refused capture is FAILED, not
//     CANCELLED), or Reconcile does after a crash.
func (a *App) HandleEvent(ctx context.Context, e *pb.Event) error {
	ws := e.GetWorkspace()
	switch ledger.EventType(e.GetType()) {
	case ledger.EventRequestDecided, ledger.EventRequestCancelled:
		r := e.GetRequest()
		p, err := a.store.PurchaseByRequest(ctx, ws, r.GetId())
		if errors.Is(err, errNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if p.Status != PurchasePendingApproval || p.Account != r.GetAccount() {
			return nil
		}
		out, err := a.applyDecision(ctx, p, r, ledger.EventType(e.GetType()) == ledger.EventRequestCancelled)
		if err != nil {
			return onlyInternal(err)
		}
		a.logApplied(e, zap.String("purchase_id", p.ID), zap.String("status", string(out.Status)))
	case ledger.EventHoldCaptured, ledger.EventHoldVoided, ledger.EventHoldExpired:
		h := e.GetHold()
		o, err := a.store.OrderByHold(ctx, ws, h.GetId())
		if errors.Is(err, errNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if o.Status != OrderHeld || (h.GetStatus() == pb.HoldStatus_HOLD_STATUS_VOIDED && o.Action != ActionNone) {
			return nil
		}
		var out Order
		if h.GetStatus() == pb.HoldStatus_HOLD_STATUS_CAPTURED && h.GetTransactionId() == "" {
			out, err = a.holdEnded(ctx, o) // the entry's id is needed: ask
		} else {
			out, err = a.applyHoldEnd(ctx, o, h)
		}
		if err = onlyInternal(err); err != nil {
			return err
		}
		a.logApplied(e, zap.String("order_id", o.ID), zap.String("status", string(out.Status)))
	}
	return nil
}

func (a *App) logApplied(e *pb.Event, fields ...zap.Field) {
	a.Log.Info("ledger event applied", append([]zap.Field{
		zap.String("workspace", e.GetWorkspace()), zap.Int64("event_sequence", e.GetSequence()), zap.String("event_type", e.GetType()),
	}, fields...)...)
}

// onlyInternal keeps the store's failures: a refusal is the outcome the
// event recorded (an order confirmed too late is EXPIRED), not a reason to
// apply it again.
func onlyInternal(err error) error {
	var ce *consumer.Error
	if errors.As(err, &ce) && ce.Kind != consumer.KindInternal {
		return nil
	}
	return err
}
