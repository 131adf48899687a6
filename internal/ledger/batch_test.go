package ledger_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/grpcserver/fakestore"
	"github.com/creditledger/creditledger/internal/ledger"
)

// gatedStore wraps a store so that a test decides when batches run and how
// their commit ends.
type gatedStore struct {
	ledger.Store
	mu      sync.Mutex
	gate    chan struct{}                                        // when set, Write waits for it to close
	entered chan struct{}                                        // receives once per Write that reached the gate
	fail    func(set ledger.WriteSet, eff *ledger.Effects) error // when set, the commit of a decided batch fails with its error
	writes  int
}

func (g *gatedStore) Write(ctx context.Context, set ledger.WriteSet, decide func(*ledger.Snapshot) (*ledger.Effects, error)) error {
	g.mu.Lock()
	gate, entered, fail := g.gate, g.entered, g.fail
	g.writes++
	g.mu.Unlock()
	if gate != nil {
		if entered != nil {
			entered <- struct{}{}
		}
		<-gate
	}
	if fail == nil {
		return g.Store.Write(ctx, set, decide)
	}
	// Decide on the real state, then fail instead of committing.
	var failure error
	err := g.Store.Write(ctx, set, func(snap *ledger.Snapshot) (*ledger.Effects, error) {
		eff, err := decide(snap)
		if err != nil {
			return nil, err
		}
		if failure = fail(set, eff); failure != nil {
			return nil, failure
		}
		return eff, nil
	})
	if failure != nil {
		return failure
	}
	return err
}

func (g *gatedStore) set(fn func(g *gatedStore)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	fn(g)
}

// waitObserver counts the ops waiting for a batch.
type waitObserver struct {
	mu        sync.Mutex
	waiting   int
	conflicts int
	changed   chan struct{}
}

func newWaitObserver() *waitObserver { return &waitObserver{changed: make(chan struct{}, 1024)} }

func (o *waitObserver) Posted(ledger.Transaction)        {}
func (o *waitObserver) Refused(ledger.Operation, string) {}
func (o *waitObserver) Replayed(ledger.Operation)        {}
func (o *waitObserver) Batch(int, string, time.Duration) {}
func (o *waitObserver) Conflict(ledger.Operation)        { o.mu.Lock(); o.conflicts++; o.mu.Unlock() }
func (o *waitObserver) Hold(ledger.HoldStatus)           {}
func (o *waitObserver) Reversed(ledger.Kind)             {}
func (o *waitObserver) EventsWritten([]ledger.Event)     {}
func (o *waitObserver) Read(string)                      {}

func (o *waitObserver) Waiting(d int) {
	o.mu.Lock()
	o.waiting += d
	o.mu.Unlock()
	o.changed <- struct{}{}
}

// waitFor blocks until n ops are queued.
func (o *waitObserver) waitFor(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		o.mu.Lock()
		w := o.waiting
		o.mu.Unlock()
		if w == n {
			return
		}
		select {
		case <-o.changed:
		case <-timeout:
			t.Fatalf("%d ops waiting, want %d", w, n)
		}
	}
}

type outcome struct {
	res ledger.PostResult
	err error
}

