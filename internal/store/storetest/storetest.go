// Package storetest is the conformance suite every ledger.Store must pass.
// It drives the real ledger.Service over the store, so each test states a
// rule of the product as a user would notice it. Run it from a store's tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(tb testing.TB) ledger.Store { return newStore(tb) })
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/ledger"
)

// Factory returns a fresh, empty, migrated store; the factory registers its
// cleanup on tb.
type Factory func(tb testing.TB) ledger.Store

// Run runs the whole suite against stores made by newStore. The stores must
// also implement ledger.Auditor: after each test, ledger.Verify checks
// everything the test left behind.
func Run(t *testing.T, newStore Factory) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"CreditDebitBalanceHistory", testCreditDebitBalanceHistory},
		{"UnknownAccountReadsZero", testUnknownAccountReadsZero},
		{"IdempotentReplay", testIdempotentReplay},
		{"IdempotencyKeyReused", testIdempotencyKeyReused},
		{"IdempotencyKeysScoped", testIdempotencyKeysScoped},
		{"DistinctApprover", testDistinctApprover},
		{"InsufficientCreditsNotRemembered", testInsufficientCredits},
		{"ExpectedVersion", testExpectedVersion},
		{"BalanceLimit", testBalanceLimit},
		{"AmountBounds", testAmountBounds},
		{"ConcurrentPostingsOneAccount", testConcurrentPostings},
		{"ConcurrentSameKey", testConcurrentSameKey},
		{"PaginationWhileWriting", testPaginationWhileWriting},
		{"PageTokenTampering", testPageTokenTampering},
		{"HistoryFilters", testHistoryFilters},
		{"WorkspaceIsolation", testWorkspaceIsolation},
		{"DisabledWorkspaceMatrix", testDisabledMatrix},
		{"RequestAcceptRejectLifecycle", testRequestLifecycle},
		{"RequestDecideReplayAndReuse", testDecideReplay},
		{"ConcurrentDecisions", testConcurrentDecisions},
		{"RequestQueueOrderAndFilters", testRequestQueue},
		{"PackagesLifecycle", testPackages},
		{"ArchivedPackageRefused", testArchivedPackage},
		{"ConcurrentPackageUpdates", testConcurrentPackageUpdates},
		{"RatesQuotesAndCheck", testRatesQuotesCheck},
		{"ListAccounts", testListAccounts},
		{"SettingsDefaultsAndMask", testSettings},
		{"UnsafeTextRefusedAlike", testUnsafeText},
		{"PendingCreditsSaturate", testPendingSaturate},
		{"PendingRequestLimit", testPendingRequestLimit},
		{"ConcurrentSubmitsCapped", testConcurrentSubmitsCapped},
		{"HoldLifecycle", testHoldLifecycle},
		{"HoldRefusals", testHoldRefusals},
		{"HoldExpiry", testHoldExpiry},
		{"HoldCaptureVoidExpiryRace", testHoldRace},
		{"Reversals", testReversals},
		{"ReversalsRaceForTheLastCredits", testReversalRace},
		{"CreditExpiry", testCreditExpiry},
		{"ExpiryWaitsForHolds", testExpiryWaitsForHolds},
		{"DebitRacesExpiry", testDebitRacesExpiry},
		{"PackageValidity", testPackageValidity},
		{"StatementAndExport", testStatementAndExport},
		{"EventsFollowChanges", testEventsFollowChanges},
		{"EventsPagedWithinABatch", testEventsPagedWithinABatch},
		{"EventsExpiryAndVoid", testEventsExpiryAndVoid},
		{"EventsConcurrentGapFree", testEventsConcurrentGapFree},
		{"EventsOfControls", testEventsOfControls},
		{"WebhookEndpoints", testWebhookEndpoints},
		{"WebhookLeases", testWebhookLeases},
		{"PaymentMethodsOffered", testPaymentMethods},
		{"LowBalanceThreshold", testLowBalanceThreshold},
		{"CancelRequest", testCancelRequest},
		{"CancelRacesDecide", testCancelRacesDecide},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			store := newStore(t)
			tc.fn(t, newHarness(t, store))
			if !t.Failed() {
				verify(t, store)
			}
		})
	}
}

// verify runs the ledger's own consistency check over everything the test
// left behind: the chain of every account, every idempotency record and
// every decided request.
func verify(t *testing.T, store ledger.Store) {
	t.Helper()
	rep, err := ledger.Verify(context.Background(), store)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !rep.OK() {
		t.Fatalf("Verify found %d problems: %v", len(rep.Problems), rep.Problems)
	}
	if rep.Workspaces == 0 {
		t.Fatalf("Verify saw no workspace: %+v", rep)
	}
}

// harness bundles a service over a store with helpers for the tests.
type harness struct {
	t     *testing.T
	store ledger.Store
	svc   *ledger.Service
	ctx   context.Context
	seq   atomic.Int64
	// skew moves the service's clock ahead of the real one (advance):
	// expiry is tested without sleeping.
	skew atomic.Int64
}

func newHarness(t *testing.T, store ledger.Store) *harness {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	h := &harness{t: t, store: store, ctx: ctx}
	h.svc = h.service(0)
	return h
}

// now is the harness's clock: the real time, moved by advance.
func (h *harness) now() time.Time { return time.Now().Add(time.Duration(h.skew.Load())) }

// advance moves the harness's clock (and every service of it) ahead by d.
func (h *harness) advance(d time.Duration) { h.skew.Add(int64(d)) }

// service returns another service over the same store (another replica),
// whose clock runs ahead of the harness's by lead.
func (h *harness) service(lead time.Duration) *ledger.Service {
	return ledger.NewService(h.store, ledger.WithPageTokenKey([]byte("conformance-key")),
		ledger.WithClock(func() time.Time { return h.now().Add(lead) }))
}

func (h *harness) key(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, h.seq.Add(1))
}

func (h *harness) enable(ws string, on bool) {
	h.t.Helper()
	if _, err := h.svc.UpdateSettings(h.ctx, ws, ledger.Settings{CreditPaymentsEnabled: on}, []string{"credit_payments_enabled"}); err != nil {
		h.t.Fatalf("UpdateSettings(%s, %v): %v", ws, on, err)
	}
}

func (h *harness) credit(ws, acct string, amount int64) ledger.PostResult {
	h.t.Helper()
	res, err := h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: ws, Account: acct, Amount: amount, IdempotencyKey: h.key("c")})
	if err != nil {
		h.t.Fatalf("Credit(%s/%s, %d): %v", ws, acct, amount, err)
	}
	return res
}

func (h *harness) debit(ws, acct string, amount int64) ledger.PostResult {
	h.t.Helper()
	res, err := h.svc.Debit(h.ctx, ledger.DebitInput{Workspace: ws, Account: acct, Amount: amount, IdempotencyKey: h.key("d")})
	if err != nil {
		h.t.Fatalf("Debit(%s/%s, %d): %v", ws, acct, amount, err)
	}
	return res
}

func (h *harness) balance(ws, acct string) ledger.Balance {
	h.t.Helper()
	b, err := h.svc.GetBalance(h.ctx, ws, acct)
	if err != nil {
		h.t.Fatalf("GetBalance(%s/%s): %v", ws, acct, err)
	}
	return b
}

// history returns every entry of the account, newest first, walking all pages.
func (h *harness) history(ws, acct string) []ledger.Transaction {
	h.t.Helper()
	var all []ledger.Transaction
	token := ""
	for {
		page, err := h.svc.ListTransactions(h.ctx, ledger.ListTransactionsInput{Workspace: ws, Account: acct, PageSize: 500, PageToken: token})
		if err != nil {
			h.t.Fatalf("ListTransactions: %v", err)
		}
		all = append(all, page.Transactions...)
		if page.NextPageToken == "" {
			return all
		}
		token = page.NextPageToken
	}
}

// checkInvariants verifies spec §2 for one account: versions 1..n without
// gaps, the balance_after chain, a never-negative balance, and the account's
// balance and version equal to the last entry's.
func (h *harness) checkInvariants(ws, acct string) []ledger.Transaction {
	h.t.Helper()
	hist := h.history(ws, acct)
	var bal int64
	for i := len(hist) - 1; i >= 0; i-- {
		tr := hist[i]
		want := int64(len(hist) - i)
		if tr.AccountVersion != want {
			h.t.Fatalf("entry %s has version %d, want %d (gap or disorder)", tr.ID, tr.AccountVersion, want)
		}
		if tr.Amount <= 0 {
			h.t.Fatalf("entry %s has amount %d", tr.ID, tr.Amount)
		}
		switch tr.Type {
		case ledger.TypeIn:
			bal += tr.Amount
		case ledger.TypeOut:
			bal -= tr.Amount
		default:
			h.t.Fatalf("entry %s has type %v", tr.ID, tr.Type)
		}
		if bal < 0 {
			h.t.Fatalf("balance negative (%d) after version %d", bal, tr.AccountVersion)
		}
		if tr.BalanceAfter != bal {
			h.t.Fatalf("entry v%d balance_after = %d, replay gives %d", tr.AccountVersion, tr.BalanceAfter, bal)
		}
		if tr.Workspace != ws || tr.Account != acct {
			h.t.Fatalf("entry %s belongs to %s/%s, listed under %s/%s", tr.ID, tr.Workspace, tr.Account, ws, acct)
		}
	}
	b := h.balance(ws, acct)
	if b.Balance != bal || b.Version != int64(len(hist)) {
		h.t.Fatalf("account says balance %d version %d; history replays to %d at version %d", b.Balance, b.Version, bal, len(hist))
	}
	return hist
}

