package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// ---------------------------------------------------------------------------
// Packages

const packageColumns = `workspace, id, display_name, credits, price_currency, price_units, price_nanos,
	active, create_time, update_time, validity_nanos`

const (
	qPackage = `SELECT ` + packageColumns + ` FROM packages WHERE workspace = $1 AND id = $2`
	// Batch reads (batch.go); locked when the batch changes packages.
	qPackages     = `SELECT ` + packageColumns + ` FROM packages WHERE workspace = $1 AND id = ANY($2::text[]) ORDER BY id`
	qLockPackages = qPackages + ` FOR UPDATE`
	qListPackages = `SELECT ` + packageColumns + ` FROM packages
		WHERE workspace = $1 AND id > $2 AND (active OR $3::boolean)
		ORDER BY id
		LIMIT $4`
	qInsertPackage = `INSERT INTO packages (` + packageColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`
	qUpdatePackage = `UPDATE packages
		SET display_name = $1, credits = $2, price_currency = $3, price_units = $4, price_nanos = $5,
		    active = $6, update_time = $7, validity_nanos = $10
		WHERE workspace = $8 AND id = $9`
)

func scanPackage(row pgx.Row) (ledger.Package, error) {
	var p ledger.Package
	var upd pgtype.Timestamptz
	var validity int64
	if err := row.Scan(&p.Workspace, &p.ID, &p.DisplayName, &p.Credits, &p.Price.Currency, &p.Price.Units,
		&p.Price.Nanos, &p.Active, &p.CreateTime, &upd, &validity); err != nil {
		return ledger.Package{}, err
	}
	p.CreateTime, p.UpdateTime, p.Validity = p.CreateTime.UTC(), fromTime(upd), time.Duration(validity)
	return p, nil
}

// Package implements ledger.ReadTx.
func (t *readTx) Package(ctx context.Context, workspace, id string) (ledger.Package, error) {
	return t.pkg(ctx, qPackage, workspace, id)
}

// pkg reads one package with sql (plain or FOR UPDATE).
func (t *readTx) pkg(ctx context.Context, sql, workspace, id string) (ledger.Package, error) {
	rows, err := t.query(ctx, sql, workspace, id)
	var p ledger.Package
	if err == nil {
		p, err = pgx.CollectExactlyOneRow(rows, func(r pgx.CollectableRow) (ledger.Package, error) { return scanPackage(r) })
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.Package{}, ledger.NotFoundError("package", id)
	}
	if err != nil {
		return ledger.Package{}, mapErr(ctx, "read package", err)
	}
	return p, nil
}

// ListPackages implements ledger.ReadTx.
func (t *readTx) ListPackages(ctx context.Context, q ledger.PackageQuery) ([]ledger.Package, error) {
	out, err := all(ctx, t, scanPackage, qListPackages, q.Workspace, q.AfterID, q.ShowInactive, q.Limit)
	if err != nil {
		return nil, mapErr(ctx, "list packages", err)
	}
	return out, nil
}
