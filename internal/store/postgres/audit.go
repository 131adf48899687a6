package postgres

import (
	"context"
	"fmt"

	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/jackc/pgx/v5"
)

// ---------------------------------------------------------------------------
// ledger.Auditor

const qWorkspaces = `
	SELECT workspace FROM settings
	UNION SELECT workspace FROM accounts
	UNION SELECT workspace FROM credit_requests
	UNION SELECT workspace FROM idempotency_keys
	UNION SELECT workspace FROM packages
	UNION SELECT workspace FROM conversion_rates
	UNION SELECT workspace FROM workspace_sequences
	ORDER BY 1`

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
	out, err := all(ctx, t, func(row pgx.Row) (string, error) {
		var ws string
		err := row.Scan(&ws)
		return ws, err
	}, qWorkspaces)
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
