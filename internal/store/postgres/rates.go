package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/jackc/pgx/v5"
)

// ---------------------------------------------------------------------------
// Conversion rates

const rateColumns = `workspace, currency, rate, active, create_time`

const (
	qActiveRate = `SELECT ` + rateColumns + ` FROM conversion_rates
		WHERE workspace = $1 AND currency = $2 AND active`
	qListRates = `SELECT ` + rateColumns + ` FROM conversion_rates
		WHERE workspace = $1 AND (active OR $2::boolean)
		ORDER BY currency, seq DESC`
	// Batch reads (batch.go): the rates a batch replaces, locked.
	qLockRates = `SELECT ` + rateColumns + ` FROM conversion_rates
		WHERE workspace = $1 AND currency = ANY($2::text[]) AND active ORDER BY currency FOR UPDATE`
	qDeactivateRate = `UPDATE conversion_rates SET active = false WHERE workspace = $1 AND currency = $2 AND active`
	qInsertRate     = `INSERT INTO conversion_rates (workspace, currency, rate, active, create_time)
		VALUES ($1, $2, $3, true, $4)`
)

func scanRate(row pgx.Row) (ledger.ConversionRate, error) {
	var r ledger.ConversionRate
	var rate string
	if err := row.Scan(&r.Workspace, &r.Currency, &rate, &r.Active, &r.CreateTime); err != nil {
		return ledger.ConversionRate{}, err
	}
	d, err := ledger.ParseDecimal(rate)
	if err != nil {
		return ledger.ConversionRate{}, fmt.Errorf("rate of %s: %w", r.Currency, err)
	}
	r.Rate, r.CreateTime = d, r.CreateTime.UTC()
	return r, nil
}

// ActiveRate implements ledger.ReadTx.
func (t *readTx) ActiveRate(ctx context.Context, workspace, currency string) (ledger.ConversionRate, error) {
	rows, err := t.query(ctx, qActiveRate, workspace, currency)
	var r ledger.ConversionRate
	if err == nil {
		r, err = pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (ledger.ConversionRate, error) { return scanRate(row) })
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.ConversionRate{}, ledger.NotFoundError("conversion rate", currency)
	}
	if err != nil {
		return ledger.ConversionRate{}, mapErr(ctx, "read conversion rate", err)
	}
	return r, nil
}

// ListRates implements ledger.ReadTx: by currency, newest first within one.
func (t *readTx) ListRates(ctx context.Context, workspace string, history bool) ([]ledger.ConversionRate, error) {
	out, err := all(ctx, t, scanRate, qListRates, workspace, history)
	if err != nil {
		return nil, mapErr(ctx, "list conversion rates", err)
	}
	return out, nil
}
