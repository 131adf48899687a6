package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPGProxyHoldAndArm proves the proxy's deterministic controls before
// TestFaultRefusalNeverPersists relies on them: while held, a write
// transaction begun by simple query or by a pipelined batch is stopped
// before its BEGIN reaches the server, while pings, reads and read-only
// transactions flow, and release lets both commit; an armed cut lets
// exactly the given number of write COMMITs through (read-only ones do not
// count), cuts the next one before or after forwarding it, reports which,
// and leaves the COMMITs after it alone.
func TestPGProxyHoldAndArm(t *testing.T) {
	t.Parallel()
	dbURL := postgresDatabase(t)
	direct := pgConnect(t, dbURL)
	if _, err := direct.Exec(t.Context(), `CREATE TABLE held (k int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	proxy, proxyURL := startPGProxy(t, dbURL)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	present := func(k int) bool {
		t.Helper()
		var n int
		if err := direct.QueryRow(ctx, `SELECT count(*) FROM held WHERE k = $1`, k).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	simple := func(c *pgx.Conn, k int) error {
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO held VALUES ($1)`, k); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	pipelined := func(c *pgx.Conn, k int) error {
		b := &pgx.Batch{}
		b.Queue(`BEGIN`)
		b.Queue(`INSERT INTO held VALUES ($1)`, k)
		b.Queue(`COMMIT`)
		return c.SendBatch(ctx, b).Close()
	}
	readOnly := func(c *pgx.Conn) error {
		tx, err := c.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
		if err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM held`).Scan(&n); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	c1, c2, c3 := pgConnect(t, proxyURL), pgConnect(t, proxyURL), pgConnect(t, proxyURL)

	// Hold: both ways of beginning stop, everything else flows.
	proxy.hold()
	t.Cleanup(proxy.release)
	done1, done2 := make(chan error, 1), make(chan error, 1)
	go func() { done1 <- simple(c1, 1) }()
	go func() { done2 <- pipelined(c2, 2) }()
	waitUntil(t, "two write BEGINs held", func() bool { return proxy.heldBegins.Load() == 2 })
	if err := c3.Ping(ctx); err != nil {
		t.Fatalf("ping while held: %v", err)
	}
	if err := readOnly(c3); err != nil {
		t.Fatalf("read-only transaction while held: %v", err)
	}
	var one int
	if err := c3.QueryRow(ctx, `SELECT $1::int`, 1).Scan(&one); err != nil || one != 1 {
		t.Fatalf("query outside a transaction while held: %d, %v", one, err)
	}
	if isDoneErr(done1) || isDoneErr(done2) || present(1) || present(2) {
		t.Fatal("a held write transaction went on")
	}
	var begun int
	if err := direct.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND state LIKE 'idle in transaction%'`).Scan(&begun); err != nil {
		t.Fatal(err)
	}
	if begun != 0 {
		t.Fatalf("%d sessions in a transaction while held: a BEGIN reached the server", begun)
	}
	proxy.release()
	for i, done := range []chan error{done1, done2} {
		if err := <-done; err != nil {
			t.Fatalf("write transaction %d after release: %v", i+1, err)
		}
	}
	if !present(1) || !present(2) || proxy.heldBegins.Load() != 0 {
		t.Fatalf("after release: keys present %v %v, %d still held", present(1), present(2), proxy.heldBegins.Load())
	}

	// Arm: one COMMIT through, the next cut before; a read-only COMMIT
	// in between does not count.
	cut := proxy.arm(1, proxyCutBefore)
	if err := readOnly(c3); err != nil {
		t.Fatalf("read-only transaction while armed: %v", err)
	}
	if err := pipelined(c3, 3); err != nil || !present(3) {
		t.Fatalf("the COMMIT let through: %v (present %v)", err, present(3))
	}
	if err := pipelined(c3, 4); err == nil {
		t.Fatal("cut before: the client was told the COMMIT succeeded")
	}
	if r := waitCut(t, cut); r.mode != proxyCutBefore {
		t.Fatalf("armed cut before: %s", r)
	}
	if present(4) {
		t.Fatal("cut before the COMMIT, yet the key committed")
	}
	c4 := pgConnect(t, proxyURL)
	if err := simple(c4, 5); err != nil || !present(5) {
		t.Fatalf("the COMMIT after the cut: %v (present %v)", err, present(5))
	}

	// Cut after: the server commits, the client hears an error.
	cut = proxy.arm(0, proxyCutAfter)
	if err := simple(c4, 6); err == nil {
		t.Fatal("cut after: the client was told the COMMIT succeeded")
	}
	if r := waitCut(t, cut); r.mode != proxyCutAfter || !r.verdict || !r.committed {
		t.Fatalf("armed cut after: %s", r)
	}
	if !present(6) {
		t.Fatal("cut after the COMMIT, reported committed, yet the key is absent")
	}
	t.Log(proxy.counts())
}

// waitUntil polls cond until it holds, failing the test after 10s.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitCut returns what an armed cut did, failing the test if it did not
// happen within 10s.
func waitCut(t testing.TB, cut <-chan cutResult) cutResult {
	t.Helper()
	select {
	case r := <-cut:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the armed cut did not happen within 10s")
		return cutResult{}
	}
}

// isDoneErr reports whether ch already holds a value (without taking it
// away for good: it is put back).
func isDoneErr(ch chan error) bool {
	select {
	case err := <-ch:
		ch <- err
		return true
	default:
		return false
	}
}