// refusal is what a test may inspect of an expected error.
type refusal struct {
	Metadata   map[string]string
	Violations []ledger.FieldViolation
}

// wantReason fails unless err carries code and reason.
func wantReason(t *testing.T, err error, code ledger.Code, reason string) refusal {
	t.Helper()
	if err == nil {
		t.Fatalf("got success, want %s", reason)
	}
	var e *ledger.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v (%T), want *ledger.Error %s", err, err, reason)
	}
	if e.Reason != reason || e.Code != code {
		t.Fatalf("got %v/%s (%v), want %v/%s", e.Code, e.Reason, err, code, reason)
	}
	return refusal{Metadata: e.Metadata, Violations: e.Violations}
}

func i64(v int64) *int64 { return &v }

// ---------------------------------------------------------------------------

func testCreditDebitBalanceHistory(t *testing.T, h *harness) {
	h.enable("ws1", true)
	c := h.svc
	r1, err := c.Credit(h.ctx, ledger.CreditInput{
		Workspace: "ws1", Account: "alice", Amount: 100, Reference: "stripe:pi_1",
		IdempotencyKey: "pi_1", Metadata: map[string]string{"order": "42"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Balance != 100 || r1.Version != 1 || r1.Replayed {
		t.Fatalf("first credit: %+v", r1)
	}
	tr := r1.Transaction
	if tr.Type != ledger.TypeIn || tr.Kind != ledger.KindPurchase || tr.Amount != 100 || tr.BalanceAfter != 100 ||
		tr.AccountVersion != 1 || tr.Reference != "stripe:pi_1" || tr.IdempotencyKey != "pi_1" || tr.Metadata["order"] != "42" ||
		tr.ID == "" || tr.CreateTime.IsZero() {
		t.Fatalf("credit transaction: %+v", tr)
	}
	r2, err := c.Debit(h.ctx, ledger.DebitInput{
		Workspace: "ws1", Account: "alice", Amount: 30, Kind: ledger.KindInvoicePayment,
		Reference: "invoice:INV-1042", IdempotencyKey: "inv-1042",
	})
	if err != nil {
		t.Fatal(err)
	}
	if r2.Balance != 70 || r2.Version != 2 || r2.Transaction.Type != ledger.TypeOut || r2.Transaction.Kind != ledger.KindInvoicePayment {
		t.Fatalf("debit: %+v", r2)
	}
	r3 := h.debit("ws1", "alice", 70)
	if r3.Balance != 0 || r3.Transaction.Kind != ledger.KindServicePurchase {
		t.Fatalf("debit to zero: %+v", r3)
	}
	b := h.balance("ws1", "alice")
	if b.Balance != 0 || b.Version != 3 || !b.CreditPaymentsEnabled || b.UpdateTime.IsZero() {
		t.Fatalf("balance: %+v", b)
	}
	hist := h.checkInvariants("ws1", "alice")
	if len(hist) != 3 || hist[0].ID != r3.Transaction.ID || hist[2].ID != tr.ID {
		t.Fatalf("history is not newest first: %+v", hist)
	}
	if !hist[2].CreateTime.Equal(tr.CreateTime) || hist[2].Metadata["order"] != "42" || hist[1].Reference != "invoice:INV-1042" {
		t.Fatalf("history does not read back what was posted: %+v vs %+v", hist[2], tr)
	}
}

func testUnknownAccountReadsZero(t *testing.T, h *harness) {
	b := h.balance("ws1", "nobody")
	if b.Balance != 0 || b.Version != 0 || b.CreditPaymentsEnabled || b.PendingRequestCredits != 0 || !b.UpdateTime.IsZero() {
		t.Fatalf("unknown account: %+v", b)
	}
	if hist := h.history("ws1", "nobody"); len(hist) != 0 {
		t.Fatalf("unknown account has history %v", hist)
	}
	// A refused debit on an unknown account leaves no trace.
	h.enable("ws1", true)
	_, err := h.svc.Debit(h.ctx, ledger.DebitInput{Workspace: "ws1", Account: "nobody", Amount: 1, IdempotencyKey: "k"})
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonInsufficientCredits)
	page, err := h.svc.ListAccounts(h.ctx, ledger.ListAccountsInput{Workspace: "ws1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range page.Accounts {
		if a.ID == "nobody" {
			t.Fatalf("refused debit created account %+v", a)
		}
	}
}

func testIdempotentReplay(t *testing.T, h *harness) {
	h.enable("ws1", true)
	in := ledger.CreditInput{
		Workspace: "ws1", Account: "bob", Amount: 500, Reference: "stripe:pi_X", IdempotencyKey: "pi_X",
		Metadata: map[string]string{"a": "1", "b": "2"},
	}
	first, err := h.svc.Credit(h.ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	h.debit("ws1", "bob", 120) // the account moves on
	for i := 0; i < 3; i++ {
		again, err := h.svc.Credit(h.ctx, in)
		if err != nil {
			t.Fatalf("replay %d: %v", i, err)
		}
		if !again.Replayed {
			t.Fatalf("replay %d not marked replayed", i)
		}
		if again.Transaction.ID != first.Transaction.ID || again.Balance != 500 || again.Version != 1 ||
			again.Transaction.BalanceAfter != 500 || !again.Transaction.CreateTime.Equal(first.Transaction.CreateTime) ||
			again.Transaction.Metadata["b"] != "2" || again.Transaction.Reference != "stripe:pi_X" {
			t.Fatalf("replay %d differs from the original:\n got %+v\nwant %+v", i, again, first)
		}
	}
	// Debit replays too.
	din := ledger.DebitInput{Workspace: "ws1", Account: "bob", Amount: 80, IdempotencyKey: "order-7"}
	d1, err := h.svc.Debit(h.ctx, din)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := h.svc.Debit(h.ctx, din)
	if err != nil || !d2.Replayed || d2.Transaction.ID != d1.Transaction.ID || d2.Balance != d1.Balance {
		t.Fatalf("debit replay: %+v, %v", d2, err)
	}
	if b := h.balance("ws1", "bob"); b.Balance != 300 || b.Version != 3 {
		t.Fatalf("replays changed the balance: %+v", b)
	}
	h.checkInvariants("ws1", "bob")
}

func testIdempotencyKeyReused(t *testing.T, h *harness) {
	h.enable("ws1", true)
	base := ledger.CreditInput{Workspace: "ws1", Account: "carol", Amount: 10, Reference: "r", IdempotencyKey: "dup"}
	if _, err := h.svc.Credit(h.ctx, base); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"different amount", func() error { in := base; in.Amount = 11; _, err := h.svc.Credit(h.ctx, in); return err }},
		{"different reference", func() error { in := base; in.Reference = "other"; _, err := h.svc.Credit(h.ctx, in); return err }},
		{"different kind", func() error { in := base; in.Kind = ledger.KindRefund; _, err := h.svc.Credit(h.ctx, in); return err }},
		{"different metadata", func() error {
			in := base
			in.Metadata = map[string]string{"x": "y"}
			_, err := h.svc.Credit(h.ctx, in)
			return err
		}},
		{"expected version added", func() error { in := base; in.ExpectedVersion = i64(0); _, err := h.svc.Credit(h.ctx, in); return err }},
		{"debit with the credit's key", func() error {
			_, err := h.svc.Debit(h.ctx, ledger.DebitInput{Workspace: "ws1", Account: "carol", Amount: 10, Reference: "r", IdempotencyKey: "dup"})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantReason(t, tc.call(), ledger.CodeInvalid, ledger.ReasonIdempotencyKeyReused)
		})
	}
	if b := h.balance("ws1", "carol"); b.Balance != 10 || b.Version != 1 {
		t.Fatalf("a reused key posted: %+v", b)
	}
	// Keys are scoped to the workspace: the same key elsewhere is a new request.
	if _, err := h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: "ws2", Account: "carol", Amount: 99, IdempotencyKey: "dup"}); err != nil {
		t.Fatalf("same key in another workspace: %v", err)
	}
}

