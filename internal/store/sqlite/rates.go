package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/creditledger/creditledger/internal/ledger"
)

// Conversion rates: seq orders a currency's rates (newest highest); the
// rate is the canonical decimal text of ledger.Decimal.String().

const rateColumns = `workspace, currency, rate, active, create_time`

const (
	qActiveRate = `SELECT ` + rateColumns + ` FROM conversion_rates
		WHERE workspace = ? AND currency = ? AND active = 1`
	qActiveRatesIn = `SELECT ` + rateColumns + ` FROM conversion_rates
		WHERE workspace = ? AND currency IN (SELECT value FROM json_each(?)) AND active = 1`
	qListRates = `SELECT ` + rateColumns + ` FROM conversion_rates
		WHERE workspace = ? AND (active = 1 OR ? = 1) ORDER BY currency, seq DESC`
	qDeactivateRate = `UPDATE conversion_rates SET active = 0 WHERE workspace = ? AND currency = ? AND active = 1`
	qInsertRate     = `INSERT INTO conversion_rates (workspace, currency, seq, rate, active, create_time)
		VALUES (:ws, :currency,
		        (SELECT COALESCE(MAX(seq), 0) + 1 FROM conversion_rates WHERE workspace = :ws AND currency = :currency),
		        :rate, 1, :time)`
)

func scanRate(row scanner) (ledger.ConversionRate, error) {
	var r ledger.ConversionRate
	var rate string
	var active int64
	var created sql.NullInt64
	if err := row.Scan(&r.Workspace, &r.Currency, &rate, &active, &created); err != nil {
		return ledger.ConversionRate{}, err
	}
	d, err := ledger.ParseDecimal(rate)
	if err != nil {
		return ledger.ConversionRate{}, fmt.Errorf("rate of %s: %w", r.Currency, err)
	}
	r.Rate, r.Active, r.CreateTime = d, active == 1, fromMicros(created)
	return r, nil
}

// ActiveRate implements ledger.ReadTx.
func (t *readTx) ActiveRate(ctx context.Context, workspace, currency string) (ledger.ConversionRate, error) {
	var r ledger.ConversionRate
	err := t.one(ctx, qActiveRate, []any{workspace, currency}, func(row scanner) (err error) {
		r, err = scanRate(row)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.ConversionRate{}, ledger.NotFoundError("conversion rate", currency)
	}
	if err != nil {
		return ledger.ConversionRate{}, mapErr(ctx, "read conversion rate", err)
	}
	return r, nil
}

// ListRates implements ledger.ReadTx: by currency, newest first within one.
func (t *readTx) ListRates(ctx context.Context, workspace string, history bool) ([]ledger.ConversionRate, error) {
	var out []ledger.ConversionRate
	err := t.each(ctx, qListRates, []any{workspace, boolInt(history)}, func(row scanner) error {
		r, err := scanRate(row)
		out = append(out, r)
		return err
	})
	if err != nil {
		return nil, mapErr(ctx, "list conversion rates", err)
	}
	return out, nil
}

// activeRatesIn adds the active rates of currencies to into, by currency.
func (t *writeTx) activeRatesIn(ctx context.Context, workspace string, currencies []string, into map[string]ledger.ConversionRate) error {
	err := t.eachIn(ctx, qActiveRatesIn, workspace, currencies, func(row scanner) error {
		r, err := scanRate(row)
		into[r.Currency] = r
		return err
	})
	return mapErr(ctx, "read conversion rates", err)
}

// insertRates makes each rate its currency's active one, in order; the
// rate it replaces stays as history.
func (t *writeTx) insertRates(ctx context.Context, rates []ledger.ConversionRate) error {
	for _, r := range rates {
		if _, err := t.exec(ctx, qDeactivateRate, r.Workspace, r.Currency); err != nil {
			return mapErr(ctx, "deactivate conversion rate", err)
		}
		_, err := t.exec(ctx, qInsertRate,
			sql.Named("ws", r.Workspace), sql.Named("currency", r.Currency),
			sql.Named("rate", r.Rate.String()), sql.Named("time", toMicros(r.CreateTime)))
		if err != nil {
			return mapErr(ctx, "insert conversion rate", err)
		}
	}
	return nil
}
