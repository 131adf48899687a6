package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/creditledger/creditledger/internal/pgtest"
)

func TestParseLSN(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]uint64{"0/0": 0, "0/16B3748": 0x16B3748, "1/0": 1 << 32, "A/FF": 0xA<<32 | 0xFF} {
		got, err := parseLSN(in)
		if err != nil || got != want {
			t.Errorf("parseLSN(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "16B3748", "x/1", "1/y", "1/100000000"} {
		if _, err := parseLSN(in); err == nil {
			t.Errorf("parseLSN(%q) accepted", in)
		}
	}
}

// readsObserver records where the service served its replica reads.
type readsObserver struct {
	countingObserver
	mu    sync.Mutex
	where []string
}

func (o *readsObserver) Read(where string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.where = append(o.where, where)
}

// take returns what was recorded since the last take.
func (o *readsObserver) take() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	w := o.where
	o.where = nil
	return w
}

// replicaRig is a primary with a streaming standby, a migrated database,
// and a service whose store reads from the standby.
type replicaRig struct {
	rep   *pgtest.Replicated
	db    string
	store *Store
	svc   *ledger.Service
	obs   *readsObserver
	n     int
}

func newReplicaRig(t *testing.T, opts Options) *replicaRig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := pgtest.StartReplicated(ctx)
	if err != nil {
		t.Fatalf("start a primary and a standby: %v", err)
	}
	t.Cleanup(rep.Stop)
	db, err := rep.Primary.CreateTemplate(ctx, "ledger", Migrate)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	opts.ReadURLs = []string{pgtest.RuntimeURL(rep.StandbyURL(db))}
	if opts.ReplicaCheckInterval == 0 {
		opts.ReplicaCheckInterval = 50 * time.Millisecond
	}
	s, err := Open(ctx, pgtest.RuntimeURL(rep.Primary.URL(db)), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	obs := &readsObserver{}
	r := &replicaRig{rep: rep, db: db, store: s, obs: obs, svc: ledger.NewService(s, ledger.WithObserver(obs))}
	if got := s.ReplicaStats(); len(got) != 1 || got[0].State != ReplicaStreaming || !got[0].Usable {
		t.Fatalf("a caught-up standby: stats %+v, want one streaming replica", got)
	}
	return r
}

func (r *replicaRig) credit(t *testing.T, account string, amount int64) ledger.PostResult {
	t.Helper()
	r.n++
	res, err := r.svc.Credit(context.Background(), ledger.CreditInput{
		Workspace: "ws", Account: account, Amount: amount,
		Reference: fmt.Sprintf("ref-%d", r.n), IdempotencyKey: fmt.Sprintf("key-%d", r.n),
	})
	if err != nil {
		t.Fatalf("Credit: %v", err)
	}
	return res
}

func (r *replicaRig) balance(t *testing.T, account string, opts ...ledger.ReadOption) int64 {
	t.Helper()
	b, err := r.svc.GetBalance(context.Background(), "ws", account, opts...)
	if err != nil {
		t.Fatalf("GetBalance: %v", err)
	}
	return b.Balance
}

func (r *replicaRig) caughtUp(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.rep.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	r.store.CheckReplicas(ctx)
}

