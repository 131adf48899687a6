package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/ledger"
)

// events returns every event of ws after after, walking all pages.
func (h *harness) events(ws string, after int64, q ledger.ListEventsInput) []ledger.Event {
	h.t.Helper()
	q.Workspace, q.AfterSequence = ws, after
	var all []ledger.Event
	for {
		page, err := h.svc.ListEvents(h.ctx, q)
		if err != nil {
			h.t.Fatalf("ListEvents(%s, after %d): %v", ws, q.AfterSequence, err)
		}
		if len(page.Events) == 0 {
			return all
		}
		all = append(all, page.Events...)
		q.AfterSequence = page.Last
	}
}

func eventTypes(evs []ledger.Event) []ledger.EventType {
	out := make([]ledger.EventType, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// wantGapFree fails unless evs are numbered first, first+1, ….
func wantGapFree(t *testing.T, evs []ledger.Event, first int64) {
	t.Helper()
	for i, e := range evs {
		if e.Sequence != first+int64(i) {
			t.Fatalf("event %d has sequence %d, want %d (gap or repeat)", i, e.Sequence, first+int64(i))
		}
	}
}

// testEventsFollowChanges: every change writes its events, in the order of
// the changes, with the object as the change left it; refusals and
// replays write none.
func testEventsFollowChanges(t *testing.T, h *harness) {
	h.enable("ws1", true) // settings.updated
	c := h.credit("ws1", "alice", 100)
	d := h.debit("ws1", "alice", 30)
	// A refusal and a replay write nothing.
	_, err := h.svc.Debit(h.ctx, ledger.DebitInput{Workspace: "ws1", Account: "alice", Amount: 1000, IdempotencyKey: "too-much"})
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonInsufficientCredits)
	if _, err := h.svc.Debit(h.ctx, ledger.DebitInput{Workspace: "ws1", Account: "alice", Amount: 30, IdempotencyKey: d.Transaction.IdempotencyKey}); err != nil {
		t.Fatalf("replay: %v", err)
	}
	sub, err := h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{
		Workspace: "ws1", Account: "bob", Amount: 50, PaymentMethod: ledger.MethodBankTransfer,
		PaymentReference: "wire-1", IdempotencyKey: "s1",
	})
	if err != nil {
		t.Fatalf("SubmitRequest: %v", err)
	}
	if _, err := h.svc.DecideRequest(h.ctx, ledger.DecideInput{
		Workspace: "ws1", RequestID: sub.Request.ID, Decision: ledger.DecisionAccept, IdempotencyKey: "a1", DecidedBy: "agent",
	}); err != nil {
		t.Fatalf("DecideRequest: %v", err)
	}
	hd := h.hold("ws1", "alice", 20, time.Hour)
	if _, err := h.svc.CaptureHold(h.ctx, ledger.CaptureHoldInput{Workspace: "ws1", HoldID: hd.ID, Amount: 5, IdempotencyKey: "cap"}); err != nil {
		t.Fatalf("CaptureHold: %v", err)
	}

	evs := h.events("ws1", 0, ledger.ListEventsInput{})
	want := []ledger.EventType{
		ledger.EventSettingsUpdated,
		ledger.EventTransactionPosted, // credit
		ledger.EventTransactionPosted, // debit
		ledger.EventRequestSubmitted,
		ledger.EventTransactionPosted, // the accepted request's credits
		ledger.EventRequestDecided,
		ledger.EventHoldCreated,
		ledger.EventTransactionPosted, // the capture
		ledger.EventHoldCaptured,
	}
	if got := eventTypes(evs); !slices.Equal(got, want) {
		t.Fatalf("event types\n got %v\nwant %v", got, want)
	}
	wantGapFree(t, evs, 1)
	if e := evs[1]; e.Transaction == nil || e.Transaction.ID != c.Transaction.ID || e.Account != "alice" || e.Transaction.BalanceAfter != 100 {
		t.Fatalf("credit's event: %+v", e)
	}
	if e := evs[2]; e.Transaction == nil || e.Transaction.ID != d.Transaction.ID || e.Transaction.BalanceAfter != 70 {
		t.Fatalf("debit's event: %+v", e)
	}
	if e := evs[3]; e.Request == nil || e.Request.ID != sub.Request.ID || e.Request.Status != ledger.StatusPending || e.Account != "bob" {
		t.Fatalf("submit's event: %+v", e)
	}
	if e := evs[5]; e.Request == nil || e.Request.Status != ledger.StatusAccepted || e.Request.TransactionID != evs[4].Transaction.ID {
		t.Fatalf("decision's event: %+v", e)
	}
	if e := evs[8]; e.Hold == nil || e.Hold.ID != hd.ID || e.Hold.Status != ledger.HoldCaptured || e.Hold.CapturedAmount != 5 {
		t.Fatalf("capture's event: %+v", e)
	}
	if e := evs[0]; e.Settings == nil || !e.Settings.CreditPaymentsEnabled || e.Account != "" {
		t.Fatalf("settings' event: %+v", e)
	}
	for _, e := range evs {
		if e.Workspace != "ws1" || e.CreateTime.IsZero() || e.ID() == "" {
			t.Fatalf("event without workspace, time or ID: %+v", e)
		}
	}
	if evs[0].ID() == evs[1].ID() || ledger.EventID("ws1", 1) == ledger.EventID("ws2", 1) {
		t.Fatalf("event IDs are not unique")
	}

	// Filters: one account, some types; and a cursor in the middle.
	bob := h.events("ws1", 0, ledger.ListEventsInput{Account: "bob"})
	if got := eventTypes(bob); !slices.Equal(got, []ledger.EventType{ledger.EventRequestSubmitted, ledger.EventTransactionPosted, ledger.EventRequestDecided}) {
		t.Fatalf("bob's events: %v", got)
	}
	holds := h.events("ws1", 0, ledger.ListEventsInput{Types: []ledger.EventType{ledger.EventHoldCreated, ledger.EventHoldCaptured}})
	if len(holds) != 2 || holds[0].Sequence != 7 || holds[1].Sequence != 9 {
		t.Fatalf("hold events: %+v", holds)
	}
	if tail := h.events("ws1", 7, ledger.ListEventsInput{}); len(tail) != 2 || tail[0].Sequence != 8 {
		t.Fatalf("events after 7: %+v", tail)
	}
	page, err := h.svc.ListEvents(h.ctx, ledger.ListEventsInput{Workspace: "ws1", AfterSequence: 9})
	if err != nil || len(page.Events) != 0 || page.Last != 9 {
		t.Fatalf("after the last event: %+v, %v", page, err)
	}

	// Another workspace has its own sequence and sees none of these.
	h.credit("ws2", "alice", 1)
	if other := h.events("ws2", 0, ledger.ListEventsInput{}); len(other) != 1 || other[0].Sequence != 1 || other[0].Workspace != "ws2" {
		t.Fatalf("ws2's events: %+v", other)
	}
	_, err = h.svc.ListEvents(h.ctx, ledger.ListEventsInput{Workspace: "ws1", Types: []ledger.EventType{"nope"}})
	wantReason(t, err, ledger.CodeInvalid, ledger.ReasonInvalidArgument)
}