// testIdempotencyKeysScoped: a key is scoped to its account (spec §11),
// and a client's requests apart from the postings, and a decision's key to
// its request: one principal can neither squat another's key nor learn
// whether it was used.
func testIdempotencyKeysScoped(t *testing.T, h *harness) {
	h.enable("ws1", true)
	// Another client's account: the same key is another request, posted
	// and replayed on its own.
	carol, err := h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: "ws1", Account: "carol", Amount: 10, IdempotencyKey: "stripe:pi_1"})
	if err != nil {
		t.Fatal(err)
	}
	dave, err := h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: "ws1", Account: "dave", Amount: 20, IdempotencyKey: "stripe:pi_1"})
	if err != nil || dave.Replayed || dave.Transaction.ID == carol.Transaction.ID {
		t.Fatalf("the same key on another account: %+v, %v", dave, err)
	}
	if again, err := h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: "ws1", Account: "dave", Amount: 20, IdempotencyKey: "stripe:pi_1"}); err != nil || !again.Replayed || again.Transaction.ID != dave.Transaction.ID {
		t.Fatalf("replay on the second account: %+v, %v", again, err)
	}
	// A client claiming its checkout's key with a request does not stop
	// the purchase from posting, nor learn anything from a refusal.
	sub, err := h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{
		Workspace: "ws1", Account: "erin", Amount: 5, PaymentMethod: ledger.MethodBankTransfer, IdempotencyKey: "stripe:pi_2",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: "ws1", Account: "erin", Amount: 100, IdempotencyKey: "stripe:pi_2"}); err != nil {
		t.Fatalf("a posting with a key a request used first: %v", err)
	}
	// A decision's key is scoped to its request: a key pre-claimed on
	// another request does not block the agency's decision.
	other, err := h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{
		Workspace: "ws1", Account: "erin", Amount: 7, PaymentMethod: ledger.MethodCrypto, IdempotencyKey: "s-other",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.DecideRequest(h.ctx, ledger.DecideInput{
		Workspace: "ws1", RequestID: other.Request.ID, Decision: ledger.DecisionReject, DecidedBy: "admin", IdempotencyKey: "ledgerctl:reject",
	}); err != nil {
		t.Fatal(err)
	}
	dec, err := h.svc.DecideRequest(h.ctx, ledger.DecideInput{
		Workspace: "ws1", RequestID: sub.Request.ID, Decision: ledger.DecisionAccept, DecidedBy: "admin", IdempotencyKey: "ledgerctl:reject",
	})
	if err != nil || dec.Replayed || dec.Request.Status != ledger.StatusAccepted {
		t.Fatalf("a decision with a key used on another request: %+v, %v", dec, err)
	}
	if b := h.balance("ws1", "erin"); b.Balance != 105 {
		t.Fatalf("erin's balance = %d, want 105", b.Balance)
	}
	h.checkInvariants("ws1", "carol")
	h.checkInvariants("ws1", "dave")
	h.checkInvariants("ws1", "erin")
}

// testDistinctApprover: with require_distinct_approver, whoever submitted
// a request cannot decide it; someone else can. Without it, anyone can.
func testDistinctApprover(t *testing.T, h *harness) {
	h.enable("ws1", true)
	submit := func(key, by string) ledger.CreditRequest {
		t.Helper()
		r, err := h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{
			Workspace: "ws1", Account: "fay", Amount: 10, PaymentMethod: ledger.MethodBankTransfer, IdempotencyKey: key, SubmittedBy: by,
		})
		if err != nil {
			t.Fatal(err)
		}
		if r.Request.SubmittedBy != by {
			t.Fatalf("submitted_by = %q, want %q", r.Request.SubmittedBy, by)
		}
		return r.Request
	}
	decide := func(r ledger.CreditRequest, by, key string) (ledger.DecideResult, error) {
		return h.svc.DecideRequest(h.ctx, ledger.DecideInput{
			Workspace: "ws1", RequestID: r.ID, Decision: ledger.DecisionAccept, DecidedBy: by, IdempotencyKey: key,
		})
	}
	// Off (the default): the submitter may decide alone.
	r1 := submit("s1", "admin-ann")
	if _, err := decide(r1, "admin-ann", "d1"); err != nil {
		t.Fatalf("self-approval with the setting off: %v", err)
	}
	st, err := h.svc.UpdateSettings(h.ctx, "ws1", ledger.Settings{RequireDistinctApprover: true}, []string{"require_distinct_approver"})
	if err != nil || !st.RequireDistinctApprover || !st.CreditPaymentsEnabled {
		t.Fatalf("turning the setting on: %+v, %v", st, err)
	}
	if got, _ := h.svc.GetSettings(h.ctx, "ws1"); !got.RequireDistinctApprover {
		t.Fatalf("the setting did not persist: %+v", got)
	}
	r2 := submit("s2", "admin-ann")
	_, err = decide(r2, "admin-ann", "d2")
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonApproverIsSubmitter)
	if got, err := h.svc.GetRequest(h.ctx, "ws1", r2.ID); err != nil || got.Status != ledger.StatusPending {
		t.Fatalf("refused decision changed the request: %+v, %v", got, err)
	}
	res, err := decide(r2, "admin-bob", "d2")
	if err != nil || res.Request.DecidedBy != "admin-bob" || res.Request.SubmittedBy != "admin-ann" {
		t.Fatalf("a second admin deciding: %+v, %v", res, err)
	}
	if b := h.balance("ws1", "fay"); b.Balance != 20 {
		t.Fatalf("balance = %d, want 20", b.Balance)
	}
	h.checkInvariants("ws1", "fay")
}

func testInsufficientCredits(t *testing.T, h *harness) {
	h.enable("ws1", true)
	h.credit("ws1", "erin", 50)
	in := ledger.DebitInput{
		Workspace: "ws1", Account: "erin", Amount: 80, Kind: ledger.KindInvoicePayment,
		Reference: "invoice:INV-9", IdempotencyKey: "inv-9",
	}
	_, err := h.svc.Debit(h.ctx, in)
	e := wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonInsufficientCredits)
	if e.Metadata["balance"] != "50" || e.Metadata["required"] != "80" {
		t.Fatalf("metadata: %v", e.Metadata)
	}
	if b := h.balance("ws1", "erin"); b.Balance != 50 || b.Version != 1 {
		t.Fatalf("refused debit posted: %+v", b)
	}
	// The refusal is not remembered: after a top-up the same key posts.
	h.credit("ws1", "erin", 40)
	res, err := h.svc.Debit(h.ctx, in)
	if err != nil {
		t.Fatalf("retry after top-up: %v", err)
	}
	if res.Replayed || res.Balance != 10 || res.Version != 3 {
		t.Fatalf("retry after top-up: %+v", res)
	}
	h.checkInvariants("ws1", "erin")
}

func testExpectedVersion(t *testing.T, h *harness) {
	h.enable("ws1", true)
	h.credit("ws1", "finn", 100)
	h.credit("ws1", "finn", 100)
	_, err := h.svc.Debit(h.ctx, ledger.DebitInput{Workspace: "ws1", Account: "finn", Amount: 10, IdempotencyKey: "ev1", ExpectedVersion: i64(1)})
	e := wantReason(t, err, ledger.CodeAborted, ledger.ReasonVersionMismatch)
	if e.Metadata["current_version"] != "2" {
		t.Fatalf("metadata: %v", e.Metadata)
	}
	_, err = h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: "ws1", Account: "finn", Amount: 10, IdempotencyKey: "ev2", ExpectedVersion: i64(5)})
	wantReason(t, err, ledger.CodeAborted, ledger.ReasonVersionMismatch)
	if b := h.balance("ws1", "finn"); b.Balance != 200 || b.Version != 2 {
		t.Fatalf("mismatch posted: %+v", b)
	}
	// A version mismatch is a business refusal and is not remembered: the
	// client re-reads and retries with the same key and the right version.
	res, err := h.svc.Debit(h.ctx, ledger.DebitInput{Workspace: "ws1", Account: "finn", Amount: 10, IdempotencyKey: "ev1", ExpectedVersion: i64(2)})
	if err != nil || res.Replayed || res.Version != 3 || res.Balance != 190 {
		t.Fatalf("retry of a refused key with the matching expected_version: %+v %v", res, err)
	}
	// The posted request is remembered now: the same key with another
	// expected_version is a different request.
	_, err = h.svc.Debit(h.ctx, ledger.DebitInput{Workspace: "ws1", Account: "finn", Amount: 10, IdempotencyKey: "ev1", ExpectedVersion: i64(3)})
	wantReason(t, err, ledger.CodeInvalid, ledger.ReasonIdempotencyKeyReused)
	_, err = h.svc.Debit(h.ctx, ledger.DebitInput{Workspace: "ws1", Account: "finn", Amount: 10, IdempotencyKey: "ev3", ExpectedVersion: i64(2)})
	if e := wantReason(t, err, ledger.CodeAborted, ledger.ReasonVersionMismatch); e.Metadata["current_version"] != "3" {
		t.Fatalf("stale expected_version: metadata %v", e.Metadata)
	}
	// expected_version 0 on a new account is the "create only if new" guard.
	if _, err := h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: "ws1", Account: "gina", Amount: 1, IdempotencyKey: "ev4", ExpectedVersion: i64(0)}); err != nil {
		t.Fatal(err)
	}
	_, err = h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: "ws1", Account: "gina", Amount: 1, IdempotencyKey: "ev5", ExpectedVersion: i64(0)})
	wantReason(t, err, ledger.CodeAborted, ledger.ReasonVersionMismatch)
}

