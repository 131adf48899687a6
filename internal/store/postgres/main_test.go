package postgres

import (
	"context"
	"testing"
	"time"

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

func openURL(tb testing.TB, url string, opts Options) *Store {
	tb.Helper()
	s, err := Open(context.Background(), url, opts)
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