// testEventsExpiryAndVoid: the server's own changes (a hold expired,
// credits expired) and a void write their events too.
func testEventsExpiryAndVoid(t *testing.T, h *harness) {
	h.enable("ws1", true)
	h.creditUntil("ws1", "alice", 40, h.now().Add(time.Hour))
	v := h.hold("ws1", "alice", 10, time.Hour)
	if _, err := h.svc.VoidHold(h.ctx, ledger.VoidHoldInput{Workspace: "ws1", HoldID: v.ID, IdempotencyKey: "void"}); err != nil {
		t.Fatalf("VoidHold: %v", err)
	}
	h.hold("ws1", "alice", 10, time.Minute)
	after := h.events("ws1", 0, ledger.ListEventsInput{})
	h.advance(2 * time.Hour)
	if _, err := h.svc.ExpireDue(h.ctx); err != nil {
		t.Fatalf("ExpireDue: %v", err)
	}
	evs := h.events("ws1", after[len(after)-1].Sequence, ledger.ListEventsInput{})
	got := eventTypes(evs)
	for _, typ := range []ledger.EventType{ledger.EventHoldExpired, ledger.EventCreditsExpired, ledger.EventTransactionPosted} {
		if !slices.Contains(got, typ) {
			t.Fatalf("after expiry: events %v lack %s", got, typ)
		}
	}
	if !slices.Contains(eventTypes(after), ledger.EventHoldVoided) {
		t.Fatalf("events %v lack hold.voided", eventTypes(after))
	}
	for _, e := range evs {
		if e.Type == ledger.EventCreditsExpired && (e.Transaction == nil || e.Transaction.Kind != ledger.KindExpiry || e.Transaction.Amount != 40) {
			t.Fatalf("credits.expired: %+v", e)
		}
	}
}