func testConcurrentPostings(t *testing.T, h *harness) {
	h.enable("ws1", true)
	const workers, perWorker = 32, 100
	var acked atomic.Int64 // the balance implied by acknowledged operations
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				key := fmt.Sprintf("w%d-op%d", w, i)
				amount := int64(1 + (w*7+i*13)%20)
				if (w+i)%3 == 0 {
					res, err := h.svc.Debit(h.ctx, ledger.DebitInput{Workspace: "ws1", Account: "hot", Amount: amount, IdempotencyKey: key})
					switch {
					case err == nil:
						acked.Add(-amount)
						if res.Balance < 0 {
							errs <- fmt.Errorf("negative balance %d acknowledged", res.Balance)
							return
						}
					case ledger.ReasonOf(err) == ledger.ReasonInsufficientCredits:
					default:
						errs <- fmt.Errorf("debit %s: %w", key, err)
						return
					}
					continue
				}
				if _, err := h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: "ws1", Account: "hot", Amount: amount, IdempotencyKey: key}); err != nil {
					errs <- fmt.Errorf("credit %s: %w", key, err)
					return
				}
				acked.Add(amount)
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	hist := h.checkInvariants("ws1", "hot")
	b := h.balance("ws1", "hot")
	if b.Balance != acked.Load() {
		t.Fatalf("final balance %d, acknowledged operations sum to %d", b.Balance, acked.Load())
	}
	t.Logf("%d entries posted by %d workers", len(hist), workers)
}

func testConcurrentSameKey(t *testing.T, h *harness) {
	const n = 16
	var wg sync.WaitGroup
	ids := make([]string, n)
	errs := make([]error, n)
	var replays atomic.Int32
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			for {
				res, err := h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: "ws1", Account: "ivy", Amount: 25, IdempotencyKey: "stripe:pi_same"})
				if ledger.ReasonOf(err) == ledger.ReasonIdempotencyKeyInUse {
					continue // allowed by the contract: retry with the same key
				}
				errs[i] = err
				ids[i] = res.Transaction.ID
				if res.Replayed {
					replays.Add(1)
				}
				return
			}
		}(i)
	}
	close(start)
	wg.Wait()
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("callers got different transactions: %v", ids)
		}
	}
	if replays.Load() != n-1 {
		t.Fatalf("%d replays, want %d", replays.Load(), n-1)
	}
	if hist := h.checkInvariants("ws1", "ivy"); len(hist) != 1 || hist[0].Amount != 25 {
		t.Fatalf("one key posted %d entries", len(hist))
	}
}

func testPaginationWhileWriting(t *testing.T, h *harness) {
	const n = 1000
	for i := 0; i < n; i++ {
		h.credit("ws1", "pager", int64(i%9+1))
	}
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				writerDone <- nil
				return
			default:
			}
			if _, err := h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: "ws1", Account: "pager", Amount: 1, IdempotencyKey: fmt.Sprintf("late-%d", i)}); err != nil {
				writerDone <- err
				return
			}
		}
	}()
	seen := map[int64]int{}
	token := ""
	var prev int64 = -1
	pages := 0
	for {
		page, err := h.svc.ListTransactions(h.ctx, ledger.ListTransactionsInput{Workspace: "ws1", Account: "pager", PageSize: 37, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(page.Transactions) > 37 {
			t.Fatalf("page of %d entries, asked for 37", len(page.Transactions))
		}
		for _, tr := range page.Transactions {
			if prev != -1 && tr.AccountVersion >= prev {
				t.Fatalf("version %d after %d: not strictly newest first", tr.AccountVersion, prev)
			}
			prev = tr.AccountVersion
			seen[tr.AccountVersion]++
		}
		if page.NextPageToken == "" {
			break
		}
		token = page.NextPageToken
	}
	close(stop)
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	for v := int64(1); v <= n; v++ {
		if seen[v] != 1 {
			t.Fatalf("entry v%d seen %d times", v, seen[v])
		}
	}
	t.Logf("%d pages, %d entries seen (%d written meanwhile)", pages, len(seen), len(seen)-n)
	// Page sizes: 0 means 50, above 500 is coerced to 500, negative is invalid.
	for _, tc := range []struct {
		size int32
		want int
	}{{0, 50}, {7, 7}, {500, 500}, {100000, 500}} {
		page, err := h.svc.ListTransactions(h.ctx, ledger.ListTransactionsInput{Workspace: "ws1", Account: "pager", PageSize: tc.size})
		if err != nil || len(page.Transactions) != tc.want {
			t.Fatalf("page_size %d: %d entries (%v), want %d", tc.size, len(page.Transactions), err, tc.want)
		}
	}
	_, err := h.svc.ListTransactions(h.ctx, ledger.ListTransactionsInput{Workspace: "ws1", Account: "pager", PageSize: -1})
	wantReason(t, err, ledger.CodeInvalid, ledger.ReasonInvalidArgument)
}

func testPageTokenTampering(t *testing.T, h *harness) {
	for i := 0; i < 5; i++ {
		h.credit("ws1", "tok", 1)
		h.credit("ws2", "tok", 1)
	}
	page, err := h.svc.ListTransactions(h.ctx, ledger.ListTransactionsInput{Workspace: "ws1", Account: "tok", PageSize: 2})
	if err != nil || page.NextPageToken == "" {
		t.Fatalf("first page: %v %q", err, page.NextPageToken)
	}
	tok := page.NextPageToken
	flip := []byte(tok)
	flip[len(flip)/2] ^= 1
	for _, tc := range []struct {
		name string
		in   ledger.ListTransactionsInput
	}{
		{"forged", ledger.ListTransactionsInput{Workspace: "ws1", Account: "tok", PageToken: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},
		{"garbage", ledger.ListTransactionsInput{Workspace: "ws1", Account: "tok", PageToken: "not a token!"}},
		{"bit flipped", ledger.ListTransactionsInput{Workspace: "ws1", Account: "tok", PageToken: string(flip)}},
		{"other account", ledger.ListTransactionsInput{Workspace: "ws1", Account: "other", PageToken: tok}},
		{"other workspace", ledger.ListTransactionsInput{Workspace: "ws2", Account: "tok", PageToken: tok}},
		{"other filter", ledger.ListTransactionsInput{Workspace: "ws1", Account: "tok", Type: ledger.TypeIn, PageToken: tok}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.svc.ListTransactions(h.ctx, tc.in)
			e := wantReason(t, err, ledger.CodeInvalid, ledger.ReasonInvalidArgument)
			if len(e.Violations) == 0 || e.Violations[0].Field != "page_token" {
				t.Fatalf("violations: %+v", e.Violations)
			}
		})
	}
	// The genuine token still works, with a different page size too.
	next, err := h.svc.ListTransactions(h.ctx, ledger.ListTransactionsInput{Workspace: "ws1", Account: "tok", PageSize: 10, PageToken: tok})
	if err != nil || len(next.Transactions) != 3 || next.Transactions[0].AccountVersion != 3 {
		t.Fatalf("genuine token: %+v %v", next, err)
	}
}

func testHistoryFilters(t *testing.T, h *harness) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	svc := ledger.NewService(h.store, ledger.WithClock(clock))
	ctx := h.ctx
	if _, err := svc.UpdateSettings(ctx, "ws1", ledger.Settings{CreditPaymentsEnabled: true}, nil); err != nil {
		t.Fatal(err)
	}
	post := func(in bool, kind ledger.Kind, amount int64, key string) {
		t.Helper()
		var err error
		if in {
			_, err = svc.Credit(ctx, ledger.CreditInput{Workspace: "ws1", Account: "f", Amount: amount, Kind: kind, IdempotencyKey: key})
		} else {
			_, err = svc.Debit(ctx, ledger.DebitInput{Workspace: "ws1", Account: "f", Amount: amount, Kind: kind, IdempotencyKey: key})
		}
		if err != nil {
			t.Fatal(err)
		}
		advance(time.Hour)
	}
	post(true, ledger.KindPurchase, 100, "k1")        // 12:00 v1
	post(false, ledger.KindServicePurchase, 10, "k2") // 13:00 v2
	post(true, ledger.KindRefund, 5, "k3")            // 14:00 v3
	post(false, ledger.KindInvoicePayment, 20, "k4")  // 15:00 v4
	post(false, ledger.KindServicePurchase, 30, "k5") // 16:00 v5
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	versions := func(in ledger.ListTransactionsInput) []int64 {
		t.Helper()
		in.Workspace, in.Account = "ws1", "f"
		page, err := svc.ListTransactions(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, tr := range page.Transactions {
			out = append(out, tr.AccountVersion)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		in   ledger.ListTransactionsInput
		want []int64
	}{
		{"all", ledger.ListTransactionsInput{}, []int64{5, 4, 3, 2, 1}},
		{"in", ledger.ListTransactionsInput{Type: ledger.TypeIn}, []int64{3, 1}},
		{"out", ledger.ListTransactionsInput{Type: ledger.TypeOut}, []int64{5, 4, 2}},
		{"kind", ledger.ListTransactionsInput{Kind: ledger.KindServicePurchase}, []int64{5, 2}},
		{"type and kind", ledger.ListTransactionsInput{Type: ledger.TypeOut, Kind: ledger.KindInvoicePayment}, []int64{4}},
		{"since 14:00", ledger.ListTransactionsInput{Start: t0.Add(2 * time.Hour)}, []int64{5, 4, 3}},
		{"before 14:00", ledger.ListTransactionsInput{End: t0.Add(2 * time.Hour)}, []int64{2, 1}},
		{"window", ledger.ListTransactionsInput{Start: t0.Add(time.Hour), End: t0.Add(4 * time.Hour)}, []int64{4, 3, 2}},
		{"window and type", ledger.ListTransactionsInput{Start: t0.Add(time.Hour), End: t0.Add(4 * time.Hour), Type: ledger.TypeOut}, []int64{4, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := versions(tc.in)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got versions %v, want %v", got, tc.want)
			}
		})
	}
	// Filtered pagination keeps the filter.
	page, err := svc.ListTransactions(ctx, ledger.ListTransactionsInput{Workspace: "ws1", Account: "f", Type: ledger.TypeOut, PageSize: 2})
	if err != nil || len(page.Transactions) != 2 || page.NextPageToken == "" {
		t.Fatalf("filtered page: %+v %v", page, err)
	}
	page, err = svc.ListTransactions(ctx, ledger.ListTransactionsInput{Workspace: "ws1", Account: "f", Type: ledger.TypeOut, PageSize: 2, PageToken: page.NextPageToken})
	if err != nil || len(page.Transactions) != 1 || page.Transactions[0].AccountVersion != 2 || page.NextPageToken != "" {
		t.Fatalf("filtered second page: %+v %v", page, err)
	}
	_, err = svc.ListTransactions(ctx, ledger.ListTransactionsInput{Workspace: "ws1", Account: "f", Start: t0.Add(time.Hour), End: t0})
	wantReason(t, err, ledger.CodeInvalid, ledger.ReasonInvalidArgument)
}

func testWorkspaceIsolation(t *testing.T, h *harness) {
	h.enable("agency-a", true)
	h.credit("agency-a", "client", 100)
	sub, err := h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{
		Workspace: "agency-a", Account: "client", Amount: 5,
		PaymentMethod: ledger.MethodCrypto, IdempotencyKey: "s1",
	})
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := h.svc.CreatePackage(h.ctx, "agency-a", "gold", ledger.Package{DisplayName: "Gold", Credits: 10, Price: ledger.Money{Currency: "USD", Units: 9}})
	if err != nil {
		t.Fatal(err)
	}
	if b := h.balance("agency-b", "client"); b.Balance != 0 || b.Version != 0 {
		t.Fatalf("agency-b sees agency-a's balance: %+v", b)
	}
	if hist := h.history("agency-b", "client"); len(hist) != 0 {
		t.Fatalf("agency-b sees agency-a's history: %+v", hist)
	}
	_, err = h.svc.GetRequest(h.ctx, "agency-b", sub.Request.ID)
	wantReason(t, err, ledger.CodeNotFound, ledger.ReasonNotFound)
	_, err = h.svc.DecideRequest(h.ctx, ledger.DecideInput{Workspace: "agency-b", RequestID: sub.Request.ID, Decision: ledger.DecisionAccept, DecidedBy: "mallory", IdempotencyKey: "x"})
	wantReason(t, err, ledger.CodeNotFound, ledger.ReasonNotFound)
	_, err = h.svc.GetPackage(h.ctx, "agency-b", pkg.ID)
	wantReason(t, err, ledger.CodeNotFound, ledger.ReasonNotFound)
	_, err = h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: "agency-b", Account: "client", PackageID: pkg.ID, IdempotencyKey: "p"})
	wantReason(t, err, ledger.CodeNotFound, ledger.ReasonNotFound)
	reqs, err := h.svc.ListRequests(h.ctx, ledger.ListRequestsInput{Workspace: "agency-b"})
	if err != nil || len(reqs.Requests) != 0 {
		t.Fatalf("agency-b lists agency-a's requests: %+v %v", reqs, err)
	}
	accts, err := h.svc.ListAccounts(h.ctx, ledger.ListAccountsInput{Workspace: "agency-b"})
	if err != nil || len(accts.Accounts) != 0 {
		t.Fatalf("agency-b lists agency-a's accounts: %+v %v", accts, err)
	}
	if st, _ := h.svc.GetSettings(h.ctx, "agency-b"); st.CreditPaymentsEnabled {
		t.Fatal("agency-b inherited agency-a's settings")
	}
	if b := h.balance("agency-a", "client"); b.Balance != 100 || b.PendingRequestCredits != 5 {
		t.Fatalf("agency-a's own view: %+v", b)
	}
}

