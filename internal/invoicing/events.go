package invoicing

import (
	"context"
	"errors"

	"go.uber.org/zap"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/consumer"
	"github.com/creditledger/creditledger/internal/ledger"
)

// EventTypes are the ledger events invoicing acts on: a payment's hold
// ending.
var EventTypes = []string{string(ledger.EventHoldCaptured), string(ledger.EventHoldVoided), string(ledger.EventHoldExpired)}

// FollowEvents follows the ledger's events of every workspace invoicing
// has invoices in, until ctx ends, so that a payment whose hold ended on
// the ledger's side is settled as it happens (consumer.Follower; the
// cursor of each workspace is kept in the store).
func (a *App) FollowEvents(ctx context.Context) error { return a.Events.Run(ctx) }

// HandleEvent applies one ledger event to the PAYING invoice whose
// current attempt holds the event's hold; applying it again changes
// nothing, and an event of another hold is ignored. hold.captured marks
// the invoice PAID with the captured entry (only its own capture takes
// it: the answer was lost); hold.expired and hold.voided put it back to
// OPEN (HOLD_EXPIRED, HOLD_VOIDED). Only a failure of the store is an
// error: the event then comes again.
func (a *App) HandleEvent(ctx context.Context, e *pb.Event) error {
	h := e.GetHold()
	var code string
	switch ledger.EventType(e.GetType()) {
	case ledger.EventHoldExpired:
		code = CodeHoldExpired
	case ledger.EventHoldVoided:
		code = CodeHoldVoided
	case ledger.EventHoldCaptured:
	default:
		return nil
	}
	inv, err := a.store.ByHold(ctx, e.GetWorkspace(), h.GetId())
	if errors.Is(err, errNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	if inv.Status != StatusPaying || inv.Method != MethodHold {
		return nil
	}
	var out Invoice
	switch {
	case code != "":
		out, err = a.store.EndAttempt(ctx, inv.Workspace, inv.ID, h.GetId(), code, false, a.clock())
	case h.GetTransactionId() == "":
		out, err = a.capture(ctx, inv) // replays the capture: its entry
	default:
		out, err = a.recordPaid(ctx, inv, h.GetTransactionId())
	}
	var ie *consumer.Error
	if errors.As(err, &ie) && ie.Kind != consumer.KindInternal {
		err = nil
	}
	if err != nil {
		return err
	}
	a.Log.Info("ledger event applied", zap.String("workspace", e.GetWorkspace()), zap.Int64("event_sequence", e.GetSequence()),
		zap.String("event_type", e.GetType()), zap.String("invoice_id", inv.ID), zap.String("status", string(out.Status)))
	return nil
}
