package postgres

import (
	"testing"

	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/creditledger/creditledger/internal/metrics"
	"github.com/creditledger/creditledger/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(tb testing.TB) ledger.Store { return newStore(tb, Options{}) })
}

// The optional interfaces ledgerd's metrics look for.
var (
	_ metrics.PoolStatser    = (*Store)(nil)
	_ metrics.PendingStatser = (*Store)(nil)
)
