package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"time"

	"github.com/creditledger/creditledger/internal/store/migration"
)

// migrations holds the schema changes, applied in the order of their
// numeric prefix ("0001_init.sql") and never edited once released.
//
//go:embed migrations/*.sql
var migrations embed.FS

// loadMigrations reads the embedded files in version order.
func loadMigrations() ([]migration.File, error) {
	all, err := migration.Load(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return all, nil
}

// migrate applies the missing migrations in one BEGIN IMMEDIATE
// transaction: a second process migrating at the same time waits for the
// write lock (busy_timeout), then finds everything applied.
func migrate(ctx context.Context, db *sql.DB) error {
	all, err := loadMigrations()
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `
		CREATE TABLE IF NOT EXISTS schema_migrations (
			version     INTEGER NOT NULL PRIMARY KEY,
			name        TEXT    NOT NULL,
			applied_time INTEGER NOT NULL
		) STRICT`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	applied, err := appliedMigrations(ctx, tx)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	known := map[int64]bool{}
	for _, m := range all {
		known[m.Version] = true
	}
	for v, name := range applied {
		if !known[v] {
			return fmt.Errorf("sqlite: the database has migration %d (%s) that this binary does not know: it was written by a newer version", v, name)
		}
	}
	for _, m := range all {
		if name, ok := applied[m.Version]; ok {
			if name != m.Name {
				return fmt.Errorf("sqlite: migration %d is recorded as %q, this binary has %q", m.Version, name, m.Name)
			}
			continue
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO schema_migrations (version, name, applied_time) VALUES (?, ?, ?)`,
			m.Version, m.Name, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("sqlite: record migration %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: migrate: commit: %w", err)
	}
	return nil
}

func appliedMigrations(ctx context.Context, tx *sql.Tx) (map[int64]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT version, name FROM schema_migrations`)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	out := map[int64]string{}
	for rows.Next() {
		var v int64
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			return nil, err
		}
		out[v] = name
	}
	return out, rows.Err()
}
