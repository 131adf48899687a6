package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

// migrations holds the schema changes, applied in the order of their
// numeric prefix ("0001_init.sql") and never edited once released.
//
//go:embed migrations/*.sql
var migrations embed.FS

type migration struct {
	version int64
	name    string
	sql     string
}

// loadMigrations reads the embedded files in version order.
func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	seen := map[int64]string{}
	for _, e := range entries {
		name := e.Name()
		prefix, _, ok := strings.Cut(name, "_")
		v, err := strconv.ParseInt(prefix, 10, 64)
		if !ok || err != nil || v < 1 || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("sqlite: migration %q is not named NNNN_name.sql", name)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("sqlite: migrations %q and %q share version %d", other, name, v)
		}
		seen[v] = name
		body, err := fs.ReadFile(migrations, "migrations/"+name)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
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
		known[m.version] = true
	}
	for v, name := range applied {
		if !known[v] {
			return fmt.Errorf("sqlite: the database has migration %d (%s) that this binary does not know: it was written by a newer version", v, name)
		}
	}
	for _, m := range all {
		if name, ok := applied[m.version]; ok {
			if name != m.name {
				return fmt.Errorf("sqlite: migration %d is recorded as %q, this binary has %q", m.version, name, m.name)
			}
			continue
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO schema_migrations (version, name, applied_time) VALUES (?, ?, ?)`,
			m.version, m.name, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("sqlite: record migration %s: %w", m.name, err)
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
