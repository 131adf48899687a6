package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/creditledger/creditledger/internal/store/migration"
)

// migrations holds the schema changes, applied in the order of their
// numeric prefix ("0001_init.sql") and never edited once released.
//
//go:embed migrations/*.sql
var migrations embed.FS

// migrateLockKey is the advisory lock that serialises Migrate across
// processes ("CLmigrat"). Each of Migrate's transactions takes it
// (pg_advisory_xact_lock) and COMMIT releases it: a session lock would
// stay on whichever server connection a pooler in transaction mode ran it
// on, and block every later migration.
const migrateLockKey int64 = 0x434c6d6967726174

// loadMigrations reads the embedded files in version order.
func loadMigrations() ([]migration.File, error) {
	all, err := migration.Load(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return all, nil
}

const qCreateMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version      bigint      NOT NULL PRIMARY KEY,
	name         text        NOT NULL,
	applied_time timestamptz NOT NULL
)`

// Migrate is MigrateRole with the default runtime role, without a password.
func Migrate(ctx context.Context, url string) error {
	return MigrateRole(ctx, url, RuntimeRole{Name: DefaultRuntimeRole})
}

// MigrateRole applies the embedded migrations that the database at url
// lacks, in order, each in its own transaction together with its row in
// schema_migrations, then creates or checks the runtime role and resets its
// privileges (role.go), in one more. url must connect as the schema's
// owner. It is idempotent, and safe when several processes migrate at
// once: every transaction takes a transaction-scoped advisory lock and
// reads what is applied under it, so the later ones find everything
// applied. It refuses a database that has migrations this binary does not
// know (written by a newer version), and a runtime role that could escape
// row-level security.
//
// Nothing outlives a transaction (no session lock, no named prepared
// statement): url may reach PostgreSQL through a pooler in transaction
// mode, such as pgbouncer.
//
// Migrations are applied in the order of their version; versions need not
// be contiguous, and one missing from the database is applied even when a
// later one already is.
func MigrateRole(ctx context.Context, url string, role RuntimeRole) (err error) {
	all, err := loadMigrations()
	if err != nil {
		return err
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return mapErr(ctx, "migrate: connect", err)
	}
	if cfg.DefaultQueryExecMode == pgx.QueryExecModeCacheStatement {
		// Unnamed statements only: a pooler may run the next transaction
		// on a server connection that never saw a named one.
		cfg.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return mapErr(ctx, "migrate: connect", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err = errors.Join(err, conn.Close(cctx))
	}()
	// The schema_migrations table, and a first refusal of a database
	// written by a newer version.
	if err := migrateStep(ctx, conn, all, func(pgx.Tx, map[int64]string) error { return nil }); err != nil {
		return err
	}
	for _, m := range all {
		err := migrateStep(ctx, conn, all, func(tx pgx.Tx, applied map[int64]string) error {
			if _, ok := applied[m.Version]; ok {
				return nil // applied meanwhile by another process
			}
			return applyMigration(ctx, tx, m)
		})
		if err != nil {
			return err
		}
	}
	return migrateStep(ctx, conn, all, func(tx pgx.Tx, _ map[int64]string) error {
		return ensureRuntimeRole(ctx, tx, role)
	})
}

// migrateStep runs fn in one transaction, under the migration lock, with
// the migrations applied so far (after checking that this binary, whose
// migrations are all, knows them all), and commits.
func migrateStep(ctx context.Context, conn *pgx.Conn, all []migration.File, fn func(tx pgx.Tx, applied map[int64]string) error) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return mapErr(ctx, "migrate: begin", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockKey); err != nil {
		return mapErr(ctx, "migrate: lock", err)
	}
	if _, err := tx.Exec(ctx, qCreateMigrations); err != nil {
		return mapErr(ctx, "migrate: create schema_migrations", err)
	}
	applied, err := appliedMigrations(ctx, tx)
	if err != nil {
		return mapErr(ctx, "migrate: read schema_migrations", err)
	}
	if err := checkApplied(all, applied); err != nil {
		return err
	}
	if err := fn(tx, applied); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return mapErr(ctx, "migrate: commit", err)
	}
	return nil
}

// applyMigration runs one migration and records it, in tx.
func applyMigration(ctx context.Context, tx dbtx, m migration.File) error {
	// No arguments: pgx sends it with the simple protocol, which runs the
	// file's statements in order.
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return fmt.Errorf("postgres: migration %s: %w", m.Name, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_time) VALUES ($1, $2, now())`,
		m.Version, m.Name); err != nil {
		return mapErr(ctx, "migrate: record "+m.Name, err)
	}
	return nil
}

// querier is what both a connection and a pool offer.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// dbtx is what both a connection and a transaction offer (Begin: a
// transaction, or a savepoint in one).
type dbtx interface {
	querier
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func appliedMigrations(ctx context.Context, q querier) (map[int64]string, error) {
	rows, err := q.Query(ctx, `SELECT version, name FROM schema_migrations`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
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

// checkApplied refuses a database with migrations this binary does not
// know, or whose recorded names differ from the embedded ones.
func checkApplied(all []migration.File, applied map[int64]string) error {
	known := map[int64]string{}
	for _, m := range all {
		known[m.Version] = m.Name
	}
	for v, name := range applied {
		want, ok := known[v]
		if !ok {
			return fmt.Errorf("postgres: the database has migration %d (%s) that this binary does not know: "+
				"it was written by a newer version", v, name)
		}
		if name != want {
			return fmt.Errorf("postgres: migration %d is recorded as %q, this binary has %q", v, name, want)
		}
	}
	return nil
}

// checkSchema verifies that every embedded migration has been applied.
func checkSchema(ctx context.Context, q querier) error {
	all, err := loadMigrations()
	if err != nil {
		return err
	}
	need := all[len(all)-1].Version
	applied, err := appliedMigrations(ctx, q)
	if pgCode(err) == codeUndefinedTable {
		return fmt.Errorf("postgres: schema version 0, need %d: run `ledgerd migrate`", need)
	}
	if err != nil {
		return mapErr(ctx, "read schema version", err)
	}
	if err := checkApplied(all, applied); err != nil {
		return err
	}
	var have int64
	for _, m := range all {
		if _, ok := applied[m.Version]; !ok {
			break
		}
		have = m.Version
	}
	if have != need {
		return fmt.Errorf("postgres: schema version %d, need %d: run `ledgerd migrate`", have, need)
	}
	return nil
}
