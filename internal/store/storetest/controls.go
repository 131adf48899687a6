package storetest

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/creditledger/creditledger/internal/ledger"
)

// Agency controls: the payment methods a workspace offers, its low-balance
// threshold, and credit requests their client cancels.

func (h *harness) submit(ws, acct string, m ledger.PaymentMethod, amount int64) (ledger.SubmitResult, error) {
	return h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{
		Workspace: ws, Account: acct, Amount: amount, PaymentMethod: m, IdempotencyKey: h.key("sub"),
	})
}

func (h *harness) settings(ws string) ledger.Settings {
	h.t.Helper()
	st, err := h.svc.GetSettings(h.ctx, ws)
	if err != nil {
		h.t.Fatalf("GetSettings(%s): %v", ws, err)
	}
	return st
}

// testPaymentMethods: a workspace that never chose offers every method;
// once it chose, SubmitRequest refuses the others with
// PAYMENT_METHOD_NOT_OFFERED and records nothing; an empty list offers
// none; bad lists change nothing.
func testPaymentMethods(t *testing.T, h *harness) {
	const ws = "ws1"
	h.enable(ws, true)
	all := ledger.AllPaymentMethods()
	st := h.settings(ws)
	if st.PaymentMethodsSet || !slices.Equal(st.OfferedPaymentMethods(), all) {
		t.Fatalf("defaults: %+v offers %v, want every method", st, st.OfferedPaymentMethods())
	}
	for _, m := range all {
		if !st.Offers(m) {
			t.Fatalf("defaults do not offer %s", m)
		}
	}
	first, err := h.submit(ws, "pia", ledger.MethodBankTransfer, 40)
	if err != nil {
		t.Fatalf("bank transfer while every method is offered: %v", err)
	}

	// Out of order, given to the domain: stored in method order.
	up, err := h.svc.UpdateSettings(h.ctx, ws, ledger.Settings{
		PaymentMethods: []ledger.PaymentMethod{ledger.MethodPayPal, ledger.MethodCrypto, ledger.MethodStripe},
	}, []string{"payment_methods"})
	want := []ledger.PaymentMethod{ledger.MethodCrypto, ledger.MethodStripe, ledger.MethodPayPal}
	if err != nil || !up.PaymentMethodsSet || !slices.Equal(up.PaymentMethods, want) || !up.CreditPaymentsEnabled {
		t.Fatalf("choose methods: %+v %v", up, err)
	}
	if st := h.settings(ws); !slices.Equal(st.OfferedPaymentMethods(), want) || st.Offers(ledger.MethodBankTransfer) {
		t.Fatalf("read back: %+v", st)
	}
	_, err = h.submit(ws, "pia", ledger.MethodBankTransfer, 60)
	r := wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonPaymentMethodNotOffered)
	if r.Metadata["payment_method"] != "BANK_TRANSFER" {
		t.Fatalf("metadata %v", r.Metadata)
	}
	if b := h.balance(ws, "pia"); b.PendingRequestCredits != 40 {
		t.Fatalf("a refused request is pending: %+v", b)
	}
	if _, err := h.submit(ws, "pia", ledger.MethodCrypto, 60); err != nil {
		t.Fatalf("crypto, offered: %v", err)
	}
	// A request submitted before still replays: its outcome is recorded.
	again, err := h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{
		Workspace: ws, Account: "pia", Amount: 40, PaymentMethod: ledger.MethodBankTransfer, IdempotencyKey: first.Request.IdempotencyKey,
	})
	if err != nil || !again.Replayed || again.Request.ID != first.Request.ID {
		t.Fatalf("replay of a request submitted while offered: %+v %v", again, err)
	}
	// Instant methods are never requests, offered or not.
	_, err = h.submit(ws, "pia", ledger.MethodStripe, 10)
	wantViolation(t, err, "payment_method")

	// An empty list, named by the mask, offers none.
	up, err = h.svc.UpdateSettings(h.ctx, ws, ledger.Settings{}, []string{"payment_methods"})
	if err != nil || !up.PaymentMethodsSet || len(up.PaymentMethods) != 0 || len(up.OfferedPaymentMethods()) != 0 {
		t.Fatalf("offer none: %+v %v", up, err)
	}
	if st := h.settings(ws); !st.PaymentMethodsSet || len(st.OfferedPaymentMethods()) != 0 {
		t.Fatalf("offer none, read back: %+v", st)
	}
	_, err = h.submit(ws, "pia", ledger.MethodCrypto, 60)
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonPaymentMethodNotOffered)

	// Without a mask, an empty list leaves the methods alone (a caller
	// that never heard of them does not clear them); a list sets them.
	if _, err := h.svc.UpdateSettings(h.ctx, ws, ledger.Settings{CreditPaymentsEnabled: true}, nil); err != nil {
		t.Fatal(err)
	}
	if st := h.settings(ws); !st.PaymentMethodsSet || len(st.PaymentMethods) != 0 {
		t.Fatalf("an update without mask and methods changed them: %+v", st)
	}
	if _, err := h.svc.UpdateSettings(h.ctx, ws, ledger.Settings{
		CreditPaymentsEnabled: true, PaymentMethods: []ledger.PaymentMethod{ledger.MethodBankTransfer},
	}, nil); err != nil {
		t.Fatal(err)
	}
	if st := h.settings(ws); !slices.Equal(st.OfferedPaymentMethods(), []ledger.PaymentMethod{ledger.MethodBankTransfer}) {
		t.Fatalf("an update without mask but with methods: %+v", st)
	}
	// "*" replaces everything: no methods means none.
	if _, err := h.svc.UpdateSettings(h.ctx, ws, ledger.Settings{CreditPaymentsEnabled: true}, []string{"*"}); err != nil {
		t.Fatal(err)
	}
	if st := h.settings(ws); !st.PaymentMethodsSet || len(st.PaymentMethods) != 0 {
		t.Fatalf("a full replacement without methods: %+v", st)
	}

	// Bad lists are refused with a field violation and change nothing.
	if _, err := h.svc.UpdateSettings(h.ctx, ws, ledger.Settings{PaymentMethods: all}, []string{"payment_methods"}); err != nil {
		t.Fatal(err)
	}
	before := h.settings(ws)
	for name, ms := range map[string][]ledger.PaymentMethod{
		"unspecified": {ledger.MethodCrypto, ledger.MethodUnspecified},
		"unknown":     {ledger.PaymentMethod(99)},
		"negative":    {ledger.PaymentMethod(-1)},
		"repeated":    {ledger.MethodStripe, ledger.MethodCrypto, ledger.MethodStripe},
	} {
		_, err := h.svc.UpdateSettings(h.ctx, ws, ledger.Settings{PaymentMethods: ms}, []string{"payment_methods"})
		if e := wantReason(t, err, ledger.CodeInvalid, ledger.ReasonInvalidArgument); len(e.Violations) == 0 || e.Violations[0].Field != "settings.payment_methods" {
			t.Fatalf("%s: violations %v", name, e.Violations)
		}
	}
	if after := h.settings(ws); !after.UpdateTime.Equal(before.UpdateTime) || !slices.Equal(after.PaymentMethods, before.PaymentMethods) {
		t.Fatalf("a refused update changed the settings: %+v → %+v", before, after)
	}
	// Another workspace keeps its defaults.
	if st := h.settings("ws2"); st.PaymentMethodsSet || len(st.OfferedPaymentMethods()) != 4 {
		t.Fatalf("another workspace: %+v", st)
	}
}

