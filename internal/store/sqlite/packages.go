package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/creditledger/creditledger/internal/ledger"
)

const packageColumns = `workspace, id, display_name, credits, price_currency, price_units, price_nanos,
	active, create_time, update_time, validity_nanos`

const (
	qPackage      = `SELECT ` + packageColumns + ` FROM packages WHERE workspace = ? AND id = ?`
	qListPackages = `SELECT ` + packageColumns + ` FROM packages
		WHERE workspace = ? AND id > ? AND (active = 1 OR ? = 1) ORDER BY id LIMIT ?`
	qPackagesIn = `SELECT ` + packageColumns + ` FROM packages
		WHERE workspace = ? AND id IN (SELECT value FROM json_each(?))`
	qInsertPackage = `INSERT INTO packages (` + packageColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qUpdatePackage = `UPDATE packages
		SET display_name = ?, credits = ?, price_currency = ?, price_units = ?, price_nanos = ?,
		    active = ?, update_time = ?, validity_nanos = ?
		WHERE workspace = ? AND id = ?`
)

func scanPackage(row scanner) (ledger.Package, error) {
	var p ledger.Package
	var active int64
	var created, updated sql.NullInt64
	var validity int64
	if err := row.Scan(&p.Workspace, &p.ID, &p.DisplayName, &p.Credits, &p.Price.Currency, &p.Price.Units,
		&p.Price.Nanos, &active, &created, &updated, &validity); err != nil {
		return ledger.Package{}, err
	}
	p.Active, p.CreateTime, p.UpdateTime = active == 1, fromMicros(created), fromMicros(updated)
	p.Validity = time.Duration(validity)
	return p, nil
}

// Package implements ledger.ReadTx.
func (t *readTx) Package(ctx context.Context, workspace, id string) (ledger.Package, error) {
	var p ledger.Package
	err := t.one(ctx, qPackage, []any{workspace, id}, func(row scanner) (err error) {
		p, err = scanPackage(row)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.Package{}, ledger.NotFoundError("package", id)
	}
	if err != nil {
		return ledger.Package{}, mapErr(ctx, "read package", err)
	}
	return p, nil
}

// ListPackages implements ledger.ReadTx.
func (t *readTx) ListPackages(ctx context.Context, q ledger.PackageQuery) ([]ledger.Package, error) {
	var out []ledger.Package
	err := t.each(ctx, qListPackages, []any{q.Workspace, q.AfterID, boolInt(q.ShowInactive), q.Limit},
		func(row scanner) error {
			p, err := scanPackage(row)
			out = append(out, p)
			return err
		})
	if err != nil {
		return nil, mapErr(ctx, "list packages", err)
	}
	return out, nil
}

// packagesIn adds the existing packages of ids to into.
func (t *writeTx) packagesIn(ctx context.Context, workspace string, ids []string, into map[string]ledger.Package) error {
	err := t.eachIn(ctx, qPackagesIn, workspace, ids, func(row scanner) error {
		p, err := scanPackage(row)
		into[p.ID] = p
		return err
	})
	return mapErr(ctx, "read packages", err)
}

// insertPackages creates the batch's new packages; an ID taken meanwhile
// is ErrConflict (deciding again finds the package and refuses the op).
func (t *writeTx) insertPackages(ctx context.Context, pkgs []ledger.Package) error {
	err := execEach(ctx, &t.readTx, qInsertPackage, pkgs, func(p ledger.Package) ([]any, error) {
		return []any{
			p.Workspace, p.ID, p.DisplayName, p.Credits, p.Price.Currency, p.Price.Units, int64(p.Price.Nanos),
			boolInt(p.Active), toMicros(p.CreateTime), toMicros(p.UpdateTime), int64(p.Validity),
		}, nil
	}, nil)
	return mapErr(ctx, "insert packages", err)
}

// updatePackages replaces the mutable fields of packages the batch read.
func (t *writeTx) updatePackages(ctx context.Context, pkgs []ledger.Package) error {
	err := execEach(ctx, &t.readTx, qUpdatePackage, pkgs, func(p ledger.Package) ([]any, error) {
		return []any{
			p.DisplayName, p.Credits, p.Price.Currency, p.Price.Units, int64(p.Price.Nanos),
			boolInt(p.Active), toMicros(p.UpdateTime), int64(p.Validity), p.Workspace, p.ID,
		}, nil
	}, func(p ledger.Package, res sql.Result) error {
		return oneRow(res, fmt.Sprintf("package %s/%s does not exist", p.Workspace, p.ID))
	})
	return mapErr(ctx, "update packages", err)
}
