package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/creditledger/creditledger/internal/ledger"
)

const (
	qSettings = `SELECT credit_payments_enabled, require_distinct_approver, update_time
		FROM settings WHERE workspace = ?`
	qPutSettings = `INSERT INTO settings (workspace, credit_payments_enabled, require_distinct_approver, update_time)
		VALUES (?, ?, ?, ?)
		ON CONFLICT (workspace) DO UPDATE SET
		  credit_payments_enabled = excluded.credit_payments_enabled,
		  require_distinct_approver = excluded.require_distinct_approver,
		  update_time = excluded.update_time`
)

// Settings implements ledger.ReadTx.
func (t *readTx) Settings(ctx context.Context, workspace string) (ledger.Settings, error) {
	st := ledger.Settings{Workspace: workspace}
	err := t.one(ctx, qSettings, []any{workspace}, func(row scanner) error {
		var enabled, distinct int64
		var upd sql.NullInt64
		if err := row.Scan(&enabled, &distinct, &upd); err != nil {
			return err
		}
		st.CreditPaymentsEnabled, st.RequireDistinctApprover, st.UpdateTime = enabled == 1, distinct == 1, fromMicros(upd)
		return nil
	})
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.Settings{Workspace: workspace}, nil
	}
	if err != nil {
		return ledger.Settings{}, mapErr(ctx, "read settings", err)
	}
	return st, nil
}

// putSettings creates or replaces the workspace's settings.
func (t *writeTx) putSettings(ctx context.Context, s ledger.Settings) error {
	if _, err := t.exec(ctx, qPutSettings, s.Workspace, boolInt(s.CreditPaymentsEnabled), boolInt(s.RequireDistinctApprover),
		toMicros(s.UpdateTime)); err != nil {
		return mapErr(ctx, "store settings", err)
	}
	return nil
}