func testDisabledMatrix(t *testing.T, h *harness) {
	ws := "ws-off"
	h.enable(ws, true)
	h.credit(ws, "kim", 100)
	pending, err := h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{Workspace: ws, Account: "kim", Amount: 40, PaymentMethod: ledger.MethodBankTransfer, IdempotencyKey: "sub-before"})
	if err != nil {
		t.Fatal(err)
	}
	h.enable(ws, false)

	_, err = h.svc.Debit(h.ctx, ledger.DebitInput{Workspace: ws, Account: "kim", Amount: 1, IdempotencyKey: "d-off"})
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonCreditPaymentsDisabled)
	_, err = h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{Workspace: ws, Account: "kim", Amount: 1, PaymentMethod: ledger.MethodCrypto, IdempotencyKey: "s-off"})
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonCreditPaymentsDisabled)

	b := h.balance(ws, "kim")
	if b.CreditPaymentsEnabled || b.Balance != 100 || b.PendingRequestCredits != 40 {
		t.Fatalf("balance while disabled: %+v", b)
	}
	chk, err := h.svc.CheckCreditPayment(h.ctx, ledger.CheckInput{Workspace: ws, Account: "kim", Credits: 10})
	if err != nil || chk.Allowed || chk.Reason != ledger.ReasonCreditPaymentsDisabled || chk.Balance != 100 {
		t.Fatalf("check while disabled: %+v %v", chk, err)
	}
	// Credits still post: a confirmed payment or refund is never lost.
	if _, err := h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: ws, Account: "kim", Amount: 7, Kind: ledger.KindRefund, IdempotencyKey: "refund-1"}); err != nil {
		t.Fatalf("credit while disabled: %v", err)
	}
	// Pending requests can still be decided.
	dec, err := h.svc.DecideRequest(h.ctx, ledger.DecideInput{Workspace: ws, RequestID: pending.Request.ID, Decision: ledger.DecisionAccept, DecidedBy: "admin", IdempotencyKey: "dec-off"})
	if err != nil || dec.Request.Status != ledger.StatusAccepted {
		t.Fatalf("decide while disabled: %+v %v", dec, err)
	}
	if b := h.balance(ws, "kim"); b.Balance != 147 || b.PendingRequestCredits != 0 {
		t.Fatalf("balance after credit and accept while disabled: %+v", b)
	}
	// Turning payments back on restores spending with the preserved balance.
	h.enable(ws, true)
	if res := h.debit(ws, "kim", 147); res.Balance != 0 {
		t.Fatalf("debit after re-enabling: %+v", res)
	}
	h.checkInvariants(ws, "kim")
}

func testRequestLifecycle(t *testing.T, h *harness) {
	h.enable("ws1", true)
	sub, err := h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{
		Workspace: "ws1", Account: "lee", Amount: 300,
		PaymentMethod: ledger.MethodBankTransfer, PaymentReference: "SEPA-2026-0042", Note: "paid on Monday",
		IdempotencyKey: "sub-1", Metadata: map[string]string{"iban_last4": "1234"},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := sub.Request
	if r.Status != ledger.StatusPending || r.Amount != 300 || r.ID == "" || r.PaymentReference != "SEPA-2026-0042" ||
		r.Note != "paid on Monday" || r.PaymentMethod != ledger.MethodBankTransfer || r.CreateTime.IsZero() || sub.Replayed {
		t.Fatalf("submitted: %+v", sub)
	}
	again, err := h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{
		Workspace: "ws1", Account: "lee", Amount: 300,
		PaymentMethod: ledger.MethodBankTransfer, PaymentReference: "SEPA-2026-0042", Note: "paid on Monday",
		IdempotencyKey: "sub-1", Metadata: map[string]string{"iban_last4": "1234"},
	})
	if err != nil || !again.Replayed || again.Request.ID != r.ID {
		t.Fatalf("submit replay: %+v %v", again, err)
	}
	if b := h.balance("ws1", "lee"); b.Balance != 0 || b.PendingRequestCredits != 300 {
		t.Fatalf("pending balance: %+v", b)
	}
	dec, err := h.svc.DecideRequest(h.ctx, ledger.DecideInput{
		Workspace: "ws1", RequestID: r.ID, Decision: ledger.DecisionAccept,
		Reason: "transfer received", DecidedBy: "admin@agency", IdempotencyKey: "dec-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if dec.Request.Status != ledger.StatusAccepted || dec.Transaction == nil || dec.Request.TransactionID != dec.Transaction.ID ||
		dec.Request.DecidedBy != "admin@agency" || dec.Request.DecideTime.IsZero() {
		t.Fatalf("accepted: %+v", dec)
	}
	tr := *dec.Transaction
	if tr.Kind != ledger.KindRequestApproved || tr.Type != ledger.TypeIn || tr.Amount != 300 || tr.RequestID != r.ID ||
		tr.Reference != "creditRequest:"+r.ID || tr.BalanceAfter != 300 {
		t.Fatalf("approval transaction: %+v", tr)
	}
	got, err := h.svc.GetRequest(h.ctx, "ws1", r.ID)
	if err != nil || got.Status != ledger.StatusAccepted || got.TransactionID != tr.ID || got.DecisionReason != "transfer received" || got.Metadata["iban_last4"] != "1234" {
		t.Fatalf("GetRequest after accept: %+v %v", got, err)
	}
	// A second, different decision is refused.
	_, err = h.svc.DecideRequest(h.ctx, ledger.DecideInput{Workspace: "ws1", RequestID: r.ID, Decision: ledger.DecisionReject, DecidedBy: "other", IdempotencyKey: "dec-2"})
	e := wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonRequestAlreadyDecided)
	if e.Metadata["status"] != "ACCEPTED" {
		t.Fatalf("metadata %v", e.Metadata)
	}
	// Rejection posts nothing and keeps the reason.
	rej, err := h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{
		Workspace: "ws1", Account: "lee", Amount: 50, PaymentMethod: ledger.MethodCrypto,
		PaymentReference: "0xabc", IdempotencyKey: "sub-2",
	})
	if err != nil {
		t.Fatal(err)
	}
	d2, err := h.svc.DecideRequest(h.ctx, ledger.DecideInput{
		Workspace: "ws1", RequestID: rej.Request.ID, Decision: ledger.DecisionReject,
		Reason: "no payment found", DecidedBy: "admin@agency", IdempotencyKey: "dec-3",
	})
	if err != nil || d2.Request.Status != ledger.StatusRejected || d2.Transaction != nil || d2.Request.TransactionID != "" {
		t.Fatalf("reject: %+v %v", d2, err)
	}
	got, err = h.svc.GetRequest(h.ctx, "ws1", rej.Request.ID)
	if err != nil || got.Status != ledger.StatusRejected || got.DecisionReason != "no payment found" {
		t.Fatalf("GetRequest after reject: %+v %v", got, err)
	}
	_, err = h.svc.DecideRequest(h.ctx, ledger.DecideInput{Workspace: "ws1", RequestID: rej.Request.ID, Decision: ledger.DecisionAccept, DecidedBy: "x", IdempotencyKey: "dec-4"})
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonRequestAlreadyDecided)
	b := h.balance("ws1", "lee")
	if b.Balance != 300 || b.Version != 1 || b.PendingRequestCredits != 0 {
		t.Fatalf("after accept + reject: %+v", b)
	}
	_, err = h.svc.GetRequest(h.ctx, "ws1", "does-not-exist")
	wantReason(t, err, ledger.CodeNotFound, ledger.ReasonNotFound)
	h.checkInvariants("ws1", "lee")
}

