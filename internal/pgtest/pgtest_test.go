package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) {
	Main(m, func(s *Server) error {
		tmpl, err := s.CreateTemplate(context.Background(), "tmpl", func(ctx context.Context, url string) error {
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				return err
			}
			defer func() { _ = conn.Close(ctx) }()
			_, err = conn.Exec(ctx, `CREATE TABLE marker (v int); INSERT INTO marker VALUES (42)`)
			return err
		})
		template = tmpl
		return err
	})
}

var template string

// Databases cloned from a template carry its schema and data, and each
// test's database is its own: a write in one is invisible in another.
func TestNewDatabaseIsolatedClone(t *testing.T) {
	s := Shared(t)
	ctx := context.Background()
	a, b := s.NewDatabase(t, template), s.NewDatabase(t, template)
	if a == b {
		t.Fatalf("two databases share a URL: %s", a)
	}
	ca, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ca.Close(ctx) }()
	if _, err := ca.Exec(ctx, `INSERT INTO marker VALUES (7)`); err != nil {
		t.Fatal(err)
	}
	cb, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cb.Close(ctx) }()
	var n, sum int
	if err := cb.QueryRow(ctx, `SELECT count(*), sum(v) FROM marker`).Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	if n != 1 || sum != 42 {
		t.Fatalf("clone holds %d rows summing %d, want the template's single row 42", n, sum)
	}
}

// A Bouncer pools by transaction: while one client holds a server
// connection in a transaction, another client's statement runs on another
// one, and after COMMIT that connection serves the other client.
// Both the owner and the runtime role get through it.
func TestBouncerPoolsTransactions(t *testing.T) {
	s := Shared(t)
	ctx := context.Background()
	db := s.NewDatabase(t, template)
	if err := s.admin(ctx, `DO $$ BEGIN CREATE ROLE `+RuntimeRole+` LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`); err != nil {
		t.Fatal(err)
	}
	b := s.Bouncer(t)
	connect := func(url string) *pgx.Conn {
		t.Helper()
		// No named prepared statements: the next statement of a client may
		// run on another server connection, where they do not exist.
		c, err := pgx.Connect(ctx, url+"&default_query_exec_mode=simple_protocol")
		if err != nil {
			t.Fatalf("connect through the bouncer: %v\n%s", err, b.Log())
		}
		t.Cleanup(func() { _ = c.Close(ctx) })
		return c
	}
	var who string
	if err := connect(b.URL(RuntimeURL(db))).QueryRow(ctx, `SELECT current_user`).Scan(&who); err != nil || who != RuntimeRole {
		t.Fatalf("through the bouncer as the runtime role: current_user %q, %v", who, err)
	}
	// Two clients of one user (a pool is per database and user).
	a, other := connect(b.URL(db)), connect(b.URL(db))
	tx, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var inTx, outside int
	var marker int
	if err := tx.QueryRow(ctx, `SELECT pg_backend_pid(), (SELECT v FROM marker)`).Scan(&inTx, &marker); err != nil || marker != 42 {
		t.Fatalf("read the template's marker through the bouncer: %d, %v", marker, err)
	}
	if err := other.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&outside); err != nil {
		t.Fatal(err)
	}
	if outside == inTx {
		t.Fatalf("a statement ran on backend %d while another client's transaction held it", inTx)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Released at COMMIT, the most recently used server connection serves
	// the next statement of any client (session pooling would keep it A's).
	var after int
	if err := other.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != inTx {
		t.Fatalf("after the transaction on backend %d committed, another client's statement ran on %d: not transaction pooling", inTx, after)
	}
	// The client's key is the bouncer's, not a backend's: the way ledgerd
	// tells that a pooler stands between it and PostgreSQL.
	if pid := int(a.PgConn().PID()); pid == inTx {
		t.Fatalf("the bouncer passed the backend's pid %d to its client", pid)
	}
}
