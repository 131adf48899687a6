package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/creditledger/creditledger/internal/ledger"
)

const (
	qSettings = `SELECT credit_payments_enabled, require_distinct_approver, payment_methods, low_balance_threshold, update_time
		FROM settings WHERE workspace = ?`
	qPutSettings = `INSERT INTO settings (workspace, credit_payments_enabled, require_distinct_approver, update_time,
		  payment_methods, low_balance_threshold)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (workspace) DO UPDATE SET
		  credit_payments_enabled = excluded.credit_payments_enabled,
		  require_distinct_approver = excluded.require_distinct_approver,
		  update_time = excluded.update_time,
		  payment_methods = excluded.payment_methods,
		  low_balance_threshold = excluded.low_balance_threshold`
)

// Settings implements ledger.ReadTx.
func (t *readTx) Settings(ctx context.Context, workspace string) (ledger.Settings, error) {
	st := ledger.Settings{Workspace: workspace}
	err := t.one(ctx, qSettings, []any{workspace}, func(row scanner) error {
		var enabled, distinct int64
		var methods sql.NullString
		var upd sql.NullInt64
		if err := row.Scan(&enabled, &distinct, &methods, &st.LowBalanceThreshold, &upd); err != nil {
			return err
		}
		st.CreditPaymentsEnabled, st.RequireDistinctApprover, st.UpdateTime = enabled == 1, distinct == 1, fromMicros(upd)
		return fromMethods(methods, &st)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.Settings{Workspace: workspace}, nil
	}
	if err != nil {
		return ledger.Settings{}, mapErr(ctx, "read settings", err)
	}
	return st, nil
}

// fromMethods reads payment_methods: NULL while the agency never chose,
// else a JSON array of method names ("[]": none).
func fromMethods(col sql.NullString, st *ledger.Settings) error {
	st.PaymentMethodsSet, st.PaymentMethods = col.Valid, nil
	if !col.Valid {
		return nil
	}
	var names []string
	if err := json.Unmarshal([]byte(col.String), &names); err != nil {
		return fmt.Errorf("settings of %s: payment methods: %w", st.Workspace, err)
	}
	st.PaymentMethods = make([]ledger.PaymentMethod, 0, len(names))
	for _, n := range names {
		m, ok := ledger.ParsePaymentMethod(n)
		if !ok {
			return fmt.Errorf("settings of %s offer unknown payment method %q", st.Workspace, n)
		}
		st.PaymentMethods = append(st.PaymentMethods, m)
	}
	return nil
}

// toMethods is what payment_methods stores for st.
func toMethods(st ledger.Settings) (any, error) {
	if !st.PaymentMethodsSet {
		return nil, nil
	}
	names := make([]string, 0, len(st.PaymentMethods))
	for _, m := range st.PaymentMethods {
		names = append(names, m.String())
	}
	b, err := json.Marshal(names)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// putSettings creates or replaces the workspace's settings.
func (t *writeTx) putSettings(ctx context.Context, s ledger.Settings) error {
	methods, err := toMethods(s)
	if err != nil {
		return fmt.Errorf("sqlite: store settings: %w", err)
	}
	if _, err := t.exec(ctx, qPutSettings, s.Workspace, boolInt(s.CreditPaymentsEnabled), boolInt(s.RequireDistinctApprover),
		toMicros(s.UpdateTime), methods, s.LowBalanceThreshold); err != nil {
		return mapErr(ctx, "store settings", err)
	}
	return nil
}
