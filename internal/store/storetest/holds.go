package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/ledger"
)

// Holds, reversals, credit expiry and statements (SPEC §9).

func (h *harness) hold(ws, acct string, amount int64, ttl time.Duration) ledger.Hold {
	h.t.Helper()
	r, err := h.svc.CreateHold(h.ctx, ledger.CreateHoldInput{
		Workspace: ws, Account: acct, Amount: amount, TTL: ttl, IdempotencyKey: h.key("hold"), Reference: "order:1",
	})
	if err != nil {
		h.t.Fatalf("CreateHold(%s/%s, %d): %v", ws, acct, amount, err)
	}
	return r.Hold
}

func (h *harness) wantAccount(ws, acct string, balance, held int64) ledger.Balance {
	h.t.Helper()
	b := h.balance(ws, acct)
	if b.Balance != balance || b.Held != held || b.Available() != balance-held {
		h.t.Fatalf("%s/%s: balance %d held %d available %d; want balance %d held %d", ws, acct, b.Balance, b.Held, b.Available(), balance, held)
	}
	return b
}

func testHoldLifecycle(t *testing.T, h *harness) {
	h.enable("ws1", true)
	h.credit("ws1", "alice", 100)
	in := ledger.CreateHoldInput{
		Workspace: "ws1", Account: "alice", Amount: 30, Kind: ledger.KindInvoicePayment, Reference: "invoice:7",
		TTL: time.Hour, IdempotencyKey: "h1", Metadata: map[string]string{"invoice": "7"},
	}
	created, err := h.svc.CreateHold(h.ctx, in)
	if err != nil || created.Hold.Status != ledger.HoldActive || created.Available != 70 || created.Replayed {
		t.Fatalf("CreateHold: %+v, %v", created, err)
	}
	again, err := h.svc.CreateHold(h.ctx, in)
	if err != nil || !again.Replayed || again.Hold.ID != created.Hold.ID {
		t.Fatalf("replay: %+v, %v", again, err)
	}
	h.wantAccount("ws1", "alice", 100, 30)

	// Debits see what is available, not the balance.
	_, err = h.svc.Debit(h.ctx, ledger.DebitInput{Workspace: "ws1", Account: "alice", Amount: 71, IdempotencyKey: "d1"})
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonInsufficientCredits)
	h.debit("ws1", "alice", 70)
	h.wantAccount("ws1", "alice", 30, 30)

	// A partial capture spends part and releases the rest, even with
	// nothing else available.
	cap1, err := h.svc.CaptureHold(h.ctx, ledger.CaptureHoldInput{Workspace: "ws1", HoldID: created.Hold.ID, Amount: 20, IdempotencyKey: "c1"})
	if err != nil || cap1.Hold.Status != ledger.HoldCaptured || cap1.Hold.CapturedAmount != 20 || cap1.Transaction == nil {
		t.Fatalf("CaptureHold: %+v, %v", cap1, err)
	}
	tr := *cap1.Transaction
	if tr.Type != ledger.TypeOut || tr.Kind != ledger.KindInvoicePayment || tr.Amount != 20 || tr.HoldID != created.Hold.ID ||
		tr.Reference != "invoice:7" || tr.Metadata["invoice"] != "7" || cap1.Hold.TransactionID != tr.ID {
		t.Fatalf("captured entry: %+v", tr)
	}
	h.wantAccount("ws1", "alice", 10, 0)
	replay, err := h.svc.CaptureHold(h.ctx, ledger.CaptureHoldInput{Workspace: "ws1", HoldID: created.Hold.ID, Amount: 20, IdempotencyKey: "c1"})
	if err != nil || !replay.Replayed || replay.Transaction == nil || replay.Transaction.ID != tr.ID {
		t.Fatalf("capture replay: %+v, %v", replay, err)
	}
	_, err = h.svc.CaptureHold(h.ctx, ledger.CaptureHoldInput{Workspace: "ws1", HoldID: created.Hold.ID, IdempotencyKey: "c2"})
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonHoldNotActive)
	_, err = h.svc.VoidHold(h.ctx, ledger.VoidHoldInput{Workspace: "ws1", HoldID: created.Hold.ID, IdempotencyKey: "v1"})
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonHoldNotActive)

	// Void releases everything and posts nothing.
	second := h.hold("ws1", "alice", 10, time.Hour)
	h.wantAccount("ws1", "alice", 10, 10)
	voided, err := h.svc.VoidHold(h.ctx, ledger.VoidHoldInput{Workspace: "ws1", HoldID: second.ID, IdempotencyKey: "v2"})
	if err != nil || voided.Hold.Status != ledger.HoldVoided || voided.Transaction != nil || voided.Available != 10 {
		t.Fatalf("VoidHold: %+v, %v", voided, err)
	}
	if n := len(h.history("ws1", "alice")); n != 3 {
		t.Fatalf("%d entries, want 3 (credit, debit, capture)", n)
	}
	got, err := h.svc.GetHold(h.ctx, "ws1", created.Hold.ID)
	if err != nil || got.Status != ledger.HoldCaptured || got.CapturedAmount != 20 || got.UpdateTime.IsZero() {
		t.Fatalf("GetHold: %+v, %v", got, err)
	}
	page, err := h.svc.ListHolds(h.ctx, ledger.ListHoldsInput{Workspace: "ws1", Account: "alice", PageSize: 1})
	if err != nil || len(page.Holds) != 1 || page.Holds[0].ID != second.ID || page.NextPageToken == "" {
		t.Fatalf("ListHolds page 1: %+v, %v", page, err)
	}
	page, err = h.svc.ListHolds(h.ctx, ledger.ListHoldsInput{Workspace: "ws1", Account: "alice", PageSize: 1, PageToken: page.NextPageToken})
	if err != nil || len(page.Holds) != 1 || page.Holds[0].ID != created.Hold.ID {
		t.Fatalf("ListHolds page 2: %+v, %v", page, err)
	}
	page, err = h.svc.ListHolds(h.ctx, ledger.ListHoldsInput{Workspace: "ws1", Account: "alice", Status: ledger.HoldVoided})
	if err != nil || len(page.Holds) != 1 || page.Holds[0].ID != second.ID {
		t.Fatalf("ListHolds VOIDED: %+v, %v", page, err)
	}
	if _, err := h.svc.GetHold(h.ctx, "ws2", created.Hold.ID); ledger.ErrorOf(err).Code != ledger.CodeNotFound {
		t.Fatalf("a hold read from another workspace: %v", err)
	}
}