// harnessed returns a service whose workspace runs one batch at a time on
// a gated in-memory store.
func harnessed(t *testing.T) (*ledger.Service, *gatedStore, *waitObserver) {
	t.Helper()
	g := &gatedStore{Store: fakestore.New()}
	obs := newWaitObserver()
	svc := ledger.NewService(g, ledger.WithObserver(obs), ledger.WithBatching(ledger.BatchOptions{PerWorkspace: 1}))
	ctx := context.Background()
	if _, err := svc.UpdateSettings(ctx, "ws", ledger.Settings{CreditPaymentsEnabled: true}, []string{"credit_payments_enabled"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Credit(ctx, ledger.CreditInput{Workspace: "ws", Account: "a", Amount: 100, IdempotencyKey: "fund"}); err != nil {
		t.Fatal(err)
	}
	return svc, g, obs
}

// hold makes the next batch wait at the gate and returns once it does, with
// the op that occupies it running in the background.
func hold(t *testing.T, svc *ledger.Service, g *gatedStore) (release func(), first <-chan outcome) {
	t.Helper()
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	g.set(func(g *gatedStore) { g.gate, g.entered = gate, entered })
	out := make(chan outcome, 1)
	go func() {
		res, err := svc.Credit(context.Background(), ledger.CreditInput{Workspace: "ws", Account: "other", Amount: 1, IdempotencyKey: "first"})
		out <- outcome{res, err}
	}()
	<-entered
	g.set(func(g *gatedStore) { g.gate, g.entered = nil, nil })
	return func() { close(gate) }, out
}

func debitAsync(svc *ledger.Service, key string, amount int64) <-chan outcome {
	out := make(chan outcome, 1)
	go func() {
		res, err := svc.Debit(context.Background(), ledger.DebitInput{Workspace: "ws", Account: "a", Amount: amount, IdempotencyKey: key})
		out <- outcome{res, err}
	}()
	return out
}

// A batch whose commit fails answers every op UNAVAILABLE, the refused ones
// too: the refusal was decided against writes that never committed.
func TestFailedCommitAnswersEveryOpUnavailable(t *testing.T) {
	t.Parallel()
	svc, g, obs := harnessed(t)
	release, first := hold(t, svc, g)
	all := debitAsync(svc, "all", 100)
	obs.waitFor(t, 1)
	one := debitAsync(svc, "one", 1)
	obs.waitFor(t, 2)

	// The batch behind the held one (which read no failure setting when
	// it started) fails at commit.
	g.set(func(g *gatedStore) {
		g.fail = func(ledger.WriteSet, *ledger.Effects) error {
			return ledger.UnavailableError(errors.New("connection lost after COMMIT was sent"))
		}
	})
	release()
	if o := <-first; o.err != nil {
		t.Fatalf("held op: %v", o.err)
	}
	for name, ch := range map[string]<-chan outcome{"debit 100 (posted in the batch)": all, "debit 1 (refused in the batch)": one} {
		o := <-ch
		if e := ledger.ErrorOf(o.err); o.err == nil || e.Code != ledger.CodeUnavailable {
			t.Errorf("%s: got %+v, %v; want UNAVAILABLE", name, o.res, o.err)
		}
	}
	b, err := svc.GetBalance(context.Background(), "ws", "a")
	if err != nil || b.Balance != 100 || b.Version != 1 {
		t.Fatalf("balance after the failed commit = %+v, %v; want 100 at version 1", b, err)
	}

	// The same keys resolve it: evaluated afresh, in the order they come.
	g.set(func(g *gatedStore) { g.fail = nil })
	if _, err := svc.Debit(context.Background(), ledger.DebitInput{Workspace: "ws", Account: "a", Amount: 1, IdempotencyKey: "one"}); err != nil {
		t.Fatalf("retry of debit 1: %v", err)
	}
	_, err = svc.Debit(context.Background(), ledger.DebitInput{Workspace: "ws", Account: "a", Amount: 100, IdempotencyKey: "all"})
	if ledger.ReasonOf(err) != ledger.ReasonInsufficientCredits {
		t.Fatalf("retry of debit 100 after debit 1: %v, want INSUFFICIENT_CREDITS", err)
	}
}

// The decision case: an ACCEPT and a second decision of the same request in
// one batch whose commit fails; the request must still be decidable.
func TestFailedCommitLeavesRequestPending(t *testing.T) {
	t.Parallel()
	svc, g, obs := harnessed(t)
	ctx := context.Background()
	sub, err := svc.SubmitRequest(ctx, ledger.SubmitInput{
		Workspace: "ws", Account: "a", Amount: 50,
		PaymentMethod: ledger.MethodBankTransfer, IdempotencyKey: "submit",
	})
	if err != nil {
		t.Fatal(err)
	}
	decide := func(key string, d ledger.Decision) <-chan error {
		out := make(chan error, 1)
		go func() {
			_, err := svc.DecideRequest(ctx, ledger.DecideInput{
				Workspace: "ws", RequestID: sub.Request.ID, Decision: d,
				DecidedBy: "admin", IdempotencyKey: key,
			})
			out <- err
		}()
		return out
	}
	release, first := hold(t, svc, g)
	accept := decide("accept", ledger.DecisionAccept)
	obs.waitFor(t, 1)
	reject := decide("reject", ledger.DecisionReject)
	obs.waitFor(t, 2)
	g.set(func(g *gatedStore) {
		g.fail = func(ledger.WriteSet, *ledger.Effects) error {
			return ledger.UnavailableError(errors.New("commit failed"))
		}
	})
	release()
	<-first
	for name, ch := range map[string]<-chan error{"accept": accept, "reject (already decided in the batch)": reject} {
		if err := <-ch; ledger.ErrorOf(err).Code != ledger.CodeUnavailable {
			t.Errorf("%s: %v, want UNAVAILABLE", name, err)
		}
	}
	r, err := svc.GetRequest(ctx, "ws", sub.Request.ID)
	if err != nil || r.Status != ledger.StatusPending {
		t.Fatalf("request after the failed commit: %+v, %v; want PENDING", r.Status, err)
	}
}

// A batch that the database refuses for one op's sake is applied again in
// halves: the other ops are not failed with it.
func TestRefusedBatchIsSplit(t *testing.T) {
	t.Parallel()
	svc, g, obs := harnessed(t)
	release, first := hold(t, svc, g)
	var outs []<-chan outcome
	for i, key := range []string{"ok-1", "poison", "ok-2", "ok-3"} {
		outs = append(outs, debitAsync(svc, key, 1))
		obs.waitFor(t, i+1)
	}
	g.set(func(g *gatedStore) {
		g.fail = func(_ ledger.WriteSet, eff *ledger.Effects) error {
			for _, k := range eff.Keys {
				if k.Key == ledger.PostKey("a", "poison") {
					return ledger.InternalError(errors.New("the database refused the poison"))
				}
			}
			return nil
		}
	})
	release()
	<-first
	for i, ch := range outs {
		o := <-ch
		if i == 1 {
			if ledger.ErrorOf(o.err).Code != ledger.CodeInternal {
				t.Errorf("poison: %v, want INTERNAL", o.err)
			}
			continue
		}
		if o.err != nil {
			t.Errorf("op %d: %v, want posted", i, o.err)
		}
	}
	b, _ := svc.GetBalance(context.Background(), "ws", "a")
	if b.Balance != 97 {
		t.Fatalf("balance = %d, want 97 (three debits of 1 posted)", b.Balance)
	}
}

// A conflict (another replica won a key or an account) is decided again
// from fresh state, and the op's caller never sees it.
func TestConflictIsDecidedAgain(t *testing.T) {
	t.Parallel()
	svc, g, obs := harnessed(t)
	conflicts := 0
	g.set(func(g *gatedStore) {
		g.fail = func(ledger.WriteSet, *ledger.Effects) error {
			if conflicts < 2 {
				conflicts++
				return ledger.ConflictError(errors.New("duplicate key"))
			}
			return nil
		}
	})
	res, err := svc.Debit(context.Background(), ledger.DebitInput{Workspace: "ws", Account: "a", Amount: 10, IdempotencyKey: "k"})
	if err != nil || res.Balance != 90 {
		t.Fatalf("debit after two conflicts: %+v, %v", res, err)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.conflicts != 2 {
		t.Fatalf("conflicts observed = %d, want 2", obs.conflicts)
	}
}

// Ops of one batch see the earlier ops of the batch, in arrival order, and
// a repeated key in the same batch replays.
func TestBatchDecidesInArrivalOrder(t *testing.T) {
	t.Parallel()
	svc, g, obs := harnessed(t)
	release, first := hold(t, svc, g)
	a := debitAsync(svc, "d1", 60)
	obs.waitFor(t, 1)
	b := debitAsync(svc, "d2", 60)
	obs.waitFor(t, 2)
	c := debitAsync(svc, "d1", 60)
	obs.waitFor(t, 3)
	release()
	<-first
	oa, ob, oc := <-a, <-b, <-c
	if oa.err != nil || oa.res.Balance != 40 {
		t.Fatalf("first debit: %+v %v", oa.res, oa.err)
	}
	if ledger.ReasonOf(ob.err) != ledger.ReasonInsufficientCredits {
		t.Fatalf("second debit: %v, want INSUFFICIENT_CREDITS against the first", ob.err)
	}
	if oc.err != nil || !oc.res.Replayed || oc.res.Transaction.ID != oa.res.Transaction.ID {
		t.Fatalf("repeated key: %+v %v, want a replay of the first", oc.res, oc.err)
	}
}