func sameStrings(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// TestReplicaReads runs against a real primary and a real streaming
// standby: reads go to the standby, a read carrying min_version is
// answered by the primary while the standby has not replayed that version
// (its replay is paused, so it lags for certain), and a standby that lags
// by more than the bound in log bytes, stops, or is promoted serves
// nothing, without a caller noticing but for fresher answers.
func TestReplicaReads(t *testing.T) {
	ctx := context.Background()
	r := newReplicaRig(t, Options{MaxReplicaLagBytes: 16 << 10})

	first := r.credit(t, "a", 100)
	r.caughtUp(t)
	if got := r.balance(t, "a"); got != 100 {
		t.Fatalf("balance %d, want 100", got)
	}
	if w := r.obs.take(); !sameStrings(w, []string{ledger.ReadReplica}) {
		t.Fatalf("a caught-up standby served %v, want [replica]", w)
	}

	t.Run("read your writes while the standby lags", func(t *testing.T) {
		if err := r.rep.PauseReplay(ctx); err != nil {
			t.Fatal(err)
		}
		second := r.credit(t, "a", 50)
		if second.Version != first.Version+1 {
			t.Fatalf("version %d after %d", second.Version, first.Version)
		}
		// Without min_version the standby answers, with what it replayed.
		if got := r.balance(t, "a"); got != 100 {
			t.Errorf("balance from the paused standby %d, want 100 (its last replay)", got)
		}
		// With the version the write answered, the primary does.
		if got := r.balance(t, "a", ledger.MinVersion(second.Version)); got != 150 {
			t.Errorf("balance with min_version %d: %d, want 150", second.Version, got)
		}
		// An older version is on the standby already.
		if got := r.balance(t, "a", ledger.MinVersion(first.Version)); got != 100 {
			t.Errorf("balance with min_version %d: %d, want the standby's 100", first.Version, got)
		}
		page, err := r.svc.ListTransactions(ctx, ledger.ListTransactionsInput{Workspace: "ws", Account: "a", MinVersion: second.Version})
		if err != nil || len(page.Transactions) != 2 {
			t.Errorf("history with min_version: %d entries, %v; want 2", len(page.Transactions), err)
		}
		page, err = r.svc.ListTransactions(ctx, ledger.ListTransactionsInput{Workspace: "ws", Account: "a"})
		if err != nil || len(page.Transactions) != 1 {
			t.Errorf("history from the standby: %d entries, %v; want 1", len(page.Transactions), err)
		}
		st, err := r.svc.GetStatement(ctx, "ws", "a", time.Now().Add(-time.Hour), time.Now().Add(time.Hour), ledger.MinVersion(second.Version))
		if err != nil || st.ClosingBalance != 150 {
			t.Errorf("statement with min_version: closing %d, %v; want 150", st.ClosingBalance, err)
		}
		accts, err := r.svc.ListAccounts(ctx, ledger.ListAccountsInput{Workspace: "ws"})
		if err != nil || len(accts.Accounts) != 1 || accts.Accounts[0].Balance != 100 {
			t.Errorf("accounts from the standby: %+v, %v; want a at 100", accts.Accounts, err)
		}
		evs, err := r.svc.ListEvents(ctx, ledger.ListEventsInput{Workspace: "ws"})
		if err != nil || len(evs.Events) != 1 {
			t.Errorf("events from the standby: %d, %v; want the first credit's only", len(evs.Events), err)
		}
		want := []string{
			ledger.ReadReplica, ledger.ReadPrimaryBehind, ledger.ReadReplica, ledger.ReadPrimaryBehind,
			ledger.ReadReplica, ledger.ReadPrimaryBehind, ledger.ReadReplica, ledger.ReadReplica,
		}
		if w := r.obs.take(); !sameStrings(w, want) {
			t.Errorf("served by %v, want %v", w, want)
		}
		// A version the account never reached is refused, not answered stale.
		_, err = r.svc.GetBalance(ctx, "ws", "a", ledger.MinVersion(second.Version+1))
		if e := ledger.ErrorOf(err); e.Code != ledger.CodeAborted || e.Reason != ledger.ReasonVersionMismatch {
			t.Errorf("min_version above the account's version: %v, want ABORTED VERSION_MISMATCH", err)
		}
		if _, err := r.svc.GetBalance(ctx, "ws", "a", ledger.MinVersion(-1)); ledger.ErrorOf(err).Code != ledger.CodeInvalid {
			t.Errorf("negative min_version: %v, want INVALID_ARGUMENT", err)
		}
		r.obs.take()
	})

	t.Run("a standby further behind than the bound in log bytes serves nothing", func(t *testing.T) {
		// Replay is still paused: write well past the 16 KiB bound.
		for i := 0; i < 40; i++ {
			r.credit(t, fmt.Sprintf("bulk-%02d", i), 1+int64(i))
		}
		r.store.CheckReplicas(ctx)
		st := r.store.ReplicaStats()[0]
		if st.State != ReplicaLagging || st.Usable || st.LagBytes <= 16<<10 {
			t.Fatalf("stats %+v, want lagging by more than 16384 bytes", st)
		}
		if got := r.balance(t, "a"); got != 150 {
			t.Errorf("balance %d, want the primary's 150", got)
		}
		if w := r.obs.take(); !sameStrings(w, []string{ledger.ReadPrimaryNoReplica}) {
			t.Errorf("served by %v, want [primary_no_replica]", w)
		}
		if err := r.rep.ResumeReplay(ctx); err != nil {
			t.Fatal(err)
		}
		r.caughtUp(t)
		st = r.store.ReplicaStats()[0]
		if st.State != ReplicaStreaming || !st.Usable || st.LagBytes > 16<<10 {
			t.Fatalf("after catching up: %+v, want streaming", st)
		}
		if got := r.balance(t, "a"); got != 150 {
			t.Errorf("balance %d from the caught-up standby, want 150", got)
		}
		if w := r.obs.take(); !sameStrings(w, []string{ledger.ReadReplica}) {
			t.Errorf("served by %v, want [replica]", w)
		}
	})

	t.Run("a standby that stops", func(t *testing.T) {
		if err := r.rep.StopStandby(ctx); err != nil {
			t.Fatal(err)
		}
		r.credit(t, "a", 5)
		for i := 0; i < 3; i++ {
			if got := r.balance(t, "a"); got != 155 {
				t.Fatalf("balance %d with the standby down, want the primary's 155", got)
			}
		}
		for _, w := range r.obs.take() {
			if w == ledger.ReadReplica {
				t.Fatalf("a stopped standby served a read")
			}
		}
		if st := r.store.ReplicaStats()[0]; st.State != ReplicaDown || st.Usable {
			t.Fatalf("stats %+v, want down", st)
		}
		if err := r.rep.StartStandby(ctx); err != nil {
			t.Fatal(err)
		}
		r.caughtUp(t)
		if got := r.balance(t, "a"); got != 155 {
			t.Errorf("balance %d from the restarted standby, want 155", got)
		}
		if w := r.obs.take(); !sameStrings(w, []string{ledger.ReadReplica}) {
			t.Errorf("served by %v, want [replica]", w)
		}
	})

	t.Run("a standby promoted", func(t *testing.T) {
		if err := r.rep.Promote(ctx); err != nil {
			t.Fatal(err)
		}
		r.store.CheckReplicas(ctx)
		if st := r.store.ReplicaStats()[0]; st.State != ReplicaPromoted || st.Usable {
			t.Fatalf("stats %+v, want promoted", st)
		}
		r.credit(t, "a", 1) // on the primary only: the promoted copy follows nobody
		if got := r.balance(t, "a"); got != 156 {
			t.Errorf("balance %d, want the primary's 156", got)
		}
		if w := r.obs.take(); !sameStrings(w, []string{ledger.ReadPrimaryNoReplica}) {
			t.Errorf("served by %v, want [primary_no_replica]", w)
		}
		rep, err := ledger.Verify(ctx, r.store)
		if err != nil || !rep.OK() {
			t.Errorf("verify: %v %v", err, rep.Problems)
		}
	})
}

// TestReplicaRoleRefused: a replica reached as a role that row-level
// security does not hold serves nothing unless that is allowed, as for the
// primary.
func TestReplicaRoleRefused(t *testing.T) {
	ctx := context.Background()
	r := newReplicaRig(t, Options{})
	owner := Options{ReadURLs: []string{r.rep.StandbyURL(r.db)}, ReplicaCheckInterval: time.Hour}
	s, err := Open(ctx, pgtest.RuntimeURL(r.rep.Primary.URL(r.db)), owner)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	if st := s.ReplicaStats()[0]; st.State != ReplicaRefused || st.Usable {
		t.Errorf("a superuser replica: %+v, want refused", st)
	}
	owner.AllowPrivilegedRole = true
	s2, err := Open(ctx, pgtest.RuntimeURL(r.rep.Primary.URL(r.db)), owner)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s2.Close() }()
	if st := s2.ReplicaStats()[0]; st.State != ReplicaStreaming {
		t.Errorf("allowed: %+v, want streaming", st)
	}
}