func testHoldRefusals(t *testing.T, h *harness) {
	h.credit("ws1", "bob", 50)
	create := func(amount int64, ttl time.Duration) error {
		_, err := h.svc.CreateHold(h.ctx, ledger.CreateHoldInput{Workspace: "ws1", Account: "bob", Amount: amount, TTL: ttl, IdempotencyKey: h.key("h")})
		return err
	}
	wantReason(t, create(10, time.Hour), ledger.CodeFailedPrecondition, ledger.ReasonCreditPaymentsDisabled)
	h.enable("ws1", true)
	wantReason(t, create(51, time.Hour), ledger.CodeFailedPrecondition, ledger.ReasonInsufficientCredits)
	wantReason(t, create(10, 31*24*time.Hour), ledger.CodeInvalid, ledger.ReasonInvalidArgument)
	wantReason(t, create(0, time.Hour), ledger.CodeInvalid, ledger.ReasonInvalidArgument)
	hd := h.hold("ws1", "bob", 40, time.Hour)
	wantReason(t, create(11, time.Hour), ledger.CodeFailedPrecondition, ledger.ReasonInsufficientCredits)
	_, err := h.svc.CaptureHold(h.ctx, ledger.CaptureHoldInput{Workspace: "ws1", HoldID: hd.ID, Amount: 41, IdempotencyKey: "c"})
	wantReason(t, err, ledger.CodeInvalid, ledger.ReasonInvalidArgument)
	_, err = h.svc.CaptureHold(h.ctx, ledger.CaptureHoldInput{Workspace: "ws1", HoldID: "nope", IdempotencyKey: "c"})
	if ledger.ErrorOf(err).Code != ledger.CodeNotFound {
		t.Fatalf("capture of an unknown hold: %v", err)
	}
	// A capture cannot fail for lack of credits, nor because credit
	// payments were switched off after the hold.
	h.enable("ws1", false)
	r, err := h.svc.CaptureHold(h.ctx, ledger.CaptureHoldInput{Workspace: "ws1", HoldID: hd.ID, IdempotencyKey: "c"})
	if err != nil || r.Transaction == nil || r.Transaction.Amount != 40 {
		t.Fatalf("capture after disabling: %+v, %v", r, err)
	}
	h.wantAccount("ws1", "bob", 10, 0)
}

