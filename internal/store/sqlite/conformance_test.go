package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/creditledger/creditledger/internal/metrics"
	"github.com/creditledger/creditledger/internal/store/storetest"
)

// newStore opens a fresh store on a new file in tb's temporary directory;
// at cleanup it checks the file's integrity and closes the store.
func newStore(tb testing.TB) *Store {
	tb.Helper()
	return openAt(tb, filepath.Join(tb.TempDir(), "ledger.db"), Options{})
}

// openAt opens the store at path and registers its integrity check and close.
func openAt(tb testing.TB, path string, opts Options) *Store {
	tb.Helper()
	s, err := Open(context.Background(), path, opts)
	if err != nil {
		tb.Fatalf("Open(%s): %v", path, err)
	}
	tb.Cleanup(func() {
		if err := s.IntegrityCheck(context.Background()); err != nil {
			tb.Errorf("IntegrityCheck: %v", err)
		}
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(tb testing.TB) ledger.Store { return newStore(tb) })
}

// The in-memory store is held to the same contract as the file store:
// the tests of the ledger's consumers run against it (internal/ledgertest).
func TestConformanceInMemory(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(tb testing.TB) ledger.Store { return openAt(tb, Memory, Options{}) })
}

// The optional interfaces ledgerd's metrics look for.
var (
	_ metrics.PoolStatser    = (*Store)(nil)
	_ metrics.PendingStatser = (*Store)(nil)
)