// testEventsConcurrentGapFree: writers on two replicas and a reader that
// follows the sequence: the reader never meets a gap (it would skip an
// event for good), every posted entry has exactly one event, and the
// sequence is gap-free at the end.
func testEventsConcurrentGapFree(t *testing.T, h *harness) {
	h.enable("ws1", true)
	const writers, each = 8, 15
	replicas := []*ledger.Service{h.svc, h.service(0)}
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc := replicas[w%2]
			for i := range each {
				acct := fmt.Sprintf("acct-%d", (w+i)%5)
				if _, err := svc.Credit(h.ctx, ledger.CreditInput{Workspace: "ws1", Account: acct, Amount: 1, IdempotencyKey: fmt.Sprintf("w%d-%d", w, i)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	// The reader: each page must start right after what it saw last.
	var seen []ledger.Event
	last := int64(1) // settings.updated
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		page, err := h.svc.ListEvents(h.ctx, ledger.ListEventsInput{Workspace: "ws1", AfterSequence: last, PageSize: 7})
		if err != nil {
			t.Fatalf("ListEvents: %v", err)
		}
		for _, e := range page.Events {
			if e.Sequence != last+1 {
				t.Fatalf("reader after %d met sequence %d", last, e.Sequence)
			}
			last = e.Sequence
			seen = append(seen, e)
		}
		if finished {
			seen = append(seen, h.events("ws1", last, ledger.ListEventsInput{})...)
		}
	}
	close(errs)
	for err := range errs {
		t.Fatalf("Credit: %v", err)
	}
	wantGapFree(t, seen, 2)
	ids := map[string]bool{}
	for _, e := range seen {
		if e.Type != ledger.EventTransactionPosted || e.Transaction == nil || ids[e.Transaction.ID] {
			t.Fatalf("unexpected or repeated event %+v", e)
		}
		ids[e.Transaction.ID] = true
	}
	if len(ids) != writers*each {
		t.Fatalf("%d entries have events, want %d", len(ids), writers*each)
	}
}

// testEventsOfControls: balance.low when a debit or a hold takes what a
// client can spend below the workspace's threshold (once per crossing),
// and request.cancelled for a cancelled request.
func testEventsOfControls(t *testing.T, h *harness) {
	h.enable("ws1", true)
	if _, err := h.svc.UpdateSettings(h.ctx, "ws1", ledger.Settings{LowBalanceThreshold: 100}, []string{"low_balance_threshold"}); err != nil {
		t.Fatal(err)
	}
	h.credit("ws1", "alice", 150) // from 0: already low before, no event
	h.debit("ws1", "alice", 40)   // 110: not low
	h.hold("ws1", "alice", 20, time.Hour)
	h.debit("ws1", "alice", 5) // 85 available: still low, no second event
	h.credit("ws1", "bob", 500)
	h.debit("ws1", "bob", 100) // 400: not low
	lows := h.events("ws1", 0, ledger.ListEventsInput{Types: []ledger.EventType{ledger.EventBalanceLow}})
	if len(lows) != 1 || lows[0].Account != "alice" || lows[0].BalanceLow == nil ||
		*lows[0].BalanceLow != (ledger.BalanceLow{Balance: 110, Available: 90, Threshold: 100}) {
		t.Fatalf("balance.low events: %+v", lows)
	}
	sub, err := h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{
		Workspace: "ws1", Account: "carol", Amount: 10, PaymentMethod: ledger.MethodCrypto, IdempotencyKey: "s-carol",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.CancelRequest(h.ctx, ledger.CancelInput{Workspace: "ws1", RequestID: sub.Request.ID, IdempotencyKey: "c-carol", Account: "carol", CancelledBy: "carol"}); err != nil {
		t.Fatal(err)
	}
	carol := h.events("ws1", 0, ledger.ListEventsInput{Account: "carol"})
	if got := eventTypes(carol); !slices.Equal(got, []ledger.EventType{ledger.EventRequestSubmitted, ledger.EventRequestCancelled}) ||
		carol[1].Request.Status != ledger.StatusCancelled {
		t.Fatalf("carol's events: %v", got)
	}
}

// testEventsPagedWithinABatch: a batch of many events reads back the same
// whichever way it is paged: from a cursor inside the batch, in pages
// smaller than the batch, filtered by account or type across batches.
func testEventsPagedWithinABatch(t *testing.T, h *harness) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	write := func(n int) {
		t.Helper()
		eff := &ledger.Effects{}
		for i := range n {
			e := ledger.Event{Workspace: "ws1", Type: ledger.EventSettingsUpdated, CreateTime: now, Settings: &ledger.Settings{Workspace: "ws1", UpdateTime: now}}
			if i%2 == 1 {
				e.Type, e.Account = ledger.EventBalanceLow, "bob"
				e.Settings = nil
				e.BalanceLow = &ledger.BalanceLow{Balance: int64(i), Available: int64(i), Threshold: 100}
			}
			eff.Events = append(eff.Events, e)
		}
		err := h.store.Write(h.ctx, ledger.WriteSet{Workspace: "ws1"}, func(*ledger.Snapshot) (*ledger.Effects, error) { return eff, nil })
		if err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	h.enable("ws1", true) // 1
	write(40)             // 2..41
	write(1)              // 42
	write(9)              // 43..51

	for _, size := range []int{1, 3, 7, 40, 100} {
		all := h.events("ws1", 0, ledger.ListEventsInput{PageSize: size})
		if len(all) != 51 {
			t.Fatalf("pages of %d: %d events, want 51", size, len(all))
		}
		wantGapFree(t, all, 1)
	}
	page, err := h.svc.ListEvents(h.ctx, ledger.ListEventsInput{Workspace: "ws1", AfterSequence: 13, PageSize: 5})
	if err != nil || len(page.Events) != 5 || page.Events[0].Sequence != 14 || page.Last != 18 {
		t.Fatalf("5 after 13: %+v, %v", page, err)
	}
	bob := h.events("ws1", 0, ledger.ListEventsInput{Account: "bob", PageSize: 3})
	if len(bob) != 24 {
		t.Fatalf("bob's events: %d, want 24", len(bob))
	}
	for i, e := range bob {
		if e.Account != "bob" || e.Type != ledger.EventBalanceLow || e.BalanceLow == nil {
			t.Fatalf("bob's event %d: %+v", i, e)
		}
	}
	if bob[19].Sequence != 41 || bob[20].Sequence != 44 {
		t.Fatalf("bob's events across batches: %d then %d, want 41 then 44", bob[19].Sequence, bob[20].Sequence)
	}
	settings := h.events("ws1", 39, ledger.ListEventsInput{Types: []ledger.EventType{ledger.EventSettingsUpdated}, PageSize: 2})
	var seqs []int64
	for _, e := range settings {
		seqs = append(seqs, e.Sequence)
	}
	if !slices.Equal(seqs, []int64{40, 42, 43, 45, 47, 49, 51}) {
		t.Fatalf("settings events after 39: %v", seqs)
	}
}
