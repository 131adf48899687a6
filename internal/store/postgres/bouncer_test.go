package postgres

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/creditledger/creditledger/internal/pgtest"
	"github.com/creditledger/creditledger/internal/store/storetest"
)

// The store behind pgbouncer in transaction-pooling mode, as deployments
// run it: every transaction may land on another server connection.

// TestConformanceThroughPgBouncer runs the whole conformance suite with the
// store connected as the runtime role (under row-level security) through
// pgbouncer in transaction mode, with PoolerTransaction.
func TestConformanceThroughPgBouncer(t *testing.T) {
	t.Parallel()
	b := server.Bouncer(t)
	storetest.Run(t, func(tb testing.TB) ledger.Store {
		return openURL(tb, b.URL(server.NewDatabase(tb, template)), Options{Pooler: PoolerTransaction})
	})
}

// TestNamedStatementsBreakBehindTransactionPooling shows why the store needs
// to be told about the pooler: a store whose statements are prepared under
// a name (pgx's default) reads once on a server connection, then, after
// another client's transaction released a second one, reads on that one,
// where the statement does not exist. With PoolerTransaction the same
// schedule reads twice.
func TestNamedStatementsBreakBehindTransactionPooling(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := server.NewDatabase(t, template)
	seed(t, openURL(t, db, Options{}))
	b := server.Bouncer(t)
	url := pgtest.RuntimeURL(b.URL(db))

	named := func(tb testing.TB) *Store {
		// What Open would build without the pooler setting, were it not
		// refused (see TestOpenRefusesNamedStatementsBehindAPooler).
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			tb.Fatal(err)
		}
		cfg.MaxConns = 1
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(pool.Close)
		return &Store{pool: pool}
	}
	unnamed := func(tb testing.TB) *Store { return openURL(tb, url, Options{Pooler: PoolerTransaction, MaxConns: 1}) }
	read := func(s *Store) error {
		return s.View(ctx, func(ctx context.Context, tx ledger.ReadTx) error {
			_, err := tx.Account(ctx, ws, "a")
			return err
		})
	}
	for _, tc := range []struct {
		name  string
		open  func(testing.TB) *Store
		fails bool
	}{
		{"named statements", named, true},
		{"PoolerTransaction", unnamed, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.open(t)
			other, err := pgx.Connect(ctx, url+"&default_query_exec_mode=simple_protocol")
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = other.Close(ctx) }()
			// The other client holds a server connection in a transaction,
			// so the store's first read runs on another one.
			held, err := other.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := held.Exec(ctx, `SELECT 1`); err != nil {
				t.Fatal(err)
			}
			if err := read(s); err != nil {
				t.Fatalf("first read: %v", err)
			}
			// Released last, the other client's server connection serves
			// the store's next transaction.
			if err := held.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			err = read(s)
			if !tc.fails {
				if err != nil {
					t.Fatalf("second read, on another server connection: %v", err)
				}
				return
			}
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "26000" { // invalid_sql_statement_name
				t.Fatalf("second read, on another server connection: %v; want prepared statement … does not exist", err)
			}
			if code := ledger.ErrorOf(err).Code; code != ledger.CodeInternal {
				t.Errorf("mapped to %v, want internal (a misconfiguration, not an outage)", code)
			}
		})
	}
}

// TestOpenRefusesNamedStatementsBehindAPooler: Open without PoolerTransaction
// tells from the connection's cancel key that a pooler answers, and refuses
// (the failure above would otherwise come later, under load); an exec mode
// that names no statement, chosen in the URL, is accepted; a direct
// connection is too (every other test).
func TestOpenRefusesNamedStatementsBehindAPooler(t *testing.T) {
	t.Parallel()
	db := server.NewDatabase(t, template)
	b := server.Bouncer(t)
	url := pgtest.RuntimeURL(b.URL(db))
	s, err := Open(context.Background(), url, Options{})
	if !errors.Is(err, ErrBehindPooler) {
		if s != nil {
			_ = s.Close()
		}
		t.Fatalf("Open through pgbouncer with named statements: %v, want ErrBehindPooler", err)
	}
	verifyLedger(t, openURL(t, url+"&default_query_exec_mode=exec", Options{}))
}

// TestMigrateThroughPgBouncer: migrations run through the pooler too, four
// at once (their lock is transaction-scoped; a session lock would stay on
// whichever server connection took it), and again once applied; the store
// then serves through it.
func TestMigrateThroughPgBouncer(t *testing.T) {
	t.Parallel()
	db := server.NewDatabase(t, "")
	b := server.Bouncer(t)
	url := b.URL(db)
	const n = 4
	errs := make([]error, n+1)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = Migrate(context.Background(), url) })
	}
	wg.Wait()
	errs[n] = Migrate(context.Background(), url)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Migrate #%d through pgbouncer: %v", i, err)
		}
	}
	if got, want := countMigrations(t, db), len(embedded(t)); got != want {
		t.Fatalf("%d migrations recorded, want %d", got, want)
	}
	s := openURL(t, url, Options{Pooler: PoolerTransaction})
	seed(t, s)
	verifyLedger(t, s)
}

func TestParsePooler(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want Pooler
		bad  bool
	}{
		{"", PoolerNone, false},
		{"none", PoolerNone, false},
		{"transaction", PoolerTransaction, false},
		{"pgbouncer", "", true},
		{"Transaction", "", true},
	} {
		got, err := ParsePooler(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("ParsePooler(%q) = %q, %v", tc.in, got, err)
		}
	}
}