func testDecideReplay(t *testing.T, h *harness) {
	h.enable("ws1", true)
	sub, err := h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{Workspace: "ws1", Account: "mo", Amount: 70, PaymentMethod: ledger.MethodBankTransfer, IdempotencyKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	in := ledger.DecideInput{Workspace: "ws1", RequestID: sub.Request.ID, Decision: ledger.DecisionAccept, DecidedBy: "admin", IdempotencyKey: "accept-once"}
	first, err := h.svc.DecideRequest(h.ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	second, err := h.svc.DecideRequest(h.ctx, in)
	if err != nil || !second.Replayed || second.Transaction == nil || second.Transaction.ID != first.Transaction.ID || second.Request.Status != ledger.StatusAccepted {
		t.Fatalf("accepting twice with one key: %+v %v", second, err)
	}
	if b := h.balance("ws1", "mo"); b.Balance != 70 || b.Version != 1 {
		t.Fatalf("second accept credited again: %+v", b)
	}
	in.Decision = ledger.DecisionReject
	_, err = h.svc.DecideRequest(h.ctx, in)
	wantReason(t, err, ledger.CodeInvalid, ledger.ReasonIdempotencyKeyReused)
}

func testConcurrentDecisions(t *testing.T, h *harness) {
	h.enable("ws1", true)
	sub, err := h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{Workspace: "ws1", Account: "nia", Amount: 1000, PaymentMethod: ledger.MethodCrypto, IdempotencyKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	var wg sync.WaitGroup
	var wins, decided atomic.Int32
	var winner atomic.Value
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			d := ledger.DecisionAccept
			if i%2 == 1 {
				d = ledger.DecisionReject
			}
			<-start
			res, err := h.svc.DecideRequest(h.ctx, ledger.DecideInput{
				Workspace: "ws1", RequestID: sub.Request.ID, Decision: d,
				DecidedBy: fmt.Sprintf("admin-%d", i), IdempotencyKey: fmt.Sprintf("decide-%d", i),
			})
			switch {
			case err == nil:
				wins.Add(1)
				winner.Store(res.Request.Status)
			case ledger.ReasonOf(err) == ledger.ReasonRequestAlreadyDecided:
				decided.Add(1)
			default:
				errs <- err
			}
		}(i)
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if wins.Load() != 1 || decided.Load() != n-1 {
		t.Fatalf("%d decisions won, %d refused; want exactly 1 and %d", wins.Load(), decided.Load(), n-1)
	}
	hist := h.checkInvariants("ws1", "nia")
	got, err := h.svc.GetRequest(h.ctx, "ws1", sub.Request.ID)
	if err != nil {
		t.Fatal(err)
	}
	switch got.Status {
	case ledger.StatusAccepted:
		if len(hist) != 1 || hist[0].ID != got.TransactionID {
			t.Fatalf("accepted with %d transactions", len(hist))
		}
	case ledger.StatusRejected:
		if len(hist) != 0 {
			t.Fatalf("rejected with %d transactions", len(hist))
		}
	default:
		t.Fatalf("status %v", got.Status)
	}
	if got.Status != winner.Load().(ledger.RequestStatus) {
		t.Fatalf("stored %v, winner was told %v", got.Status, winner.Load())
	}
}

func testRequestQueue(t *testing.T, h *harness) {
	h.enable("ws1", true)
	var ids []string
	for i, acct := range []string{"a1", "a2", "a1", "a3", "a1"} {
		res, err := h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{
			Workspace: "ws1", Account: acct, Amount: int64(10 * (i + 1)),
			PaymentMethod: ledger.MethodBankTransfer, IdempotencyKey: fmt.Sprintf("q%d", i),
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Request.ID)
	}
	if _, err := h.svc.DecideRequest(h.ctx, ledger.DecideInput{Workspace: "ws1", RequestID: ids[1], Decision: ledger.DecisionReject, DecidedBy: "ad", IdempotencyKey: "r"}); err != nil {
		t.Fatal(err)
	}
	list := func(in ledger.ListRequestsInput) []string {
		t.Helper()
		in.Workspace = "ws1"
		var out []string
		for {
			page, err := h.svc.ListRequests(h.ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Requests {
				out = append(out, r.ID)
			}
			if page.NextPageToken == "" {
				return out
			}
			in.PageToken = page.NextPageToken
		}
	}
	for _, tc := range []struct {
		name string
		in   ledger.ListRequestsInput
		want []string
	}{
		{"agency queue: pending, oldest first", ledger.ListRequestsInput{Status: ledger.StatusPending, PageSize: 2}, []string{ids[0], ids[2], ids[3], ids[4]}},
		{"everything oldest first", ledger.ListRequestsInput{PageSize: 1}, ids},
		{"client view newest first", ledger.ListRequestsInput{Account: "a1", PageSize: 2}, []string{ids[4], ids[2], ids[0]}},
		{"client view explicit asc", ledger.ListRequestsInput{Account: "a1", OrderBy: "create_time"}, []string{ids[0], ids[2], ids[4]}},
		{"queue explicit desc", ledger.ListRequestsInput{Status: ledger.StatusPending, OrderBy: "create_time desc"}, []string{ids[4], ids[3], ids[2], ids[0]}},
		{"rejected", ledger.ListRequestsInput{Status: ledger.StatusRejected}, []string{ids[1]}},
		{"account and status", ledger.ListRequestsInput{Account: "a2", Status: ledger.StatusPending}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := list(tc.in); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	_, err := h.svc.ListRequests(h.ctx, ledger.ListRequestsInput{Workspace: "ws1", OrderBy: "amount"})
	wantReason(t, err, ledger.CodeInvalid, ledger.ReasonInvalidArgument)
	if b := h.balance("ws1", "a1"); b.PendingRequestCredits != 10+30+50 {
		t.Fatalf("pending credits of a1: %+v", b)
	}
}

func testPackages(t *testing.T, h *harness) {
	h.enable("ws1", true)
	usd := func(units int64, nanos int32) ledger.Money {
		return ledger.Money{Currency: "USD", Units: units, Nanos: nanos}
	}
	gold, err := h.svc.CreatePackage(h.ctx, "ws1", "gold", ledger.Package{DisplayName: "Gold", Credits: 1000, Price: usd(90, 500_000_000)})
	if err != nil {
		t.Fatal(err)
	}
	if !gold.Active || gold.ID != "gold" || gold.Price != usd(90, 500_000_000) || gold.CreateTime.IsZero() {
		t.Fatalf("created: %+v", gold)
	}
	gen, err := h.svc.CreatePackage(h.ctx, "ws1", "", ledger.Package{DisplayName: "Starter", Credits: 100, Price: usd(10, 0)})
	if err != nil || gen.ID == "" {
		t.Fatalf("generated id: %+v %v", gen, err)
	}
	_, err = h.svc.CreatePackage(h.ctx, "ws1", "gold", ledger.Package{DisplayName: "Gold again", Credits: 1, Price: usd(1, 0)})
	wantReason(t, err, ledger.CodeAlreadyExists, ledger.ReasonAlreadyExists)
	_, err = h.svc.CreatePackage(h.ctx, "ws1", "bad", ledger.Package{DisplayName: "", Credits: 0, Price: ledger.Money{Currency: "usd", Units: -1}})
	e := wantReason(t, err, ledger.CodeInvalid, ledger.ReasonInvalidArgument)
	if len(e.Violations) < 3 {
		t.Fatalf("want violations for name, credits and price: %+v", e.Violations)
	}
	got, err := h.svc.GetPackage(h.ctx, "ws1", "gold")
	if err != nil || got.DisplayName != "Gold" || got.Credits != 1000 || got.Price != gold.Price {
		t.Fatalf("GetPackage: %+v %v", got, err)
	}
	up, err := h.svc.UpdatePackage(h.ctx, "ws1", "gold", ledger.Package{DisplayName: "Gold+", Credits: 1}, []string{"display_name"})
	if err != nil || up.DisplayName != "Gold+" || up.Credits != 1000 {
		t.Fatalf("masked update changed more than the mask: %+v %v", up, err)
	}
	_, err = h.svc.UpdatePackage(h.ctx, "ws1", "gold", ledger.Package{}, []string{"id"})
	wantReason(t, err, ledger.CodeInvalid, ledger.ReasonInvalidArgument)
	_, err = h.svc.UpdatePackage(h.ctx, "ws1", "gold", ledger.Package{Credits: -5}, []string{"credits"})
	wantReason(t, err, ledger.CodeInvalid, ledger.ReasonInvalidArgument)
	_, err = h.svc.UpdatePackage(h.ctx, "ws1", "missing", ledger.Package{DisplayName: "x"}, []string{"display_name"})
	wantReason(t, err, ledger.CodeNotFound, ledger.ReasonNotFound)
	// Credit by package takes the package's credits; the caller cannot change them.
	res, err := h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: "ws1", Account: "pat", PackageID: "gold", IdempotencyKey: "stripe:pi_gold", Reference: "stripe:pi_gold"})
	if err != nil || res.Transaction.Amount != 1000 || res.Transaction.PackageID != "gold" {
		t.Fatalf("credit by package: %+v %v", res, err)
	}
	_, err = h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: "ws1", Account: "pat", PackageID: "gold", Amount: 5, IdempotencyKey: "x"})
	wantReason(t, err, ledger.CodeInvalid, ledger.ReasonInvalidArgument)
	sub, err := h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{Workspace: "ws1", Account: "pat", PackageID: gen.ID, PaymentMethod: ledger.MethodBankTransfer, IdempotencyKey: "s"})
	if err != nil || sub.Request.Amount != 100 || sub.Request.PackageID != gen.ID {
		t.Fatalf("submit by package: %+v %v", sub, err)
	}
	// Changing the package later does not change what was submitted.
	if _, err := h.svc.UpdatePackage(h.ctx, "ws1", gen.ID, ledger.Package{Credits: 999}, []string{"credits"}); err != nil {
		t.Fatal(err)
	}
	dec, err := h.svc.DecideRequest(h.ctx, ledger.DecideInput{Workspace: "ws1", RequestID: sub.Request.ID, Decision: ledger.DecisionAccept, DecidedBy: "a", IdempotencyKey: "d"})
	if err != nil || dec.Transaction.Amount != 100 || dec.Transaction.PackageID != gen.ID {
		t.Fatalf("accepting a package request: %+v %v", dec, err)
	}
	if _, err := h.svc.ArchivePackage(h.ctx, "ws1", gen.ID); err != nil {
		t.Fatal(err)
	}
	active, err := h.svc.ListPackages(h.ctx, ledger.ListPackagesInput{Workspace: "ws1"})
	if err != nil || len(active.Packages) != 1 || active.Packages[0].ID != "gold" {
		t.Fatalf("active packages: %+v %v", active, err)
	}
	all, err := h.svc.ListPackages(h.ctx, ledger.ListPackagesInput{Workspace: "ws1", ShowInactive: true, PageSize: 1})
	if err != nil || len(all.Packages) != 1 || all.NextPageToken == "" {
		t.Fatalf("all packages, page 1: %+v %v", all, err)
	}
	rest, err := h.svc.ListPackages(h.ctx, ledger.ListPackagesInput{Workspace: "ws1", ShowInactive: true, PageSize: 1, PageToken: all.NextPageToken})
	if err != nil || len(rest.Packages) != 1 || rest.Packages[0].ID == all.Packages[0].ID || rest.NextPageToken != "" {
		t.Fatalf("all packages, page 2: %+v %v", rest, err)
	}
}

