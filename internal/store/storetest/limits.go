package storetest

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/ledger"
)

// The limits of spec §11: amounts bounded so that no sum overflows, and at
// most N pending requests per account, on every store alike.

var seedTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// seed writes, through the store alone, what the ledger's rules would no
// longer write (data from before the limits): an account holding balance
// in one ADJUSTMENT entry, and pending requests of any amount.
func (h *harness) seed(ws, acct string, balance int64, pending ...int64) {
	h.t.Helper()
	eff := &ledger.Effects{}
	if balance > 0 {
		a := ledger.Account{Workspace: ws, ID: acct, Balance: balance, Version: 1, UpdateTime: seedTime}
		eff.Accounts = []ledger.AccountMove{{Account: a, Create: true}}
		eff.Transactions = []ledger.Transaction{{
			ID: "seed-" + ws + "-" + acct, Workspace: ws, Account: acct, Type: ledger.TypeIn, Kind: ledger.KindAdjustment,
			Amount: balance, BalanceAfter: balance, AccountVersion: 1, Reference: "seed", CreateTime: seedTime,
		}}
	}
	for i, amount := range pending {
		eff.NewRequests = append(eff.NewRequests, ledger.CreditRequest{
			ID: fmt.Sprintf("seed-%s-%s-%d", ws, acct, i), Workspace: ws, Account: acct, Amount: amount,
			PaymentMethod: ledger.MethodBankTransfer, Status: ledger.StatusPending, CreateTime: seedTime,
		})
	}
	set := ledger.WriteSet{Workspace: ws, Accounts: []string{acct}}
	if err := h.store.Write(h.ctx, set, func(*ledger.Snapshot) (*ledger.Effects, error) { return eff, nil }); err != nil {
		h.t.Fatalf("seed %s/%s: %v", ws, acct, err)
	}
}

// wantViolation fails unless err is INVALID_ARGUMENT with a violation of field.
func wantViolation(t *testing.T, err error, field string) {
	t.Helper()
	r := wantReason(t, err, ledger.CodeInvalid, ledger.ReasonInvalidArgument)
	for _, v := range r.Violations {
		if v.Field == field {
			return
		}
	}
	t.Fatalf("violations %+v, want one of %q", r.Violations, field)
}

// testAmountBounds: no operation moves more than MaxAmount; a larger amount
// is malformed input, refused with a field violation, and changes nothing.
func testAmountBounds(t *testing.T, h *harness) {
	const ws = "ws1"
	h.enable(ws, true)
	if _, err := h.svc.SetConversionRate(h.ctx, ws, "USD", "10"); err != nil {
		t.Fatal(err)
	}
	h.credit(ws, "a", ledger.MaxAmount) // the largest amount is allowed
	h.debit(ws, "a", ledger.MaxAmount)
	over := ledger.MaxAmount + 1
	_, err := h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: ws, Account: "a", Amount: over, IdempotencyKey: h.key("c")})
	wantViolation(t, err, "amount")
	_, err = h.svc.Debit(h.ctx, ledger.DebitInput{Workspace: ws, Account: "a", Amount: over, IdempotencyKey: h.key("d")})
	wantViolation(t, err, "amount")
	_, err = h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{
		Workspace: ws, Account: "a", Amount: over, PaymentMethod: ledger.MethodBankTransfer, IdempotencyKey: h.key("s"),
	})
	wantViolation(t, err, "amount")
	_, err = h.svc.CreatePackage(h.ctx, ws, "huge", ledger.Package{
		DisplayName: "Huge", Credits: over, Price: ledger.Money{Currency: "USD", Units: 1},
	})
	wantViolation(t, err, "credit_package.credits")
	_, err = h.svc.CheckCreditPayment(h.ctx, ledger.CheckInput{Workspace: ws, Account: "a", Credits: over})
	wantViolation(t, err, "credits")
	// USD 10^11 at 10/USD is MaxAmount exactly; a cent more is too much,
	// and so is a price past int64 altogether.
	if q, err := h.svc.Quote(h.ctx, ws, ledger.Money{Currency: "USD", Units: ledger.MaxAmount / 10}); err != nil || q.Credits != ledger.MaxAmount {
		t.Fatalf("Quote of the largest price: %+v, %v", q, err)
	}
	for _, units := range []int64{ledger.MaxAmount/10 + 1, 1 << 62, math.MaxInt64} {
		_, err = h.svc.Quote(h.ctx, ws, ledger.Money{Currency: "USD", Units: units})
		wantViolation(t, err, "price")
		_, err = h.svc.CheckCreditPayment(h.ctx, ledger.CheckInput{Workspace: ws, Account: "a", Price: &ledger.Money{Currency: "USD", Units: units}})
		wantViolation(t, err, "price")
	}
	if b := h.balance(ws, "a"); b.Balance != 0 || b.Version != 2 || b.PendingRequestCredits != 0 {
		t.Fatalf("a refused amount changed the ledger: %+v", b)
	}
}

