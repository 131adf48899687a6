package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPGProxy proves the fault tests' proxy before they rely on it: for
// each way a client can send COMMIT (simple query, a named prepared
// statement bound again later, a pipelined batch whose COMMIT is cached and
// only bound, the unnamed statement of the extended protocol), a cut after
// the COMMIT leaves the transaction committed while the client gets an
// error, a cut before it leaves nothing, and a read-only transaction is
// never cut.
func TestPGProxy(t *testing.T) {
	t.Parallel()
	dbURL := postgresDatabase(t)
	direct := pgConnect(t, dbURL)
	if _, err := direct.Exec(t.Context(), `CREATE TABLE proxied (k int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	proxy, proxyURL := startPGProxy(t, dbURL)

	// Each way writes key k in a transaction and commits it.
	ways := []struct {
		name   string
		commit func(ctx context.Context, c *pgx.Conn, k int) error
	}{
		{"simple query", func(ctx context.Context, c *pgx.Conn, k int) error {
			tx, err := c.Begin(ctx)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO proxied VALUES ($1)`, k); err != nil {
				return err
			}
			return tx.Commit(ctx)
		}},
		{"named prepared statement", func(ctx context.Context, c *pgx.Conn, k int) error {
			if _, err := c.Prepare(ctx, "the_commit", "COMMIT"); err != nil {
				return err
			}
			if _, err := c.Exec(ctx, "BEGIN"); err != nil {
				return err
			}
			if _, err := c.Exec(ctx, `INSERT INTO proxied VALUES ($1)`, k); err != nil {
				return err
			}
			_, err := c.Exec(ctx, "the_commit")
			return err
		}},
		{"pipelined batch", func(ctx context.Context, c *pgx.Conn, k int) error {
			if _, err := c.Exec(ctx, "BEGIN ISOLATION LEVEL READ COMMITTED"); err != nil {
				return err
			}
			b := &pgx.Batch{}
			b.Queue(`INSERT INTO proxied VALUES ($1)`, k)
			b.Queue(`commit`)
			return c.SendBatch(ctx, b).Close()
		}},
		{"unnamed extended statement", func(ctx context.Context, c *pgx.Conn, k int) error {
			if _, err := c.Exec(ctx, "begin"); err != nil {
				return err
			}
			if _, err := c.Exec(ctx, `INSERT INTO proxied VALUES ($1)`, k); err != nil {
				return err
			}
			return c.PgConn().ExecParams(ctx, "END", nil, nil, nil, nil).Read().Err
		}},
	}
	k := 0
	present := func(k int) bool {
		var n int
		if err := direct.QueryRow(t.Context(), `SELECT count(*) FROM proxied WHERE k = $1`, k).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	for _, way := range ways {
		for _, mode := range []proxyMode{proxyCutAfter, proxyCutBefore} {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			c := pgConnect(t, proxyURL)
			// Twice through first, so that cached statements are only bound.
			proxy.set(proxyPass, 1)
			for range 2 {
				k++
				if err := way.commit(ctx, c, k); err != nil {
					t.Fatalf("%s, pass-through: %v", way.name, err)
				}
				if !present(k) {
					t.Fatalf("%s, pass-through: key %d not committed", way.name, k)
				}
			}
			after, before, committed := proxy.cutsAfter.Load(), proxy.cutsBefore.Load(), proxy.afterCommit.Load()
			proxy.set(mode, 1)
			k++
			err := way.commit(ctx, c, k)
			proxy.set(proxyPass, 1)
			if err == nil {
				t.Errorf("%s, mode %d: the client was told the COMMIT succeeded", way.name, mode)
			}
			switch mode {
			case proxyCutAfter:
				if got := proxy.cutsAfter.Load() - after; got != 1 || proxy.cutsBefore.Load() != before {
					t.Errorf("%s: %d cuts after, %d before; want one after", way.name, got, proxy.cutsBefore.Load()-before)
				}
				deadline := time.Now().Add(10 * time.Second)
				for !present(k) && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if !present(k) {
					t.Errorf("%s: cut after COMMIT, yet key %d never committed", way.name, k)
				}
				for proxy.afterCommit.Load() == committed && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if proxy.afterCommit.Load() != committed+1 {
					t.Errorf("%s: the proxy did not see the server's COMMIT verdict (%s)", way.name, proxy.counts())
				}
			case proxyCutBefore:
				if got := proxy.cutsBefore.Load() - before; got != 1 || proxy.cutsAfter.Load() != after {
					t.Errorf("%s: %d cuts before, %d after; want one before", way.name, got, proxy.cutsAfter.Load()-after)
				}
				time.Sleep(50 * time.Millisecond)
				if present(k) {
					t.Errorf("%s: cut before COMMIT, yet key %d committed", way.name, k)
				}
			}
			cancel()
		}
	}

	// Read-only transactions pass, however eager the proxy.
	c := pgConnect(t, proxyURL)
	proxy.set(proxyCutEither, 1)
	for range 3 {
		tx, err := c.BeginTx(t.Context(), pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := tx.QueryRow(t.Context(), `SELECT count(*) FROM proxied`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(t.Context()); err != nil {
			t.Fatalf("read-only transaction cut: %v", err)
		}
	}
	proxy.set(proxyPass, 1)
	t.Log(proxy.counts())
}

// pgConnect opens one connection, closed when the test ends.
func pgConnect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}
