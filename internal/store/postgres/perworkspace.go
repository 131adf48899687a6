package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/internal/ledger"
)

// workspacesPerRoundTrip bounds how many workspaces' transactions
// eachWorkspace sends in one pipeline.
const workspacesPerRoundTrip = 64

// eachWorkspace serves the tasks that span every workspace (the metrics
// gauges): it lists the registry's workspaces in one short transaction,
// then reads each workspace in a transaction of its own, with its own
// row-level security setting; no transaction ever reads two workspaces,
// so the same statements work when the tables are sharded by workspace.
// queue adds the statements of one workspace to b, after its BEGIN and
// setting and before its COMMIT. To keep the cost of a transaction per
// workspace low, up to workspacesPerRoundTrip of them are pipelined in one
// round trip; each still commits on its own. Each workspace is read in its
// own snapshot: the sums are not one point in time, which a gauge does
// not need.
func (s *Store) eachWorkspace(ctx context.Context, what string, queue func(b *pgx.Batch, ws string)) error {
	var wss []string
	err := s.View(ctx, func(ctx context.Context, rtx ledger.ReadTx) error {
		var err error
		wss, err = s.Workspaces(ctx, rtx)
		return err
	})
	if err != nil {
		return err
	}
	for len(wss) > 0 {
		n := min(len(wss), workspacesPerRoundTrip)
		b := &pgx.Batch{}
		for _, ws := range wss[:n] {
			b.Queue(qBeginView) // as View opens its transactions
			b.Queue(qSetWorkspace, ws)
			queue(b, ws)
			b.Queue("COMMIT")
		}
		// On an error the connection is left inside a failed transaction;
		// the pool closes such a connection instead of reusing it.
		if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
			return mapErr(ctx, what, err)
		}
		wss = wss[n:]
	}
	return nil
}
