package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/internal/ledger"
)

// hotAccounts are the accounts the concurrency tests fight over, sorted.
var hotAccounts = []string{"acct-0", "acct-1", "acct-2", "acct-3", "acct-4", "acct-5"}

// subset picks a random non-empty subset of hotAccounts, in their order.
func subset(rng *rand.Rand) []string {
	var out []string
	for _, a := range hotAccounts {
		if rng.IntN(2) == 0 {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		out = append(out, hotAccounts[rng.IntN(len(hotAccounts))])
	}
	return out
}

// deadlocks returns the deadlocks PostgreSQL detected in the database at
// url since it was created. A backend reports its counts when it goes idle for a while or ends,
// so the caller closes its pools first, and deadlocks waits for every
// other session of the database to end.
func deadlocks(tb testing.TB, url string) int64 {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	for deadline := time.Now().Add(30 * time.Second); ; {
		var others int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&others); err != nil {
			tb.Fatal(err)
		}
		if others == 0 {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d sessions still open", others)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var n int64
	if _, err := conn.Exec(ctx, `SELECT pg_stat_clear_snapshot()`); err != nil {
		tb.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// tally is what a test acknowledged on one account.
type tally struct{ delta, entries int64 }

func checkTallies(tb testing.TB, s ledger.Store, start int64, startVersion int64, tallies ...map[string]tally) {
	tb.Helper()
	total := map[string]tally{}
	for _, m := range tallies {
		for a, t := range m {
			total[a] = tally{total[a].delta + t.delta, total[a].entries + t.entries}
		}
	}
	err := s.View(context.Background(), func(ctx context.Context, tx ledger.ReadTx) error {
		for _, id := range hotAccounts {
			a, err := tx.Account(ctx, ws, id)
			if err != nil {
				return err
			}
			if want := start + total[id].delta; a.Balance != want {
				tb.Errorf("%s: balance %d, acknowledged %d", id, a.Balance, want)
			}
			if want := startVersion + total[id].entries; a.Version != want {
				tb.Errorf("%s: version %d, acknowledged %d entries", id, a.Version, want)
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// TestConcurrentBatches: 16 workers on two replicas (two Stores on one
// database) write batches that move random, overlapping subsets of six
// accounts by one to three entries each, deciding on what the batch read.
// The batches serialise on the account locks: none fails (not even with a
// conflict), none deadlocks, and the balances are exactly what was
// acknowledged.
func TestConcurrentBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := server.NewDatabase(t, template)
	replicas := []*Store{openURL(t, url, Options{MaxConns: 6}), openURL(t, url, Options{MaxConns: 6})}

	// Every account exists at 100: the storm is about locks, not creation races.
	set := ledger.WriteSet{Workspace: ws, Accounts: hotAccounts}
	eff := &ledger.Effects{}
	for _, a := range hotAccounts {
		eff.Accounts = append(eff.Accounts, create(a, 100, 1))
		eff.Transactions = append(eff.Transactions, entry("init-"+a, a, ledger.TypeIn, 100, 100, 1))
	}
	mustWrite(t, replicas[0], set, eff)

	const workers, rounds = 16, 10
	tallies := make([]map[string]tally, workers)
	errs := make([]error, workers)
	var refusals atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			s := replicas[w%len(replicas)]
			rng := rand.New(rand.NewPCG(uint64(w), 42)) //nolint:gosec // test data
			mine := map[string]tally{}
			tallies[w] = mine
			for r := range rounds {
				accts := subset(rng)
				type op struct {
					key    string
					debit  bool
					amount int64
				}
				plan := map[string][]op{}
				set := ledger.WriteSet{Workspace: ws, Accounts: accts}
				for _, a := range accts {
					for i := range 1 + rng.IntN(3) {
						o := op{key: fmt.Sprintf("w%02d-r%02d-%s-%d", w, r, a, i), debit: rng.IntN(3) == 0, amount: 1 + rng.Int64N(40)}
						plan[a] = append(plan[a], o)
						set.Keys = append(set.Keys, o.key) // sorted: accounts, then i
					}
				}
				var got map[string]tally
				decide := func(snap *ledger.Snapshot) (*ledger.Effects, error) {
					got = map[string]tally{}
					eff := &ledger.Effects{}
					for _, id := range accts {
						a, ok := snap.Accounts[id]
						if !ok {
							return nil, fmt.Errorf("account %s not in the snapshot", id)
						}
						from := a.Version
						for _, o := range plan[id] {
							if _, done := snap.Keys[o.key]; done {
								return nil, fmt.Errorf("key %s recorded before its batch", o.key)
							}
							typ, bal := ledger.TypeIn, a.Balance+o.amount
							if o.debit {
								if a.Balance < o.amount {
									refusals.Add(1)
									continue
								}
								typ, bal = ledger.TypeOut, a.Balance-o.amount
							}
							a.Version++
							a.Balance = bal
							a.UpdateTime = t0
							tx := ledger.Transaction{
								ID: o.key, Workspace: ws, Account: id, Type: typ, Kind: ledger.KindAdjustment, Amount: o.amount,
								BalanceAfter: bal, AccountVersion: a.Version, IdempotencyKey: o.key, CreateTime: t0,
							}
							op := ledger.OpCredit
							if o.debit {
								op = ledger.OpDebit
							}
							eff.Transactions = append(eff.Transactions, tx)
							eff.Keys = append(eff.Keys, record(o.key, op, tx.ID, ""))
							d := o.amount
							if o.debit {
								d = -d
							}
							got[id] = tally{got[id].delta + d, got[id].entries + 1}
						}
						if a.Version > from {
							eff.Accounts = append(eff.Accounts, ledger.AccountMove{Account: a, FromVersion: from})
						}
					}
					return eff, nil
				}
				// No retry: with every account existing and every key new, a
				// batch only waits for the locks of those before it.
				if err := s.Write(ctx, set, decide); err != nil {
					errs[w] = fmt.Errorf("round %d: %w", r, err)
					return
				}
				for a, t := range got {
					mine[a] = tally{mine[a].delta + t.delta, mine[a].entries + t.entries}
				}
			}
		})
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Errorf("worker %d: %v", w, err)
		}
	}
	checkTallies(t, replicas[1], 100, 1, tallies...)
	rep := verifyLedger(t, replicas[0])
	t.Logf("%d entries, %d debits refused", rep.Transactions, refusals.Load())
	for _, s := range replicas {
		_ = s.Close()
	}
	if n := deadlocks(t, url); n != 0 { // a fresh database: its counter started at 0
		t.Errorf("PostgreSQL detected %d deadlocks", n)
	}
}

// countingObserver counts the service's events.
type countingObserver struct {
	conflicts, batches, multi, ops atomic.Int64
	outcomes                       sync.Map // outcome → *atomic.Int64
}

func (*countingObserver) Posted(ledger.Transaction)        {}
func (*countingObserver) Refused(ledger.Operation, string) {}
func (*countingObserver) Replayed(ledger.Operation)        {}
func (*countingObserver) Waiting(int)                      {}
func (*countingObserver) Hold(ledger.HoldStatus)           {}
func (*countingObserver) Reversed(ledger.Kind)             {}
func (*countingObserver) EventsWritten([]ledger.Event)     {}
func (*countingObserver) Read(string)                      {}
func (o *countingObserver) Conflict(ledger.Operation)      { o.conflicts.Add(1) }
func (o *countingObserver) Batch(ops int, outcome string, _ time.Duration) {
	o.batches.Add(1)
	o.ops.Add(int64(ops))
	if ops > 1 {
		o.multi.Add(1)
	}
	n, _ := o.outcomes.LoadOrStore(outcome, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
}

// TestConcurrentService: two replicas (a Service over each of two Stores on
// one database), 16 clients each posting credits and debits with unique
// keys on random subsets of six accounts, all at once. Every operation is
// posted or refused for insufficient credits; nothing conflicts or
// deadlocks; the balances are the acknowledged sums.
func TestConcurrentService(t *testing.T) {
	t.Parallel()
	url := server.NewDatabase(t, template)
	testConcurrentService(t, url, func() *Store { return openURL(t, url, Options{MaxConns: 6}) }, nil)
}

// TestConcurrentServiceThroughPgBouncer is TestConcurrentService with both
// replicas' 12 connections multiplexed by pgbouncer in transaction mode
// onto pgtest.BouncerPoolSize server connections.
func TestConcurrentServiceThroughPgBouncer(t *testing.T) {
	t.Parallel()
	url := server.NewDatabase(t, template)
	b := server.Bouncer(t)
	open := func() *Store { return openURL(t, b.URL(url), Options{MaxConns: 6, Pooler: PoolerTransaction}) }
	// The bouncer's server sessions must end before deadlocks are counted.
	testConcurrentService(t, url, open, b.Stop)
}

// testConcurrentService runs TestConcurrentService on the database at url
// (the owner's), with stores from open; closed, when not nil, runs once
// the stores are closed.
func testConcurrentService(t *testing.T, url string, open func() *Store, closed func()) {
	ctx := context.Background()
	obs := &countingObserver{}
	var svcs []*ledger.Service
	for range 2 {
		s := open()
		svcs = append(svcs, ledger.NewService(s, ledger.WithObserver(obs),
			ledger.WithBatching(ledger.BatchOptions{PerWorkspace: 3, MaxInFlight: 6})))
	}
	if _, err := svcs[0].UpdateSettings(ctx, ws, ledger.Settings{CreditPaymentsEnabled: true}, nil); err != nil {
		t.Fatal(err)
	}
	for _, a := range hotAccounts {
		if _, err := svcs[1].Credit(ctx, ledger.CreditInput{Workspace: ws, Account: a, Amount: 100, IdempotencyKey: "init-" + a}); err != nil {
			t.Fatal(err)
		}
	}

	const clients, rounds = 16, 10
	tallies := make([]map[string]tally, clients)
	errs := make(chan error, clients*rounds*len(hotAccounts))
	var refused atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			svc := svcs[c%len(svcs)]
			rng := rand.New(rand.NewPCG(uint64(c), 4242)) //nolint:gosec // test data
			mine := map[string]tally{}
			tallies[c] = mine
			for r := range rounds {
				accts := subset(rng)
				deltas := make([]int64, len(accts))
				var round sync.WaitGroup
				for i, a := range accts {
					debit, amount := rng.IntN(3) == 0, 1+rng.Int64N(40)
					key := fmt.Sprintf("c%02d-r%02d-%s", c, r, a)
					round.Go(func() {
						if debit {
							_, err := svc.Debit(ctx, ledger.DebitInput{Workspace: ws, Account: a, Amount: amount, IdempotencyKey: key})
							switch {
							case errors.Is(err, ledger.ErrInsufficientCredits):
								refused.Add(1)
								deltas[i] = 0
							case err != nil:
								errs <- fmt.Errorf("debit %s: %w", key, err)
							default:
								deltas[i] = -amount
							}
							return
						}
						if _, err := svc.Credit(ctx, ledger.CreditInput{Workspace: ws, Account: a, Amount: amount, IdempotencyKey: key}); err != nil {
							errs <- fmt.Errorf("credit %s: %w", key, err)
							return
						}
						deltas[i] = amount
					})
				}
				round.Wait()
				for i, a := range accts {
					if deltas[i] != 0 {
						mine[a] = tally{mine[a].delta + deltas[i], mine[a].entries + 1}
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := obs.conflicts.Load(); n != 0 {
		t.Errorf("%d ops decided again after conflicts", n)
	}
	store := svcs[0].Store()
	checkTallies(t, store, 100, 1, tallies...)
	rep := verifyLedger(t, store)
	t.Logf("%d entries, %d debits refused; %d batches (%d of several ops) for %d ops", rep.Transactions, refused.Load(),
		obs.batches.Load(), obs.multi.Load(), obs.ops.Load())
	obs.outcomes.Range(func(k, v any) bool {
		if k != "committed" {
			t.Errorf("%d batches %s", v.(*atomic.Int64).Load(), k)
		}
		return true
	})
	for _, svc := range svcs {
		_ = svc.Store().Close()
	}
	if closed != nil {
		closed()
	}
	if n := deadlocks(t, url); n != 0 { // a fresh database: its counter started at 0
		t.Errorf("PostgreSQL detected %d deadlocks", n)
	}
}