// testBalanceLimit: a credit or an accepted request that would take a
// balance past MaxBalance is refused (BALANCE_LIMIT_EXCEEDED) and posts
// nothing; debits stay possible, also from a balance stored above the
// limit before it existed.
func testBalanceLimit(t *testing.T, h *harness) {
	const ws = "ws1"
	h.enable(ws, true)
	h.seed(ws, "rich", ledger.MaxBalance-10)
	if res := h.credit(ws, "rich", 10); res.Balance != ledger.MaxBalance {
		t.Fatalf("credit up to the limit: %+v", res)
	}
	_, err := h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: ws, Account: "rich", Amount: 1, IdempotencyKey: "over"})
	r := wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonBalanceLimitExceeded)
	if r.Metadata["limit"] != strconv.FormatInt(ledger.MaxBalance, 10) || r.Metadata["balance"] != strconv.FormatInt(ledger.MaxBalance, 10) {
		t.Fatalf("metadata %v", r.Metadata)
	}
	// A refusal is not remembered: once there is room, the same key posts.
	h.debit(ws, "rich", 5)
	if _, err := h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: ws, Account: "rich", Amount: 1, IdempotencyKey: "over"}); err != nil {
		t.Fatalf("the refused key after a debit: %v", err)
	}
	// An acceptance is a credit too: refused, the request stays pending.
	sub, err := h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{
		Workspace: ws, Account: "rich", Amount: 100, PaymentMethod: ledger.MethodBankTransfer, IdempotencyKey: "sub",
	})
	if err != nil {
		t.Fatal(err)
	}
	accept := func(key string) error {
		_, err := h.svc.DecideRequest(h.ctx, ledger.DecideInput{
			Workspace: ws, RequestID: sub.Request.ID, Decision: ledger.DecisionAccept, DecidedBy: "admin", IdempotencyKey: key,
		})
		return err
	}
	wantReason(t, accept("acc-1"), ledger.CodeFailedPrecondition, ledger.ReasonBalanceLimitExceeded)
	if got, err := h.svc.GetRequest(h.ctx, ws, sub.Request.ID); err != nil || got.Status != ledger.StatusPending {
		t.Fatalf("request after a refused acceptance: %+v, %v", got, err)
	}
	h.debit(ws, "rich", 1000)
	if err := accept("acc-2"); err != nil {
		t.Fatalf("accept with room: %v", err)
	}
	if b := h.balance(ws, "rich"); b.Balance != ledger.MaxBalance-5+1-1000+100 || b.Version != 6 {
		t.Fatalf("balance %+v", b)
	}

	// A balance stored above the limit refuses credits and allows debits.
	h.seed(ws, "legacy", ledger.MaxBalance+100)
	_, err = h.svc.Credit(h.ctx, ledger.CreditInput{Workspace: ws, Account: "legacy", Amount: 1, IdempotencyKey: h.key("c")})
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonBalanceLimitExceeded)
	if res := h.debit(ws, "legacy", 200); res.Balance != ledger.MaxBalance-100 {
		t.Fatalf("debit from a legacy balance: %+v", res)
	}
	h.checkInvariants(ws, "rich")
	h.checkInvariants(ws, "legacy")
}

// testPendingSaturate: pending requests whose amounts add up past int64
// (rows from before the amount bounds) leave GetBalance and ListAccounts
// answering: the pending sum saturates, on every store alike.
func testPendingSaturate(t *testing.T, h *harness) {
	h.enable("ws1", true)
	h.credit("ws1", "a", 1)
	h.seed("ws1", "a", 0, 1<<62, 1<<62)
	if b := h.balance("ws1", "a"); b.PendingRequestCredits != math.MaxInt64 || b.Balance != 1 {
		t.Fatalf("balance with two pending requests of 2^62: %+v, want pending saturated at MaxInt64", b)
	}
	page, err := h.svc.ListAccounts(h.ctx, ledger.ListAccountsInput{Workspace: "ws1"})
	if err != nil || len(page.Accounts) != 1 || page.Accounts[0].PendingRequestCredits != math.MaxInt64 {
		t.Fatalf("ListAccounts: %+v, %v", page, err)
	}
}

