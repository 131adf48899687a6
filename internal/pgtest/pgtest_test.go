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
