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
	w.grantsOf(o.in.Account) // credits that expired are not available
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
	if acct := b.spendable(a); acct.Available() < in.Amount {
		o.err = errInsufficient(acct, in.Amount)
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
	ws, id  string
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
			o.err = invalid("amount", "must not exceed the hold's %d credits", h.Amount)
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
		b.draw(a.ID, amount, "", time.Time{})
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
	entry          Transaction
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
	o.expired, o.entry = true, t
}

func (o *expireGrantOp) report(obs Observer) {
	if o.expired {
		obs.Posted(o.entry)
	}
}

// ---------------------------------------------------------------------------
// ReverseTransaction

type reverseOp struct {
	opBase
	in  ReverseInput
	ref string
	md  map[string]string
	fp  []byte
	res ReverseResult
}

func (o *reverseOp) need(w *setBuilder) {
	w.transaction(o.in.TransactionID) // locks its account, reads its grants
	w.key(o.key)
}

// original returns the entry with what the store (its ReversedAmount as
// read) and this batch reversed of it.
func (b *batchState) original(id string) (Transaction, bool) {
	t, ok := b.transaction(id)
	t.ReversedAmount += b.reversed[id]
	return t, ok
}

func (o *reverseOp) apply(b *batchState) {
	in := &o.in
	o.res = ReverseResult{}
	if rec, ok := b.record(o.key); ok {
		if o.err = sameRequest(rec, OpReverse, o.fp); o.err != nil {
			return
		}
		t, ok1 := b.transaction(rec.TransactionID)
		orig, ok2 := b.original(in.TransactionID)
		if !ok1 || !ok2 {
			o.err = replayError(rec)
			return
		}
		o.res = ReverseResult{Transaction: t, Original: orig, Balance: t.BalanceAfter, Version: t.AccountVersion, Replayed: true}
		return
	}
	orig, ok := b.original(in.TransactionID)
	if !ok {
		o.err = NotFoundError("transaction", in.TransactionID)
		return
	}
	if orig.Kind == KindReversal || orig.Kind == KindExpiry {
		o.err = newErr(CodeFailedPrecondition, ReasonNotReversible,
			"a "+strings.ToLower(orig.Kind.String())+" entry cannot be reversed", map[string]string{"transaction_id": orig.ID, "kind": orig.Kind.String()})
		return
	}
	left := orig.Amount - orig.ReversedAmount
	amount := in.Amount
	if amount == 0 {
		amount = left
	}
	if amount > left || amount == 0 {
		o.err = newErr(CodeFailedPrecondition, ReasonReversalExceeds,
			"the entry has "+strconv.FormatInt(left, 10)+" credits left to reverse",
			map[string]string{
				"transaction_id": orig.ID, "amount": strconv.FormatInt(orig.Amount, 10),
				"reversed_amount": strconv.FormatInt(orig.ReversedAmount, 10), "requested": strconv.FormatInt(amount, 10),
			})
		return
	}
	a := b.account(orig.Account)
	typ := TypeOut
	if orig.Type == TypeOut {
		typ = TypeIn
	}
	if acct := b.spendable(a); typ == TypeOut && acct.Available() < amount {
		o.err = errInsufficient(acct, amount)
		return
	}
	t, err := b.s.nextEntry(a.Account, typ, amount, nil)
	if err != nil {
		o.err = err
		return
	}
	t.Kind, t.Reference, t.IdempotencyKey, t.Metadata = KindReversal, o.ref, in.IdempotencyKey, o.md
	t.ReversesTransactionID = orig.ID
	if typ == TypeOut {
		// Taking back credits takes back those of the reversed entry first.
		b.draw(a.ID, amount, orig.ID, t.CreateTime)
	}
	b.post(a, t)
	b.reversed[orig.ID] += amount
	orig.ReversedAmount += amount
	b.remember(IdempotencyRecord{
		Workspace: in.Workspace, Key: o.key, Operation: OpReverse, Fingerprint: o.fp, TransactionID: t.ID, CreateTime: t.CreateTime,
	})
	o.res = ReverseResult{Transaction: t, Original: orig, Balance: t.BalanceAfter, Version: t.AccountVersion}
}

func (o *reverseOp) report(obs Observer) {
	switch {
	case o.err != nil:
		observeRefusal(obs, OpReverse, o.err)
	case o.res.Replayed:
		obs.Replayed(OpReverse)
	default:
		obs.Posted(o.res.Transaction)
		obs.Reversed(o.res.Original.Kind)
	}
}