// testConcurrentPackageUpdates: two admins change different fields of one
// package at the same time; both changes survive (no lost update).
func testConcurrentPackageUpdates(t *testing.T, h *harness) {
	_, err := h.svc.CreatePackage(h.ctx, "ws1", "silver", ledger.Package{DisplayName: "Silver", Credits: 500, Price: ledger.Money{Currency: "USD", Units: 45}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		name, credits := fmt.Sprintf("Silver %d", i), int64(501+i)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		wg.Go(func() {
			_, errs[0] = h.svc.UpdatePackage(h.ctx, "ws1", "silver", ledger.Package{DisplayName: name}, []string{"display_name"})
		})
		wg.Go(func() {
			_, errs[1] = h.svc.UpdatePackage(h.ctx, "ws1", "silver", ledger.Package{Credits: credits}, []string{"credits"})
		})
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("round %d: %v / %v", i, errs[0], errs[1])
		}
		p, err := h.svc.GetPackage(h.ctx, "ws1", "silver")
		if err != nil {
			t.Fatal(err)
		}
		if p.DisplayName != name || p.Credits != credits || !p.Active {
			t.Fatalf("round %d: package %q with %d credits, want %q with %d: a concurrent update was lost", i, p.DisplayName, p.Credits, name, credits)
		}
	}
}

func testArchivedPackage(t *testing.T, h *harness) {
	h.enable("ws1", true)
	if _, err := h.svc.CreatePackage(h.ctx, "ws1", "old", ledger.Package{DisplayName: "Old", Credits: 50, Price: ledger.Money{Currency: "EUR", Units: 5}}); err != nil {
		t.Fatal(err)
	}
	bought, err := h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: "ws1", Account: "quinn", PackageID: "old", IdempotencyKey: "paypal:1"})
	if err != nil {
		t.Fatal(err)
	}
	pend, err := h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{Workspace: "ws1", Account: "quinn", PackageID: "old", PaymentMethod: ledger.MethodCrypto, IdempotencyKey: "s-old"})
	if err != nil {
		t.Fatal(err)
	}
	arch, err := h.svc.ArchivePackage(h.ctx, "ws1", "old")
	if err != nil || arch.Active {
		t.Fatalf("archive: %+v %v", arch, err)
	}
	_, err = h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: "ws1", Account: "quinn", PackageID: "old", IdempotencyKey: "paypal:2"})
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonPackageInactive)
	_, err = h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{Workspace: "ws1", Account: "quinn", PackageID: "old", PaymentMethod: ledger.MethodCrypto, IdempotencyKey: "s-old-2"})
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonPackageInactive)
	// What was bought before still reads correctly and replays.
	again, err := h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: "ws1", Account: "quinn", PackageID: "old", IdempotencyKey: "paypal:1"})
	if err != nil || !again.Replayed || again.Transaction.ID != bought.Transaction.ID {
		t.Fatalf("replay of a purchase of an archived package: %+v %v", again, err)
	}
	hist := h.checkInvariants("ws1", "quinn")
	if len(hist) != 1 || hist[0].PackageID != "old" || hist[0].Amount != 50 {
		t.Fatalf("history: %+v", hist)
	}
	got, err := h.svc.GetRequest(h.ctx, "ws1", pend.Request.ID)
	if err != nil || got.PackageID != "old" || got.Amount != 50 {
		t.Fatalf("request naming an archived package: %+v %v", got, err)
	}
	if p, err := h.svc.GetPackage(h.ctx, "ws1", "old"); err != nil || p.Active {
		t.Fatalf("GetPackage archived: %+v %v", p, err)
	}
}