func testHoldExpiry(t *testing.T, h *harness) {
	h.enable("ws1", true)
	h.credit("ws1", "carol", 100)
	hd := h.hold("ws1", "carol", 60, time.Minute)
	late := h.hold("ws1", "carol", 10, time.Hour)
	h.advance(2 * time.Minute)
	// Past its expiry a hold cannot be captured, swept or not.
	_, err := h.svc.CaptureHold(h.ctx, ledger.CaptureHoldInput{Workspace: "ws1", HoldID: hd.ID, IdempotencyKey: "c"})
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonHoldNotActive)
	rep, err := h.svc.ExpireDue(h.ctx)
	if err != nil || rep.Holds != 1 {
		t.Fatalf("first sweep: %+v, %v", rep, err)
	}
	if rep, err := h.svc.ExpireDue(h.ctx); err != nil || rep.Holds != 0 {
		t.Fatalf("second sweep: %+v, %v (exactly once)", rep, err)
	}
	got, err := h.svc.GetHold(h.ctx, "ws1", hd.ID)
	if err != nil || got.Status != ledger.HoldExpired || got.TransactionID != "" {
		t.Fatalf("expired hold: %+v, %v", got, err)
	}
	if got, _ := h.svc.GetHold(h.ctx, "ws1", late.ID); got.Status != ledger.HoldActive {
		t.Fatalf("a hold not due was swept: %+v", got)
	}
	h.wantAccount("ws1", "carol", 100, 10)
	_, err = h.svc.VoidHold(h.ctx, ledger.VoidHoldInput{Workspace: "ws1", HoldID: hd.ID, IdempotencyKey: "v"})
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonHoldNotActive)
}

// testHoldRace: a capture, a void and the expiry sweep of another replica
// (whose clock says the hold is due) meet on one hold: exactly one wins.
func testHoldRace(t *testing.T, h *harness) {
	h.enable("ws1", true)
	sweeper := h.service(2 * time.Minute)
	for round := range 8 {
		acct := "race-" + string(rune('a'+round))
		h.credit("ws1", acct, 100)
		hd := h.hold("ws1", acct, 40, time.Minute)
		var wg sync.WaitGroup
		var capErr, voidErr, sweepErr error
		var swept ledger.ExpiryReport
		wg.Go(func() {
			_, capErr = h.svc.CaptureHold(h.ctx, ledger.CaptureHoldInput{Workspace: "ws1", HoldID: hd.ID, IdempotencyKey: "c"})
		})
		wg.Go(func() {
			_, voidErr = h.svc.VoidHold(h.ctx, ledger.VoidHoldInput{Workspace: "ws1", HoldID: hd.ID, IdempotencyKey: "v"})
		})
		wg.Go(func() { swept, sweepErr = sweeper.ExpireDue(h.ctx) })
		wg.Wait()
		if sweepErr != nil {
			t.Fatalf("round %d: sweep: %v", round, sweepErr)
		}
		wins := 0
		for _, err := range []error{capErr, voidErr} {
			switch {
			case err == nil:
				wins++
			case ledger.ErrorOf(err).Reason != ledger.ReasonHoldNotActive:
				t.Fatalf("round %d: %v", round, err)
			}
		}
		got, err := h.svc.GetHold(h.ctx, "ws1", hd.ID)
		if err != nil {
			t.Fatal(err)
		}
		if swept.Holds > 0 {
			wins++
		}
		if wins != 1 {
			t.Fatalf("round %d: %d winners (capture %v, void %v, swept %d), hold %s", round, wins, capErr, voidErr, swept.Holds, got.Status)
		}
		wantBalance := int64(100)
		if got.Status == ledger.HoldCaptured {
			wantBalance = 60
		}
		h.wantAccount("ws1", acct, wantBalance, 0)
	}
}