// testPendingRequestLimit: an account holds at most N pending requests; a
// decision (accept or reject) frees a slot; other accounts are not
// affected; a replay answers whatever the count.
func testPendingRequestLimit(t *testing.T, h *harness) {
	const ws, limit = "ws1", 3
	h.enable(ws, true)
	svc := ledger.NewService(h.store, ledger.WithMaxPendingRequests(limit))
	submit := func(acct, key string) (ledger.SubmitResult, error) {
		return svc.SubmitRequest(h.ctx, ledger.SubmitInput{
			Workspace: ws, Account: acct, Amount: 10, PaymentMethod: ledger.MethodBankTransfer, IdempotencyKey: key,
		})
	}
	decide := func(id string, d ledger.Decision) {
		t.Helper()
		if _, err := svc.DecideRequest(h.ctx, ledger.DecideInput{
			Workspace: ws, RequestID: id, Decision: d, DecidedBy: "admin", IdempotencyKey: h.key("dec"),
		}); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for i := range limit {
		res, err := submit("amy", "amy-"+strconv.Itoa(i)) // never credited: no account row
		if err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
		ids = append(ids, res.Request.ID)
	}
	_, err := submit("amy", "amy-over")
	r := wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonTooManyPendingRequests)
	if r.Metadata["limit"] != strconv.Itoa(limit) {
		t.Fatalf("metadata %v", r.Metadata)
	}
	if res, err := submit("amy", "amy-0"); err != nil || !res.Replayed || res.Request.ID != ids[0] {
		t.Fatalf("replay at the limit: %+v, %v", res, err)
	}
	if _, err := submit("bob", "bob-0"); err != nil {
		t.Fatalf("another account: %v", err)
	}
	decide(ids[0], ledger.DecisionReject)
	if _, err := submit("amy", "amy-over"); err != nil {
		t.Fatalf("after a rejection, the refused key: %v", err)
	}
	_, err = submit("amy", "amy-over-2")
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonTooManyPendingRequests)
	decide(ids[1], ledger.DecisionAccept)
	if _, err := submit("amy", "amy-over-2"); err != nil {
		t.Fatalf("after an acceptance: %v", err)
	}
	page, err := h.svc.ListRequests(h.ctx, ledger.ListRequestsInput{Workspace: ws, Account: "amy", Status: ledger.StatusPending})
	if err != nil || len(page.Requests) != limit {
		t.Fatalf("pending requests of amy: %d, %v; want %d", len(page.Requests), err, limit)
	}

	// The default service caps at DefaultMaxPendingRequests.
	for i := range ledger.DefaultMaxPendingRequests {
		if _, err := h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{
			Workspace: ws, Account: "cid", Amount: 1, PaymentMethod: ledger.MethodCrypto, IdempotencyKey: "cid-" + strconv.Itoa(i),
		}); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
	}
	_, err = h.svc.SubmitRequest(h.ctx, ledger.SubmitInput{
		Workspace: ws, Account: "cid", Amount: 1, PaymentMethod: ledger.MethodCrypto, IdempotencyKey: "cid-over",
	})
	wantReason(t, err, ledger.CodeFailedPrecondition, ledger.ReasonTooManyPendingRequests)
}

// testConcurrentSubmitsCapped: concurrent submits from several services
// (replicas) over one store never leave more than N pending requests on an
// account, whether or not the account has a row yet.
func testConcurrentSubmitsCapped(t *testing.T, h *harness) {
	const ws, limit, replicas, perReplica = "ws1", 5, 3, 12
	h.enable(ws, true)
	h.credit(ws, "old", 1)
	for _, acct := range []string{"fresh", "old"} {
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok, refused := 0, 0
		var errs []error
		for r := range replicas {
			svc := ledger.NewService(h.store, ledger.WithMaxPendingRequests(limit))
			for i := range perReplica {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := svc.SubmitRequest(h.ctx, ledger.SubmitInput{
						Workspace: ws, Account: acct, Amount: 1, PaymentMethod: ledger.MethodBankTransfer,
						IdempotencyKey: fmt.Sprintf("%s-%d-%d", acct, r, i),
					})
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						ok++
					case errors.Is(err, ledger.ErrTooManyPendingRequests):
						refused++
					default:
						errs = append(errs, err)
					}
				}()
			}
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("%s: unexpected errors: %v", acct, errs)
		}
		page, err := h.svc.ListRequests(h.ctx, ledger.ListRequestsInput{Workspace: ws, Account: acct, Status: ledger.StatusPending})
		if err != nil {
			t.Fatal(err)
		}
		if ok != limit || refused != replicas*perReplica-limit || len(page.Requests) != limit {
			t.Fatalf("%s: %d accepted, %d refused, %d pending; want %d accepted and pending", acct, ok, refused, len(page.Requests), limit)
		}
	}
}
