package postgres

import (
	"context"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/creditledger/creditledger/internal/pgtest"
)

// During a failover the store meets servers that refuse writes: the old
// primary is gone, the standby is not yet promoted, or a session outlived
// its server's demotion. Each is UNAVAILABLE (the client retries with its
// key), never INTERNAL, and the store writes again, without a restart,
// once a server accepts writes. (e2e/failover_test.go runs the real
// failover; these are its error shapes, one at a time.)
func TestFailoverShapesAreUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	write := func(s *Store, threshold int64) error {
		return s.Write(ctx, ledger.WriteSet{Workspace: ws, LockSettings: true}, prepared(&ledger.Effects{
			Settings: &ledger.Settings{Workspace: ws, CreditPaymentsEnabled: true, LowBalanceThreshold: threshold, UpdateTime: t0},
		}))
	}
	view := func(s *Store) error {
		return s.View(ctx, func(context.Context, ledger.ReadTx) error { return nil })
	}
	// setReadOnly makes the database's new sessions read-only, as on a
	// standby, and drops the store's connections, as a dying server does.
	setReadOnly := func(t *testing.T, s *Store, on bool) {
		t.Helper()
		db := pgx.Identifier{s.Pool().Config().ConnConfig.Database}.Sanitize()
		sql := "ALTER DATABASE " + db + " SET default_transaction_read_only = on"
		if !on {
			sql = "ALTER DATABASE " + db + " RESET default_transaction_read_only"
		}
		// From another database: the store's own is read-only meanwhile.
		conn, err := pgx.Connect(ctx, server.URL("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = conn.Close(ctx) }()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
		s.Pool().Reset()
	}
	wantUnavailable := func(t *testing.T, what string, err error) {
		t.Helper()
		if e := ledger.ErrorOf(err); e.Code != ledger.CodeUnavailable {
			t.Errorf("%s: got %v (%v), want unavailable", what, err, e.Code)
		}
	}

	t.Run("a session on a server turned read-only", func(t *testing.T) {
		t.Parallel()
		s := newStore(t, Options{})
		setReadOnly(t, s, true)
		wantUnavailable(t, "write", write(s, 7))
		setReadOnly(t, s, false)
		if n := queryInt(t, s, `SELECT count(*) FROM settings WHERE workspace = 'ws' AND low_balance_threshold = 7`); n != 0 {
			t.Errorf("a refused write left %d settings rows", n)
		}
		if err := write(s, 8); err != nil {
			t.Fatalf("write once the server accepts writes again: %v", err)
		}
	})

	t.Run("no host of a multi-host URL accepts writes", func(t *testing.T) {
		t.Parallel()
		// The first host is gone (a dead primary), the second is the server
		// (a standby until it is promoted).
		u, err := url.Parse(pgtest.RuntimeURL(server.NewDatabase(t, template)))
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("host", "/nonexistent-primary,"+q.Get("host"))
		q.Set("target_session_attrs", "read-write")
		u.RawQuery = q.Encode()
		s, err := Open(ctx, u.String(), Options{})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		setReadOnly(t, s, true)
		wantUnavailable(t, "write", write(s, 7))
		wantUnavailable(t, "view", view(s))
		wantUnavailable(t, "ping", s.Ping(ctx))
		setReadOnly(t, s, false)
		if err := write(s, 8); err != nil {
			t.Fatalf("write once a host accepts writes: %v", err)
		}
	})
}