func testReversals(t *testing.T, h *harness) {
	h.enable("ws1", true)
	credit := h.credit("ws1", "dave", 100)
	debit := h.debit("ws1", "dave", 30)
	rev := func(id string, amount int64, key string) (ledger.ReverseResult, error) {
		return h.svc.ReverseTransaction(h.ctx, ledger.ReverseInput{
			Workspace: "ws1", TransactionID: id, Amount: amount, Reason: "service cancelled", IdempotencyKey: key,
		})
	}
	// A refund of part of a debit: an IN REVERSAL linked to it.
	r1, err := rev(debit.Transaction.ID, 10, "r1")
	if err != nil || r1.Transaction.Type != ledger.TypeIn || r1.Transaction.Kind != ledger.KindReversal ||
		r1.Transaction.ReversesTransactionID != debit.Transaction.ID || r1.Original.ReversedAmount != 10 || r1.Balance != 80 ||
		r1.Transaction.Reference != "service cancelled" {
		t.Fatalf("partial reversal: %+v, %v", r1, err)
	}
	if again, err := rev(debit.Transaction.ID, 10, "r1"); err != nil || !again.Replayed || again.Transaction.ID != r1.Transaction.ID {
		t.Fatalf("replay: %+v, %v", again, err)
	}
	_, err = rev(debit.Transaction.ID, 21, "r2")
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonReversalExceeds)
	rest, err := rev(debit.Transaction.ID, 0, "r3") // what remains: 20
	if err != nil || rest.Transaction.Amount != 20 || rest.Original.ReversedAmount != 30 {
		t.Fatalf("reversal of the rest: %+v, %v", rest, err)
	}
	_, err = rev(debit.Transaction.ID, 0, "r4")
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonReversalExceeds)
	_, err = rev(rest.Transaction.ID, 0, "r5")
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonNotReversible)
	got, err := h.svc.GetTransaction(h.ctx, "ws1", debit.Transaction.ID)
	if err != nil || got.ReversedAmount != 30 {
		t.Fatalf("GetTransaction: %+v, %v", got, err)
	}

	// Taking back a credit: only what is still there.
	h.debit("ws1", "dave", 50) // balance 50 of the 100 credited
	_, err = rev(credit.Transaction.ID, 60, "r6")
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonInsufficientCredits)
	back, err := rev(credit.Transaction.ID, 50, "r7")
	if err != nil || back.Transaction.Type != ledger.TypeOut || back.Balance != 0 {
		t.Fatalf("claw-back: %+v, %v", back, err)
	}
	// The key is scoped to the reversed entry.
	h.credit("ws1", "dave", 5)
	other := h.history("ws1", "dave")[0]
	if r, err := rev(other.ID, 0, "r7"); err != nil || r.Replayed {
		t.Fatalf("the same key on another entry: %+v, %v", r, err)
	}
	if _, err := rev("nope", 0, "x"); ledger.ErrorOf(err).Code != ledger.CodeNotFound {
		t.Fatalf("unknown entry: %v", err)
	}
	h.checkInvariants("ws1", "dave")
}

// testReversalRace: two reversals of two credits race for the last
// credits of the account: exactly one posts.
func testReversalRace(t *testing.T, h *harness) {
	h.enable("ws1", true)
	for round := range 6 {
		acct := "rr-" + string(rune('a'+round))
		a := h.credit("ws1", acct, 50)
		b := h.credit("ws1", acct, 50)
		h.debit("ws1", acct, 60) // 40 left
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, id := range []string{a.Transaction.ID, b.Transaction.ID} {
			wg.Go(func() {
				_, errs[i] = h.svc.ReverseTransaction(h.ctx, ledger.ReverseInput{Workspace: "ws1", TransactionID: id, Amount: 40, IdempotencyKey: "k"})
			})
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case ledger.ErrorOf(err).Reason != ledger.ReasonInsufficientCredits:
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d reversals posted, want 1 (%v)", round, ok, errs)
		}
		h.wantAccount("ws1", acct, 0, 0)
	}
}

