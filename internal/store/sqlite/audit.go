package sqlite

import (
	"context"
	"fmt"

	"github.com/creditledger/creditledger/internal/ledger"
)

// ledger.Auditor: enumerating the whole store, for ledger.Verify.

const (
	qWorkspaces = `
	SELECT workspace FROM settings
	UNION SELECT workspace FROM accounts
	UNION SELECT workspace FROM credit_requests
	UNION SELECT workspace FROM idempotency_keys
	UNION SELECT workspace FROM packages
	UNION SELECT workspace FROM conversion_rates
	ORDER BY 1`
	qIdempotencyPage = `SELECT ` + idempotencyColumns + ` FROM idempotency_keys
		WHERE workspace = ? AND key > ? ORDER BY key LIMIT ?`
)

// ownTx returns the transaction behind a ReadTx this store gave.
func ownTx(tx ledger.ReadTx) (*readTx, error) {
	if t, ok := tx.(*readTx); ok {
		return t, nil
	}
	return nil, fmt.Errorf("sqlite: %T is not a transaction of this store", tx)
}

// Workspaces implements ledger.Auditor.
func (s *Store) Workspaces(ctx context.Context, rtx ledger.ReadTx) ([]string, error) {
	t, err := ownTx(rtx)
	if err != nil {
		return nil, err
	}
	var out []string
	err = t.each(ctx, qWorkspaces, nil, func(row scanner) error {
		var ws string
		err := row.Scan(&ws)
		out = append(out, ws)
		return err
	})
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
		var recs []ledger.IdempotencyRecord
		err := t.each(ctx, qIdempotencyPage, []any{workspace, after, page}, func(row scanner) error {
			rec, err := scanIdempotency(row)
			recs = append(recs, rec)
			return err
		})
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