// testLowBalanceThreshold: stored and returned, 0 (off) by default,
// between 0 and the largest balance.
func testLowBalanceThreshold(t *testing.T, h *harness) {
	const ws = "ws1"
	if st := h.settings(ws); st.LowBalanceThreshold != 0 || st.LowBalance(0) {
		t.Fatalf("defaults: %+v", st)
	}
	up, err := h.svc.UpdateSettings(h.ctx, ws, ledger.Settings{LowBalanceThreshold: 500}, []string{"low_balance_threshold"})
	if err != nil || up.LowBalanceThreshold != 500 || up.CreditPaymentsEnabled {
		t.Fatalf("set: %+v %v", up, err)
	}
	st := h.settings(ws)
	if st.LowBalanceThreshold != 500 || !st.LowBalance(499) || st.LowBalance(500) ||
		!st.LowBalanceCrossed(500, 499) || st.LowBalanceCrossed(499, 10) || st.LowBalanceCrossed(900, 500) {
		t.Fatalf("read back: %+v", st)
	}
	for _, bad := range []int64{-1, ledger.MaxBalance + 1} {
		_, err := h.svc.UpdateSettings(h.ctx, ws, ledger.Settings{LowBalanceThreshold: bad}, []string{"low_balance_threshold"})
		wantViolation(t, err, "settings.low_balance_threshold")
	}
	if st := h.settings(ws); st.LowBalanceThreshold != 500 {
		t.Fatalf("a refused update changed it: %+v", st)
	}
	// Without a mask, 0 leaves it; named, 0 turns it off.
	if _, err := h.svc.UpdateSettings(h.ctx, ws, ledger.Settings{}, nil); err != nil {
		t.Fatal(err)
	}
	if st := h.settings(ws); st.LowBalanceThreshold != 500 {
		t.Fatalf("an update without mask cleared it: %+v", st)
	}
	if up, err := h.svc.UpdateSettings(h.ctx, ws, ledger.Settings{LowBalanceThreshold: ledger.MaxBalance}, nil); err != nil || up.LowBalanceThreshold != ledger.MaxBalance {
		t.Fatalf("the largest threshold: %+v %v", up, err)
	}
	if _, err := h.svc.UpdateSettings(h.ctx, ws, ledger.Settings{}, []string{"low_balance_threshold"}); err != nil {
		t.Fatal(err)
	}
	if st := h.settings(ws); st.LowBalanceThreshold != 0 || st.LowBalance(0) {
		t.Fatalf("turned off: %+v", st)
	}
}

