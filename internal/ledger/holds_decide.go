package ledger

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// ---------------------------------------------------------------------------
// Holds in a batch

func (b *batchState) hold(id string) (Hold, bool) {
	if h, ok := b.holds[id]; ok {
		return h, true
	}
	h, ok := b.snap.Holds[id]
	return h, ok
}

func (b *batchState) putHold(h Hold, created bool) {
	b.holds[h.ID] = h
	if created {
		b.newHolds[h.ID] = true
	}
}

// holdEffects adds the holds the batch created (with their state at the
// end of the batch) and changed to its effects, by ID.
func (b *batchState) holdEffects() {
	ids := make([]string, 0, len(b.holds))
	for id := range b.holds {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if b.newHolds[id] {
			b.eff.NewHolds = append(b.eff.NewHolds, b.holds[id])
		} else {
			b.eff.HoldUpdates = append(b.eff.HoldUpdates, b.holds[id])
		}
	}
}

func errHoldNotActive(h Hold) error {
	return newErr(CodeFailedPrecondition, ReasonHoldNotActive,
		"the hold is "+strings.ToLower(h.Status.String())+", not active", map[string]string{"hold_id": h.ID, "status": h.Status.String()})
}

// holdKinds are the kinds a hold may be captured as; the first is the default.
var holdKinds = debitKinds

// ---------------------------------------------------------------------------
// CreateHold

type createHoldOp struct {
	opBase
	in     CreateHoldInput
	kind   Kind
	expire time.Time
	md     map[string]string
	fp     []byte
	res    HoldResult
}

func (o *createHoldOp) need(w *setBuilder) {
	w.account(o.in.Account)
	w.key(o.key)
}

func (o *createHoldOp) apply(b *batchState) {
	in := &o.in
	o.res = HoldResult{}
	if rec, ok := b.record(o.key); ok {
		if o.err = sameRequest(rec, OpCreateHold, o.fp); o.err != nil {
			return
		}
		h, ok := b.hold(rec.HoldID)
		if !ok {
			o.err = replayError(rec)
			return
		}
		o.res = HoldResult{Hold: h, Available: b.account(h.Account).Available(), Replayed: true}
		return
	}
	if !b.settings.CreditPaymentsEnabled {
		o.err = errDisabled(in.Workspace)
		return
	}
	a := b.account(in.Account)
	if a.Available() < in.Amount {
		o.err = errInsufficient(a.Account, in.Amount)
		return
	}
	now := b.s.clock()
	if !o.expire.After(now) {
		o.err = invalid("expire_time", "must be in the future")
		return
	}
	h := Hold{
		ID: b.s.newID(), Workspace: in.Workspace, Account: in.Account, Amount: in.Amount, Kind: o.kind,
		Reference: in.Reference, Metadata: o.md, Status: HoldActive, ExpireTime: o.expire,
		IdempotencyKey: in.IdempotencyKey, CreateTime: now,
	}
	a.Held += h.Amount
	a.moved = true
	b.putHold(h, true)
	b.remember(IdempotencyRecord{
		Workspace: in.Workspace, Key: o.key, Operation: OpCreateHold, Fingerprint: o.fp, HoldID: h.ID, CreateTime: now,
	})
	o.res = HoldResult{Hold: h, Available: a.Available()}
}

func (o *createHoldOp) report(obs Observer) {
	switch {
	case o.err != nil:
		observeRefusal(obs, OpCreateHold, o.err)
	case o.res.Replayed:
		obs.Replayed(OpCreateHold)
	default:
		obs.Hold(HoldActive)
	}
}

// ---------------------------------------------------------------------------
// CaptureHold and VoidHold

type endHoldOp struct {
	opBase
	ws, id string
	capture bool  // else void
	amount  int64 // capture: 0 means the whole hold
	fp      []byte
	res     HoldResult
}

func (o *endHoldOp) opName() Operation {
	if o.capture {
		return OpCaptureHold
	}
	return OpVoidHold
}

func (o *endHoldOp) need(w *setBuilder) {
	w.hold(o.id)
	w.key(o.key)
	// The hold's account is locked with it; a capture draws its grants,
	// which the store reads by account: the batcher learns the account
	// from the hold only after reading it, so captures read the grants of
	// the hold's account through the hold (see Snapshot.Grants).
}