func (h *harness) creditUntil(ws, acct string, amount int64, expire time.Time) ledger.PostResult {
	h.t.Helper()
	r, err := h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: ws, Account: acct, Amount: amount, ExpireTime: expire, IdempotencyKey: h.key("g")})
	if err != nil {
		h.t.Fatalf("Credit(%d, until %v): %v", amount, expire, err)
	}
	return r
}

func testCreditExpiry(t *testing.T, h *harness) {
	h.enable("ws1", true)
	t0 := h.now()
	g1 := h.creditUntil("ws1", "erin", 100, t0.Add(time.Hour))
	h.credit("ws1", "erin", 50)
	g2 := h.creditUntil("ws1", "erin", 30, t0.Add(2*time.Hour))
	if !g1.Transaction.ExpireTime.Equal(t0.Add(time.Hour).UTC().Truncate(time.Microsecond)) {
		t.Fatalf("granted entry's expire time: %v", g1.Transaction.ExpireTime)
	}
	b := h.wantAccount("ws1", "erin", 180, 0)
	if b.NextExpiringCredits != 100 || !b.NextExpireTime.Equal(g1.Transaction.ExpireTime) {
		t.Fatalf("next expiry: %v %d", b.NextExpireTime, b.NextExpiringCredits)
	}
	// Spending draws the soonest-expiring credits first: all of g1, then
	// 20 of g2; the non-expiring 50 stay.
	h.debit("ws1", "erin", 120)
	b = h.wantAccount("ws1", "erin", 60, 0)
	if b.NextExpiringCredits != 10 || !b.NextExpireTime.Equal(g2.Transaction.ExpireTime) {
		t.Fatalf("next expiry after spending: %v %d", b.NextExpireTime, b.NextExpiringCredits)
	}
	h.advance(90 * time.Minute)
	if rep, err := h.svc.ExpireDue(h.ctx); err != nil || rep.Grants != 0 {
		t.Fatalf("sweep with g1 spent: %+v, %v", rep, err)
	}
	h.advance(time.Hour)
	// Past the expiry, before the sweep, the expired credits cannot be spent.
	_, err := h.svc.Debit(h.ctx, ledger.DebitInput{Workspace: "ws1", Account: "erin", Amount: 51, IdempotencyKey: "late"})
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonInsufficientCredits)
	if rep, err := h.svc.ExpireDue(h.ctx); err != nil || rep.Grants != 1 {
		t.Fatalf("sweep: %+v, %v", rep, err)
	}
	if rep, err := h.svc.ExpireDue(h.ctx); err != nil || rep.Grants != 0 {
		t.Fatalf("second sweep: %+v, %v (exactly once)", rep, err)
	}
	b = h.wantAccount("ws1", "erin", 50, 0)
	if !b.NextExpireTime.IsZero() || b.NextExpiringCredits != 0 {
		t.Fatalf("nothing left to expire: %v %d", b.NextExpireTime, b.NextExpiringCredits)
	}
	last := h.history("ws1", "erin")[0]
	if last.Kind != ledger.KindExpiry || last.Type != ledger.TypeOut || last.Amount != 10 || last.Reference != "expiry:"+g2.Transaction.ID {
		t.Fatalf("expiry entry: %+v", last)
	}
	_, err = h.svc.ReverseTransaction(h.ctx, ledger.ReverseInput{Workspace: "ws1", TransactionID: last.ID, IdempotencyKey: "r"})
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonNotReversible)
	_, err = h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: "ws1", Account: "erin", Amount: 1, ExpireTime: h.now().Add(-time.Minute), IdempotencyKey: "past"})
	wantReason(t, err, ledger.CodeInvalid, ledger.ReasonInvalidArgument)
	h.checkInvariants("ws1", "erin")
}

