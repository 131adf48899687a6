package postgres

import (
	"context"
	"fmt"

	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/jackc/pgx/v5"
)

// ---------------------------------------------------------------------------
// ledger.Auditor

// qWorkspaces reads the registry of workspaces (migration 0004): the one
// table that row-level security leaves whole, so that a task spanning every
// workspace can list them and then read each with its own setting.
const qWorkspaces = `SELECT workspace FROM ledger_workspaces ORDER BY workspace`

// ownTx returns the transaction behind a ReadTx this store gave.
func ownTx(tx ledger.ReadTx) (*readTx, error) {
	if x, ok := tx.(*readTx); ok {
		return x, nil
	}
	return nil, fmt.Errorf("postgres: %T is not a transaction of this store", tx)
}

// Workspaces implements ledger.Auditor.
func (s *Store) Workspaces(ctx context.Context, rtx ledger.ReadTx) ([]string, error) {
	t, err := ownTx(rtx)
	if err != nil {
		return nil, err
	}
	rows, err := t.tx.Query(ctx, qWorkspaces)
	var out []string
	if err == nil {
		out, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		return nil, mapErr(ctx, "list workspaces", err)
	}
	return out, nil
}

// IdempotencyRecords implements ledger.Auditor. Records are read in pages
// so that fn may use the transaction while no result set is open.
func (s *Store) IdempotencyRecords(ctx context.Context, rtx ledger.ReadTx, workspace string, fn func(ledger.IdempotencyRecord) error) error {
	t, err := ownTx(rtx)
	if err != nil {
		return err
	}
	const page = 500
	after := ""
	for {
		recs, err := all(ctx, t, scanIdempotency, qIdempotencyPage, workspace, after, page)
		if err != nil {
			return mapErr(ctx, "list idempotency keys", err)
		}
		for _, rec := range recs {
			if err := fn(rec); err != nil {
				return err
			}
		}
		if len(recs) < page {
			return nil
		}
		after = recs[len(recs)-1].Key
	}
}
