//go:build linux

package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/creditledger/creditledger/internal/pgtest"
)

const (
	failoverWorkers  = 12
	failoverAccounts = 4
	// failoverLoad is the load before the kill and again after ledgerd's
	// first write on the new primary.
	failoverLoad = 2 * time.Second
	// failoverPromote bounds the time from the kill to a new primary: the
	// test's monitor settings make it ~10 s; a loaded machine may take
	// several times that.
	failoverPromote = 90 * time.Second
	// failoverRecovery bounds the time from the promotion to ledgerd's
	// first acknowledged write.
	failoverRecovery = 30 * time.Second
)

// TestFailoverNothingLost runs the real ledgerd on a pg_auto_failover
// formation (a monitor, a primary and a synchronous secondary) through a
// multi-host URL with target_session_attrs=read-write, and SIGKILLs the
// primary server (its keeper and every PostgreSQL process) under
// concurrent credits and debits. The monitor promotes the secondary;
// ledgerd keeps running. Asserts: every call made while no server
// accepted writes was answered UNAVAILABLE (and there were some); a write
// is acknowledged within failoverRecovery of the promotion, by the same
// ledgerd process; no client saw a code outside the contract (no
// INTERNAL); every acknowledged credit and debit is in the ledger exactly
// once, as acknowledged, and retrying its key replays the same
// transaction; balances are their entries' sums and conserve what the
// clients were told; `ledgerd verify` passes on the new primary.
func TestFailoverNothingLost(t *testing.T) {
	start := time.Now()
	f := pgtest.StartFormation(t)
	t.Logf("formation ready in %v: %s", time.Since(start).Round(time.Millisecond), f.URL("ledger"))
	dbURL := f.CreateDatabase(t, "ledger")
	ledgerdCmd(t, dbURL, "migrate")
	p := startLedgerd(t, dbURL, faultEnv()...)
	c := dialFault(t, p.field(t, "grpc_addr"))
	r := newFaultRun(t, "failover", failoverAccounts, c)
	r.setup()

	stopLoad, done := r.loadUntilStopped(failoverWorkers)
	defer stopLoad()
	time.Sleep(failoverLoad)
	old := f.Primary(t)
	ackedBefore := int(r.acked.Load())
	f.Kill(t, old)
	down := time.Now()
	promo := f.WaitPromoted(t, old, failoverPromote)
	t.Logf("%s SIGKILLed after %d acknowledged operations; %s promoted: refused writes until %v after the kill, accepted them %v after it",
		old.Name, ackedBefore, promo.Node.Name, promo.NotWritableAt.Sub(down).Round(time.Millisecond),
		promo.WritableAt.Sub(down).Round(time.Millisecond))
	recovered, err := r.firstAckAfter(promo.WritableAt, failoverRecovery, done)
	if err != nil {
		t.Fatalf("after the promotion: %v\n%s", err, p.logs)
	}
	t.Logf("first write acknowledged by the same ledgerd %v after the kill", recovered.Sub(down).Round(time.Millisecond))
	time.Sleep(failoverLoad)
	stopLoad()
	<-done
	if isDone(p.done) {
		t.Fatalf("ledgerd exited during the failover (%v):\n%s", p.err, p.logs)
	}
	// With its only standby gone, the new primary (wait_primary) runs
	// without synchronous replication rather than refuse writes.
	t.Logf("synchronous_standby_names on the new primary: %q", f.SynchronousStandbyNames(t, promo.Node))

	// Calls made entirely while no server accepted writes: UNAVAILABLE only.
	r.mu.Lock()
	during, wrong := 0, map[string]int{}
	for _, a := range r.attempts {
		if a.start.After(down) && a.end.Before(promo.NotWritableAt) {
			during++
			if a.code != codes.Unavailable {
				wrong[a.code.String()+" "+a.reason]++
			}
		}
	}
	r.mu.Unlock()
	if during == 0 {
		t.Errorf("no call was made while no server accepted writes: the failover was not exercised")
	}
	if len(wrong) > 0 {
		t.Errorf("calls made during the failover were answered other than UNAVAILABLE: %v", wrong)
	}
	st := r.stats()
	t.Logf("%d calls during the failover; %s", during, st)
	if st.acked <= ackedBefore {
		t.Errorf("no operation acknowledged after the failover (%d before, %d in all)", ackedBefore, st.acked)
	}
	r.requireCleanAnswers()
	r.audit(c)
	replayAcknowledged(t, r, c)
	verifyLedger(t, dbURL)
	t.Logf("whole test: %v", time.Since(start).Round(time.Millisecond))
}

// replayAcknowledged sends every acknowledged credit and debit of r again,
// with its key and request: each must be answered as a replay of the
// transaction its client was given.
func replayAcknowledged(t *testing.T, r *faultRun, c ledgerConn) {
	t.Helper()
	r.mu.Lock()
	var acked []*faultOp
	for _, o := range r.ops {
		if o.acked && (o.kind == opCredit || o.kind == opDebit) {
			acked = append(acked, o)
		}
	}
	r.mu.Unlock()
	ops := make(chan *faultOp)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures int
	)
	for range 8 {
		wg.Go(func() {
			for o := range ops {
				if err := replayOnce(t.Context(), r.ws, c, o); err != nil {
					mu.Lock()
					if failures++; failures <= 10 {
						t.Errorf("replay %s (%s, transaction %s): %v", o.key, o.kind, o.txID, err)
					}
					mu.Unlock()
				}
			}
		})
	}
	for _, o := range acked {
		ops <- o
	}
	close(ops)
	wg.Wait()
	if failures > 10 {
		t.Errorf("… %d replays failed in all", failures)
	}
	t.Logf("%d acknowledged credits and debits replayed", len(acked))
}

// replayOnce retries o and checks the answer.
func replayOnce(ctx context.Context, ws string, c ledgerConn, o *faultOp) error {
	ctx, cancel := context.WithTimeout(ctx, faultAttemptTimeout)
	defer cancel()
	tx, replayed, err := post(ctx, ws, c, o)
	switch {
	case err != nil:
		return err
	case !replayed:
		return fmt.Errorf("answered as a new operation, transaction %s", tx.GetId())
	case tx.GetId() != o.txID:
		return fmt.Errorf("replayed as transaction %s", tx.GetId())
	}
	return nil
}
