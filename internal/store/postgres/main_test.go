package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/creditledger/creditledger/internal/pgtest"
)

// server is the test binary's PostgreSQL; template is a database migrated
// once, cloned for every test that needs a store.
var (
	server   *pgtest.Server
	template string
)

func TestMain(m *testing.M) {
	pgtest.Main(m, func(s *pgtest.Server) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		name, err := s.CreateTemplate(ctx, "ledger", Migrate)
		server, template = s, name
		return err
	})
}

// newStore opens a store on a fresh database cloned from the migrated
// template; it is closed (before the database is dropped) at cleanup.
func newStore(tb testing.TB, opts Options) *Store {
	tb.Helper()
	return openURL(tb, server.NewDatabase(tb, template), opts)
}

// openURL opens a store on the database of url (an owner's URL) as the
// runtime role, as ledgerd serves.
func openURL(tb testing.TB, url string, opts Options) *Store {
	tb.Helper()
	s, err := Open(context.Background(), pgtest.RuntimeURL(url), opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// ownerURL is the URL of s's database as the owner, which row-level
// security does not restrict (the test server's role is a superuser): tests
// inspect and tamper with every workspace's rows through it, as a DBA would.
func ownerURL(s *Store) string {
	return server.URL(s.Pool().Config().ConnConfig.Database)
}

// ownerPool connects to s's database as the owner until the test ends.
func ownerPool(tb testing.TB, s *Store) *pgxpool.Pool {
	tb.Helper()
	p, err := pgxpool.New(context.Background(), ownerURL(s))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Close)
	return p
}
