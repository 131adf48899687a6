package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

const (
	qSettings = `SELECT credit_payments_enabled, require_distinct_approver, payment_methods, low_balance_threshold, update_time
		FROM settings WHERE workspace = $1`
	// A batch that changes the settings locks their row, creating it with
	// the defaults first when the workspace has none.
	qEnsureSettings = `INSERT INTO settings (workspace, credit_payments_enabled) VALUES ($1, false)
		ON CONFLICT (workspace) DO NOTHING`
	qLockSettings = qSettings + ` FOR UPDATE`
	qPutSettings  = `UPDATE settings SET credit_payments_enabled = $2, require_distinct_approver = $3, update_time = $4,
		payment_methods = $5, low_balance_threshold = $6
		WHERE workspace = $1`
)

// scanSettings reads a row of qSettings into st. payment_methods is NULL
// while the agency never chose them.
func scanSettings(row pgx.Row, st *ledger.Settings) error {
	var methods pgtype.FlatArray[string]
	var upd pgtype.Timestamptz
	if err := row.Scan(&st.CreditPaymentsEnabled, &st.RequireDistinctApprover, &methods, &st.LowBalanceThreshold, &upd); err != nil {
		return err
	}
	return fillSettings(st, methods, upd)
}

// fillSettings sets the columns of st that need converting.
func fillSettings(st *ledger.Settings, methods pgtype.FlatArray[string], upd pgtype.Timestamptz) error {
	st.UpdateTime = fromTime(upd)
	st.PaymentMethodsSet, st.PaymentMethods = methods != nil, nil
	if methods != nil {
		st.PaymentMethods = make([]ledger.PaymentMethod, 0, len(methods))
		for _, name := range methods {
			m, ok := ledger.ParsePaymentMethod(name)
			if !ok {
				return fmt.Errorf("settings of %s offer unknown payment method %q", st.Workspace, name)
			}
			st.PaymentMethods = append(st.PaymentMethods, m)
		}
	}
	return nil
}

// methodNames is what payment_methods stores for st: NULL (nil) while the
// agency never chose, else the names (an empty array offers none).
func methodNames(st ledger.Settings) []string {
	if !st.PaymentMethodsSet {
		return nil
	}
	names := make([]string, 0, len(st.PaymentMethods))
	for _, m := range st.PaymentMethods {
		names = append(names, m.String())
	}
	return names
}

// Settings implements ledger.ReadTx.
func (t *readTx) Settings(ctx context.Context, workspace string) (ledger.Settings, error) {
	rows, err := t.query(ctx, qSettings, workspace)
	st := ledger.Settings{Workspace: workspace}
	if err == nil {
		st, err = pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (ledger.Settings, error) {
			s := ledger.Settings{Workspace: workspace}
			return s, scanSettings(row, &s)
		})
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.Settings{Workspace: workspace}, nil
	}
	if err != nil {
		return ledger.Settings{}, mapErr(ctx, "read settings", err)
	}
	return st, nil
}