func (o *endHoldOp) apply(b *batchState) {
	op := o.opName()
	o.res = HoldResult{}
	if rec, ok := b.record(o.key); ok {
		if o.err = sameRequest(rec, op, o.fp); o.err != nil {
			return
		}
		h, ok := b.hold(rec.HoldID)
		if !ok {
			o.err = replayError(rec)
			return
		}
		o.res = HoldResult{Hold: h, Available: b.account(h.Account).Available(), Replayed: true}
		if rec.TransactionID != "" {
			t, ok := b.transaction(rec.TransactionID)
			if !ok {
				o.err = replayError(rec)
				return
			}
			o.res.Transaction = &t
		}
		return
	}
	h, ok := b.hold(o.id)
	if !ok {
		o.err = NotFoundError("hold", o.id)
		return
	}
	now := b.s.clock()
	if h.Status != HoldActive {
		o.err = errHoldNotActive(h)
		return
	}
	if !h.ExpireTime.After(now) {
		// Past its expiry the hold is released, whether or not the server
		// has swept it yet.
		h.Status = HoldExpired
		o.err = errHoldNotActive(h)
		return
	}
	amount := h.Amount
	if o.capture && o.amount != 0 {
		if o.amount > h.Amount {
			o.err = invalid("amount", "must not exceed the hold's "+strconv.FormatInt(h.Amount, 10)+" credits")
			return
		}
		amount = o.amount
	}
	a := b.account(h.Account)
	a.Held -= h.Amount
	a.moved = true
	h.UpdateTime = now
	rec := IdempotencyRecord{Workspace: o.ws, Key: o.key, Operation: op, Fingerprint: o.fp, HoldID: h.ID, CreateTime: now}
	if o.capture {
		// The credits were reserved: available covers them now.
		t, err := b.s.nextEntry(a.Account, TypeOut, amount, nil)
		if err != nil {
			a.Held += h.Amount
			o.err = err
			return
		}
		t.Kind, t.Reference, t.IdempotencyKey, t.Metadata, t.HoldID = h.Kind, h.Reference, h.IdempotencyKey, h.Metadata, h.ID
		b.book(a.ID).draw(amount, "")
		b.post(a, t)
		h.Status, h.CapturedAmount, h.TransactionID = HoldCaptured, amount, t.ID
		rec.TransactionID = t.ID
		o.res.Transaction = &t
	} else {
		h.Status = HoldVoided
	}
	b.putHold(h, false)
	b.remember(rec)
	o.res.Hold, o.res.Available = h, a.Available()
}

func (o *endHoldOp) report(obs Observer) {
	op := o.opName()
	switch {
	case o.err != nil:
		observeRefusal(obs, op, o.err)
	case o.res.Replayed:
		obs.Replayed(op)
	default:
		obs.Hold(o.res.Hold.Status)
		if o.res.Transaction != nil {
			obs.Posted(*o.res.Transaction)
		}
	}
}

// ---------------------------------------------------------------------------
// Expiry of holds and grants, by the server

// expireHoldOp releases a due hold. Several replicas may sweep the same
// hold: the first batch to lock it releases it, the others find it ended.
type expireHoldOp struct {
	opBase
	id      string
	expired bool
}

func (o *expireHoldOp) need(w *setBuilder) { w.hold(o.id) }

func (o *expireHoldOp) apply(b *batchState) {
	o.expired = false
	h, ok := b.hold(o.id)
	now := b.s.clock()
	if !ok || h.Status != HoldActive || h.ExpireTime.After(now) {
		return
	}
	a := b.account(h.Account)
	a.Held -= h.Amount
	a.moved = true
	h.Status, h.UpdateTime = HoldExpired, now
	b.putHold(h, false)
	o.expired = true
}

func (o *expireHoldOp) report(obs Observer) {
	if o.expired {
		obs.Hold(HoldExpired)
	}
}

// expireGrantOp posts the unspent remainder of a due grant as one EXPIRY
// entry. A grant that active holds still reserve in part waits for a later
// sweep (deferred): held credits are spent or released first.
type expireGrantOp struct {
	opBase
	account, grant string
	expired        bool
	deferred       bool
}

func (o *expireGrantOp) need(w *setBuilder) {
	w.account(o.account)
	w.grantsOf(o.account)
}

func (o *expireGrantOp) apply(b *batchState) {
	o.expired, o.deferred = false, false
	g := b.book(o.account)
	i := g.find(o.grant)
	now := b.s.clock()
	if i < 0 || g.list[i].ExpireTime.After(now) {
		return
	}
	a := b.account(o.account)
	if g.reserved(i, a.Held) > 0 {
		o.deferred = true
		return
	}
	gr := g.list[i]
	t, err := b.s.nextEntry(a.Account, TypeOut, gr.Remaining, nil)
	if err != nil {
		o.err = err // cannot happen while Σ remaining ≤ balance − held holds
		return
	}
	t.Kind, t.Reference = KindExpiry, "expiry:"+gr.TransactionID
	g.list[i].Remaining, g.list[i].ExpiryTransactionID = 0, t.ID
	g.touch(i)
	b.post(a, t)
	o.expired = true
}

func (o *expireGrantOp) report(Observer) {}