func (h *harness) cancel(in ledger.CancelInput) (ledger.CancelResult, error) {
	if in.Workspace == "" {
		in.Workspace = "ws1"
	}
	if in.CancelledBy == "" {
		in.CancelledBy = "client-subject"
	}
	return h.svc.CancelRequest(h.ctx, in)
}

// testCancelRequest: the client withdraws its own pending request, once:
// CANCELLED, nothing posted, the pending credits and count drop; the same
// key replays; a request that left PENDING is refused; another account's
// request is not found and untouched.
func testCancelRequest(t *testing.T, h *harness) {
	const ws, limit = "ws1", 2
	h.enable(ws, true)
	svc := ledger.NewService(h.store, ledger.WithMaxPendingRequests(limit))
	submit := func(acct string) ledger.CreditRequest {
		t.Helper()
		res, err := svc.SubmitRequest(h.ctx, ledger.SubmitInput{
			Workspace: ws, Account: acct, Amount: 100, PaymentMethod: ledger.MethodBankTransfer, IdempotencyKey: h.key("sub"),
		})
		if err != nil {
			t.Fatalf("submit for %s: %v", acct, err)
		}
		return res.Request
	}
	r1, r2 := submit("quinn"), submit("quinn")
	if _, err := svc.SubmitRequest(h.ctx, ledger.SubmitInput{
		Workspace: ws, Account: "quinn", Amount: 1, PaymentMethod: ledger.MethodCrypto, IdempotencyKey: "over",
	}); ledger.ReasonOf(err) != ledger.ReasonTooManyPendingRequests {
		t.Fatalf("at the cap: %v", err)
	}
	other := submit("rafa")

	// Another account's client: not found, exactly like an unknown id.
	_, err := h.cancel(ledger.CancelInput{RequestID: other.ID, Account: "quinn", IdempotencyKey: "c1"})
	wantReason(t, err, ledger.CodeNotFound, ledger.ReasonNotFound)
	_, err = h.cancel(ledger.CancelInput{RequestID: "01a00000-0000-7000-8000-000000000000", Account: "quinn", IdempotencyKey: "c1"})
	wantReason(t, err, ledger.CodeNotFound, ledger.ReasonNotFound)
	if got, _ := h.svc.GetRequest(h.ctx, ws, other.ID); got.Status != ledger.StatusPending {
		t.Fatalf("another's request after a refused cancel: %+v", got)
	}

	in := ledger.CancelInput{RequestID: r1.ID, Account: "quinn", Reason: "paid by card instead", IdempotencyKey: "c1", CancelledBy: "quinn@portal"}
	res, err := h.cancel(in)
	if err != nil || res.Replayed {
		t.Fatalf("cancel: %+v %v", res, err)
	}
	c := res.Request
	if c.Status != ledger.StatusCancelled || c.DecidedBy != "quinn@portal" || c.DecisionReason != "paid by card instead" ||
		c.DecideTime.IsZero() || c.TransactionID != "" || c.Amount != 100 || c.SubmittedBy != r1.SubmittedBy {
		t.Fatalf("cancelled: %+v", c)
	}
	if got, err := h.svc.GetRequest(h.ctx, ws, r1.ID); err != nil || got.Status != ledger.StatusCancelled ||
		got.DecidedBy != "quinn@portal" || !got.DecideTime.Equal(c.DecideTime) {
		t.Fatalf("read back: %+v %v", got, err)
	}
	if b := h.balance(ws, "quinn"); b.Balance != 0 || b.Version != 0 || b.PendingRequestCredits != 100 {
		t.Fatalf("balance after cancel: %+v", b)
	}
	// The cap counts pending requests only: one more fits now.
	r3 := submit("quinn")

	// The same cancellation again: a replay of the same outcome.
	again, err := h.cancel(in)
	if err != nil || !again.Replayed || again.Request.ID != r1.ID || again.Request.Status != ledger.StatusCancelled ||
		!again.Request.DecideTime.Equal(c.DecideTime) {
		t.Fatalf("replay: %+v %v", again, err)
	}
	changed := in
	changed.Reason = "something else"
	_, err = h.cancel(changed)
	wantReason(t, err, ledger.CodeInvalid, ledger.ReasonIdempotencyKeyReused)
	// Another key: the request is no longer pending.
	_, err = h.cancel(ledger.CancelInput{RequestID: r1.ID, Account: "quinn", IdempotencyKey: "c2"})
	if e := wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonRequestAlreadyDecided); e.Metadata["status"] != "CANCELLED" {
		t.Fatalf("metadata %v", e.Metadata)
	}
	// Nor can the agency decide it now.
	_, err = h.svc.DecideRequest(h.ctx, ledger.DecideInput{Workspace: ws, RequestID: r1.ID, Decision: ledger.DecisionAccept, DecidedBy: "admin", IdempotencyKey: "d1"})
	if e := wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonRequestAlreadyDecided); e.Metadata["status"] != "CANCELLED" {
		t.Fatalf("metadata %v", e.Metadata)
	}

	// A decided request cannot be cancelled.
	if _, err := h.svc.DecideRequest(h.ctx, ledger.DecideInput{Workspace: ws, RequestID: r2.ID, Decision: ledger.DecisionAccept, DecidedBy: "admin", IdempotencyKey: "d2"}); err != nil {
		t.Fatal(err)
	}
	_, err = h.cancel(ledger.CancelInput{RequestID: r2.ID, Account: "quinn", IdempotencyKey: "c3"})
	if e := wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonRequestAlreadyDecided); e.Metadata["status"] != "ACCEPTED" {
		t.Fatalf("metadata %v", e.Metadata)
	}

	// The agency (no account bound) cancels any request, also while credit
	// payments are off.
	h.enable(ws, false)
	res, err = h.cancel(ledger.CancelInput{RequestID: other.ID, IdempotencyKey: "c1", CancelledBy: "admin@agency"})
	if err != nil || res.Request.Status != ledger.StatusCancelled || res.Request.DecidedBy != "admin@agency" {
		t.Fatalf("the agency cancels: %+v %v", res, err)
	}
	h.enable(ws, true)

	// Malformed input changes nothing.
	for name, bad := range map[string]ledger.CancelInput{
		"no key":          {RequestID: r3.ID},
		"no canceller":    {RequestID: r3.ID, IdempotencyKey: "k", CancelledBy: " "},
		"bad request id":  {RequestID: "a:b", IdempotencyKey: "k"},
		"control in text": {RequestID: r3.ID, IdempotencyKey: "k", Reason: "bad\x00reason"},
	} {
		if bad.CancelledBy == "" {
			bad.CancelledBy = "x"
		}
		bad.Workspace = ws
		if _, err := h.svc.CancelRequest(h.ctx, bad); ledger.ErrorOf(err).Code != ledger.CodeInvalid {
			t.Fatalf("%s: %v, want INVALID_ARGUMENT", name, err)
		}
	}

	// Lists filter by the new status.
	page, err := h.svc.ListRequests(h.ctx, ledger.ListRequestsInput{Workspace: ws, Status: ledger.StatusCancelled})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range page.Requests {
		ids = append(ids, r.ID)
	}
	if !slices.Equal(ids, []string{r1.ID, other.ID}) {
		t.Fatalf("cancelled requests %v, want %v", ids, []string{r1.ID, other.ID})
	}
	b := h.balance(ws, "quinn")
	if b.Balance != 100 || b.PendingRequestCredits != 100 {
		t.Fatalf("after accept + cancel: %+v", b)
	}
	if b := h.balance(ws, "rafa"); b.PendingRequestCredits != 0 || b.Version != 0 {
		t.Fatalf("rafa after the agency cancelled: %+v", b)
	}
	h.checkInvariants(ws, "quinn")
}