// testExpiryWaitsForHolds: credits an active hold reserves do not expire
// under it; the grant expires once the hold is captured or released.
func testExpiryWaitsForHolds(t *testing.T, h *harness) {
	h.enable("ws1", true)
	h.creditUntil("ws1", "fred", 100, h.now().Add(time.Hour))
	hd := h.hold("ws1", "fred", 60, 3*time.Hour)
	h.advance(2 * time.Hour)
	rep, err := h.svc.ExpireDue(h.ctx)
	if err != nil || rep.Grants != 0 || rep.Deferred != 1 {
		t.Fatalf("sweep under a hold: %+v, %v", rep, err)
	}
	if _, err := h.svc.CaptureHold(h.ctx, ledger.CaptureHoldInput{Workspace: "ws1", HoldID: hd.ID, IdempotencyKey: "c"}); err != nil {
		t.Fatalf("capture of reserved credits past their grant's expiry: %v", err)
	}
	if rep, err := h.svc.ExpireDue(h.ctx); err != nil || rep.Grants != 1 {
		t.Fatalf("sweep after the capture: %+v, %v", rep, err)
	}
	h.wantAccount("ws1", "fred", 0, 0)
}

// testDebitRacesExpiry: a debit (on a replica whose clock is before the
// expiry) and the sweep (on one whose clock is after it) race for a
// grant's credits: exactly one of them gets them.
func testDebitRacesExpiry(t *testing.T, h *harness) {
	h.enable("ws1", true)
	sweeper := h.service(2 * time.Minute)
	for round := range 6 {
		acct := "dx-" + string(rune('a'+round))
		h.creditUntil("ws1", acct, 100, h.now().Add(time.Minute))
		var wg sync.WaitGroup
		var debitErr, sweepErr error
		var rep ledger.ExpiryReport
		wg.Go(func() {
			_, debitErr = h.svc.Debit(h.ctx, ledger.DebitInput{Workspace: "ws1", Account: acct, Amount: 100, IdempotencyKey: "d"})
		})
		wg.Go(func() { rep, sweepErr = sweeper.ExpireDue(h.ctx) })
		wg.Wait()
		if sweepErr != nil {
			t.Fatalf("round %d: sweep: %v", round, sweepErr)
		}
		debited := debitErr == nil
		if debitErr != nil && ledger.ErrorOf(debitErr).Reason != ledger.ReasonInsufficientCredits {
			t.Fatalf("round %d: debit: %v", round, debitErr)
		}
		hist := h.history("ws1", acct)
		expired := hist[0].Kind == ledger.KindExpiry
		if debited == expired || len(hist) != 2 {
			t.Fatalf("round %d: debit posted %v, expiry posted %v (sweep %+v): exactly one must", round, debited, expired, rep)
		}
		h.wantAccount("ws1", acct, 0, 0)
		if r, err := sweeper.ExpireDue(h.ctx); err != nil || r.Grants != 0 {
			t.Fatalf("round %d: a later sweep: %+v, %v", round, r, err)
		}
	}
}

