package postgres

import (
	"context"
	"errors"

	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

const (
	qSettings = `SELECT credit_payments_enabled, require_distinct_approver, update_time FROM settings WHERE workspace = $1`
	// A batch that changes the settings locks their row, creating it with
	// the defaults first when the workspace has none.
	qEnsureSettings = `INSERT INTO settings (workspace, credit_payments_enabled) VALUES ($1, false)
		ON CONFLICT (workspace) DO NOTHING`
	qLockSettings = qSettings + ` FOR UPDATE`
	qPutSettings  = `UPDATE settings SET credit_payments_enabled = $2, require_distinct_approver = $3, update_time = $4
		WHERE workspace = $1`
)

// Settings implements ledger.ReadTx.
func (t *readTx) Settings(ctx context.Context, workspace string) (ledger.Settings, error) {
	st := ledger.Settings{Workspace: workspace}
	var upd pgtype.Timestamptz
	err := t.one(ctx, qSettings, workspace, nil, &st.CreditPaymentsEnabled, &st.RequireDistinctApprover, &upd)
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.Settings{Workspace: workspace}, nil
	}
	if err != nil {
		return ledger.Settings{}, mapErr(ctx, "read settings", err)
	}
	st.UpdateTime = fromTime(upd)
	return st, nil
}