// testCancelRacesDecide: cancellations and decisions racing for one
// request, through several replicas: exactly one wins, and the ledger
// holds what it says.
func testCancelRacesDecide(t *testing.T, h *harness) {
	const ws = "ws1"
	h.enable(ws, true)
	for round := range 4 {
		acct := fmt.Sprintf("sam-%d", round)
		sub, err := h.submit(ws, acct, ledger.MethodCrypto, 250)
		if err != nil {
			t.Fatal(err)
		}
		const n = 16
		svcs := []*ledger.Service{h.svc, h.service(0)}
		var wg sync.WaitGroup
		var wins, refused atomic.Int32
		var winner atomic.Value
		errs := make(chan error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				svc := svcs[i%len(svcs)]
				<-start
				var got ledger.CreditRequest
				var err error
				switch i % 4 {
				case 0, 1:
					var res ledger.CancelResult
					res, err = svc.CancelRequest(h.ctx, ledger.CancelInput{
						Workspace: ws, RequestID: sub.Request.ID, Account: acct, CancelledBy: acct, IdempotencyKey: fmt.Sprintf("cancel-%d", i),
					})
					got = res.Request
				default:
					d := ledger.DecisionAccept
					if i%4 == 3 {
						d = ledger.DecisionReject
					}
					var res ledger.DecideResult
					res, err = svc.DecideRequest(h.ctx, ledger.DecideInput{
						Workspace: ws, RequestID: sub.Request.ID, Decision: d, DecidedBy: "admin", IdempotencyKey: fmt.Sprintf("decide-%d", i),
					})
					got = res.Request
				}
				switch {
				case err == nil:
					wins.Add(1)
					winner.Store(got.Status)
				case ledger.ReasonOf(err) == ledger.ReasonRequestAlreadyDecided:
					refused.Add(1)
				default:
					errs <- err
				}
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if wins.Load() != 1 || refused.Load() != n-1 {
			t.Fatalf("round %d: %d won, %d refused; want exactly 1 and %d", round, wins.Load(), refused.Load(), n-1)
		}
		got, err := h.svc.GetRequest(h.ctx, ws, sub.Request.ID)
		if err != nil || got.Status != winner.Load().(ledger.RequestStatus) {
			t.Fatalf("stored %+v (%v), the winner was told %v", got, err, winner.Load())
		}
		hist := h.history(ws, acct)
		if (got.Status == ledger.StatusAccepted) != (len(hist) == 1) || len(hist) > 1 {
			t.Fatalf("request %s with %d entries", got.Status, len(hist))
		}
		if b := h.balance(ws, acct); b.PendingRequestCredits != 0 {
			t.Fatalf("pending credits after the race: %+v", b)
		}
	}
}