func testPackageValidity(t *testing.T, h *harness) {
	h.enable("ws1", true)
	p, err := h.svc.CreatePackage(h.ctx, "ws1", "promo", ledger.Package{
		DisplayName: "Promo", Credits: 100, Price: ledger.Money{Currency: "USD", Units: 10}, Validity: 24 * time.Hour,
	})
	if err != nil || p.Validity != 24*time.Hour {
		t.Fatalf("CreatePackage: %+v, %v", p, err)
	}
	if got, err := h.svc.GetPackage(h.ctx, "ws1", "promo"); err != nil || got.Validity != 24*time.Hour {
		t.Fatalf("GetPackage: %+v, %v", got, err)
	}
	r, err := h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: "ws1", Account: "gina", PackageID: "promo", IdempotencyKey: "buy"})
	if err != nil || !r.Transaction.ExpireTime.Equal(r.Transaction.CreateTime.Add(24*time.Hour)) {
		t.Fatalf("credit from the package: %+v, %v", r.Transaction, err)
	}
	// A bank transfer for the package: the credits expire a day after the
	// agency accepts it.
	sub, err := h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{
		Workspace: "ws1", Account: "gina", PackageID: "promo",
		PaymentMethod: ledger.MethodBankTransfer, IdempotencyKey: "sub",
	})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := h.svc.DecideRequest(h.ctx, ledger.DecideInput{Workspace: "ws1", RequestID: sub.Request.ID, Decision: ledger.DecisionAccept, DecidedBy: "admin", IdempotencyKey: "acc"})
	if err != nil || dec.Transaction == nil || !dec.Transaction.ExpireTime.Equal(dec.Transaction.CreateTime.Add(24*time.Hour)) {
		t.Fatalf("accepted request: %+v, %v", dec, err)
	}
	up, err := h.svc.UpdatePackage(h.ctx, "ws1", "promo", ledger.Package{}, []string{"validity"})
	if err != nil || up.Validity != 0 {
		t.Fatalf("validity removed: %+v, %v", up, err)
	}
	r2, err := h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: "ws1", Account: "gina", PackageID: "promo", IdempotencyKey: "buy2"})
	if err != nil || !r2.Transaction.ExpireTime.IsZero() {
		t.Fatalf("credit from a package without validity: %+v, %v", r2.Transaction, err)
	}
	h.advance(25 * time.Hour)
	if rep, err := h.svc.ExpireDue(h.ctx); err != nil || rep.Grants != 2 {
		t.Fatalf("sweep: %+v, %v", rep, err)
	}
	h.wantAccount("ws1", "gina", 100, 0)
}

func testStatementAndExport(t *testing.T, h *harness) {
	h.enable("ws1", true)
	h.credit("ws1", "hal", 100) // before the period
	h.advance(time.Hour)
	start := h.now()
	h.advance(time.Minute)
	h.credit("ws1", "hal", 50)
	d := h.debit("ws1", "hal", 30)
	if _, err := h.svc.ReverseTransaction(h.ctx, ledger.ReverseInput{Workspace: "ws1", TransactionID: d.Transaction.ID, Amount: 5, IdempotencyKey: "r"}); err != nil {
		t.Fatal(err)
	}
	h.advance(time.Minute)
	end := h.now()
	h.advance(time.Minute)
	h.debit("ws1", "hal", 1) // after the period
	st, err := h.svc.GetStatement(h.ctx, "ws1", "hal", start, end)
	if err != nil {
		t.Fatal(err)
	}
	if st.OpeningBalance != 100 || st.ClosingBalance != 125 || st.TotalIn != 55 || st.TotalOut != 30 || st.Count != 3 {
		t.Fatalf("statement: %+v", st)
	}
	want := map[ledger.Kind]ledger.StatementLine{
		ledger.KindPurchase:        {Type: ledger.TypeIn, Kind: ledger.KindPurchase, Amount: 50, Count: 1},
		ledger.KindServicePurchase: {Type: ledger.TypeOut, Kind: ledger.KindServicePurchase, Amount: 30, Count: 1},
		ledger.KindReversal:        {Type: ledger.TypeIn, Kind: ledger.KindReversal, Amount: 5, Count: 1},
	}
	if len(st.Lines) != len(want) {
		t.Fatalf("statement lines: %+v", st.Lines)
	}
	for _, l := range st.Lines {
		if want[l.Kind] != l {
			t.Fatalf("statement line %+v, want %+v", l, want[l.Kind])
		}
	}
	_, err = h.svc.GetStatement(h.ctx, "ws1", "hal", end, start)
	wantReason(t, err, ledger.CodeInvalid, ledger.ReasonInvalidArgument)

	var versions []int64
	if err := h.svc.ExportTransactions(h.ctx, "ws1", "hal", time.Time{}, time.Time{}, func(tr ledger.Transaction) error {
		versions = append(versions, tr.AccountVersion)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(versions) != 5 || versions[0] != 1 || versions[4] != 5 {
		t.Fatalf("export versions %v, want 1..5 oldest first", versions)
	}
	versions = nil
	if err := h.svc.ExportTransactions(h.ctx, "ws1", "hal", start, end, func(tr ledger.Transaction) error {
		versions = append(versions, tr.AccountVersion)
		return nil
	}); err != nil || len(versions) != 3 || versions[0] != 2 {
		t.Fatalf("export of the period: %v, %v", versions, err)
	}
}