func testRatesQuotesCheck(t *testing.T, h *harness) {
	ws := "ws-rates"
	usd := func(units int64, nanos int32) *ledger.Money {
		return &ledger.Money{Currency: "USD", Units: units, Nanos: nanos}
	}
	_, err := h.svc.Quote(h.ctx, ws, *usd(1, 0))
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonNoConversionRate)
	if _, err := h.svc.SetConversionRate(h.ctx, ws, "USD", "8"); err != nil {
		t.Fatal(err)
	}
	r, err := h.svc.SetConversionRate(h.ctx, ws, "USD", "10")
	if err != nil || r.Rate.String() != "10" || !r.Active {
		t.Fatalf("set rate: %+v %v", r, err)
	}
	if _, err := h.svc.SetConversionRate(h.ctx, ws, "EUR", "9.50"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"0", "-1", "1e3", "abc", "", "1.0000000001", "1234567890123456789"} {
		_, err := h.svc.SetConversionRate(h.ctx, ws, "USD", bad)
		wantReason(t, err, ledger.CodeInvalid, ledger.ReasonInvalidArgument)
	}
	_, err = h.svc.SetConversionRate(h.ctx, ws, "usd", "1")
	wantReason(t, err, ledger.CodeInvalid, ledger.ReasonInvalidArgument)

	active, err := h.svc.ListConversionRates(h.ctx, ws, false)
	if err != nil || len(active) != 2 || active[0].Currency != "EUR" || active[0].Rate.String() != "9.5" || active[1].Rate.String() != "10" {
		t.Fatalf("active rates: %+v %v", active, err)
	}
	hist, err := h.svc.ListConversionRates(h.ctx, ws, true)
	if err != nil || len(hist) != 3 {
		t.Fatalf("rate history: %+v %v", hist, err)
	}
	var sawOld bool
	for _, x := range hist {
		if x.Currency == "USD" && x.Rate.String() == "8" && !x.Active {
			sawOld = true
		}
	}
	if !sawOld {
		t.Fatalf("the replaced rate was not kept: %+v", hist)
	}
	for _, tc := range []struct {
		price ledger.Money
		want  int64
	}{
		{*usd(3, 510_000_000), 36}, // the spec's example: 35.1 → 36
		{*usd(0, 0), 0},
		{*usd(1, 0), 10},
		{*usd(0, 1), 1}, // a nano still costs a whole credit
		{ledger.Money{Currency: "EUR", Units: 2}, 19},
		{ledger.Money{Currency: "EUR", Units: 1, Nanos: 1}, 10}, // 9.5000000095 → 10
	} {
		q, err := h.svc.Quote(h.ctx, ws, tc.price)
		if err != nil || q.Credits != tc.want {
			t.Fatalf("Quote(%v) = %d, %v; want %d", tc.price, q.Credits, err, tc.want)
		}
	}
	_, err = h.svc.Quote(h.ctx, ws, ledger.Money{Currency: "USD", Units: 1 << 62})
	wantViolation(t, err, "price") // more credits than one operation may move (AmountBounds)
	_, err = h.svc.Quote(h.ctx, ws, ledger.Money{Currency: "JPY", Units: 1})
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonNoConversionRate)

	// CheckCreditPayment: the reasons, in order, from one snapshot.
	h.credit(ws, "rae", 36)
	check := func(in ledger.CheckInput) ledger.CheckResult {
		t.Helper()
		in.Workspace, in.Account = ws, "rae"
		res, err := h.svc.CheckCreditPayment(h.ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if c := check(ledger.CheckInput{Price: usd(3, 510_000_000)}); c.Allowed || c.Reason != ledger.ReasonCreditPaymentsDisabled || c.CreditsRequired != 36 {
		t.Fatalf("disabled: %+v", c)
	}
	h.enable(ws, true)
	if c := check(ledger.CheckInput{Price: usd(3, 510_000_000)}); !c.Allowed || c.Reason != "" || c.CreditsRequired != 36 || c.Balance != 36 || c.Version != 1 {
		t.Fatalf("exactly covered: %+v", c)
	}
	if c := check(ledger.CheckInput{Price: usd(3, 520_000_000)}); !c.Allowed || c.CreditsRequired != 36 {
		t.Fatalf("35.2 rounds up to 36, which the balance covers: %+v", c)
	}
	if c := check(ledger.CheckInput{Price: usd(3, 600_000_001)}); c.Allowed || c.Reason != ledger.ReasonInsufficientCredits || c.CreditsRequired != 37 {
		t.Fatalf("above the balance: %+v", c)
	}
	if c := check(ledger.CheckInput{Price: &ledger.Money{Currency: "GBP", Units: 1}}); c.Allowed || c.Reason != ledger.ReasonNoConversionRate {
		t.Fatalf("no rate: %+v", c)
	}
	if c := check(ledger.CheckInput{Credits: 36}); !c.Allowed {
		t.Fatalf("credits: %+v", c)
	}
	if c := check(ledger.CheckInput{Credits: 37}); c.Allowed || c.Reason != ledger.ReasonInsufficientCredits {
		t.Fatalf("credits above balance: %+v", c)
	}
	_, err = h.svc.CheckCreditPayment(h.ctx, ledger.CheckInput{Workspace: ws, Account: "rae", Credits: 1, Price: usd(1, 0)})
	wantReason(t, err, ledger.CodeInvalid, ledger.ReasonInvalidArgument)
}

func testListAccounts(t *testing.T, h *harness) {
	h.enable("ws1", true)
	for i := 0; i < 7; i++ {
		h.credit("ws1", fmt.Sprintf("acct-%02d", i), int64(i+1))
	}
	if _, err := h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{Workspace: "ws1", Account: "acct-03", Amount: 9, PaymentMethod: ledger.MethodCrypto, IdempotencyKey: "s"}); err != nil {
		t.Fatal(err)
	}
	var got []ledger.Balance
	token := ""
	for {
		page, err := h.svc.ListAccounts(h.ctx, ledger.ListAccountsInput{Workspace: "ws1", PageSize: 3, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page.Accounts...)
		if page.NextPageToken == "" {
			break
		}
		token = page.NextPageToken
	}
	if len(got) != 7 {
		t.Fatalf("%d accounts, want 7", len(got))
	}
	for i, b := range got {
		if b.ID != fmt.Sprintf("acct-%02d", i) || b.Balance != int64(i+1) || b.Version != 1 || !b.CreditPaymentsEnabled {
			t.Fatalf("account %d: %+v", i, b)
		}
		if want := map[bool]int64{true: 9, false: 0}[i == 3]; b.PendingRequestCredits != want {
			t.Fatalf("account %d pending %d, want %d", i, b.PendingRequestCredits, want)
		}
	}
}

func testSettings(t *testing.T, h *harness) {
	st, err := h.svc.GetSettings(h.ctx, "fresh")
	if err != nil || st.CreditPaymentsEnabled || st.Workspace != "fresh" {
		t.Fatalf("defaults: %+v %v", st, err)
	}
	up, err := h.svc.UpdateSettings(h.ctx, "fresh", ledger.Settings{CreditPaymentsEnabled: true}, []string{"credit_payments_enabled"})
	if err != nil || !up.CreditPaymentsEnabled || up.UpdateTime.IsZero() {
		t.Fatalf("enable: %+v %v", up, err)
	}
	_, err = h.svc.UpdateSettings(h.ctx, "fresh", ledger.Settings{}, []string{"workspace"})
	wantReason(t, err, ledger.CodeInvalid, ledger.ReasonInvalidArgument)
	st, err = h.svc.GetSettings(h.ctx, "fresh")
	if err != nil || !st.CreditPaymentsEnabled {
		t.Fatalf("a refused update changed settings: %+v %v", st, err)
	}
	if _, err := h.svc.UpdateSettings(h.ctx, "fresh", ledger.Settings{CreditPaymentsEnabled: false}, nil); err != nil {
		t.Fatal(err)
	}
	if st, _ := h.svc.GetSettings(h.ctx, "fresh"); st.CreditPaymentsEnabled {
		t.Fatal("an empty mask (full replacement) did not disable")
	}
}

// testUnsafeText: a NUL (which PostgreSQL cannot store in jsonb), a control
// character or a bidirectional override in any text field or metadata value
// is refused as INVALID_ARGUMENT by every store alike, never INTERNAL, and
// changes nothing.
func testUnsafeText(t *testing.T, h *harness) {
	h.enable("ws1", true)
	h.credit("ws1", "a", 100)
	for name, call := range map[string]func() error{
		"metadata NUL": func() error {
			_, err := h.svc.Credit(h.ctx, ledger.CreditInput{
				Workspace: "ws1", Account: "a", Amount: 1, IdempotencyKey: h.key("u"),
				Metadata: map[string]string{"ref": "a\x00b"},
			})
			return err
		},
		"reference override": func() error {
			_, err := h.svc.Debit(h.ctx, ledger.DebitInput{
				Workspace: "ws1", Account: "a", Amount: 1, IdempotencyKey: h.key("u"),
				Reference: "invoice:\u202efdp.exe",
			})
			return err
		},
		"payment reference newline in metadata": func() error {
			_, err := h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{
				Workspace: "ws1", Account: "a", Amount: 5,
				PaymentMethod: ledger.MethodBankTransfer, IdempotencyKey: h.key("u"), Metadata: map[string]string{"k": "x\ny"},
			})
			return err
		},
		"note C1 control": func() error {
			_, err := h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{
				Workspace: "ws1", Account: "a", Amount: 5,
				PaymentMethod: ledger.MethodBankTransfer, IdempotencyKey: h.key("u"), Note: "a\u009bb",
			})
			return err
		},
	} {
		err := call()
		if e := ledger.ErrorOf(err); err == nil || e.Code != ledger.CodeInvalid {
			t.Errorf("%s: %v, want INVALID_ARGUMENT", name, err)
		}
	}
	if b := h.balance("ws1", "a"); b.Balance != 100 || b.Version != 1 || b.PendingRequestCredits != 0 {
		t.Fatalf("refused input changed the ledger: %+v", b)
	}
}
