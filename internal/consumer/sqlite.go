package consumer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"time"

	"modernc.org/sqlite" // also the "sqlite" database/sql driver: pure Go, no cgo
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/creditledger/creditledger/internal/store/migration"
)

// Schema is a service's SQLite schema: the files NNNN_name.sql in Dir of
// FS (an embed.FS), applied in the order of their number and never edited
// once released. The version of the last one applied is kept in PRAGMA
// user_version, as the services have always recorded it: a database
// written by any earlier release migrates forward.
type Schema struct {
	FS  fs.FS
	Dir string
}

// migrations reads the schema's files in version order.
func (s Schema) migrations() ([]migration.File, error) {
	files, err := migration.Load(s.FS, s.Dir)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no migrations in %s", s.Dir)
	}
	return files, nil
}

// Latest is the version a database is migrated to.
func (s Schema) Latest() (int64, error) {
	files, err := s.migrations()
	if err != nil {
		return 0, err
	}
	return files[len(files)-1].Version, nil
}

// SQL is the text of one migration (tests build the databases of earlier
// releases with it).
func (s Schema) SQL(version int64) (string, error) {
	files, err := s.migrations()
	if err != nil {
		return "", err
	}
	for _, f := range files {
		if f.Version == version {
			return f.SQL, nil
		}
	}
	return "", fmt.Errorf("no migration %d in %s", version, s.Dir)
}

// OpenSQLite opens (creating if needed) the SQLite file at path with the
// durability settings, and migrates it to schema's latest version.
//
// The settings: WAL journal, synchronous=FULL (a commit that returned
// survives a crash or a power loss), foreign keys on, a busy timeout, and
// IMMEDIATE write transactions (no lock upgrade deadlocks). One
// connection: the services' writes are short and serialize anyway, and no
// ledger call ever happens inside a database transaction.
func OpenSQLite(ctx context.Context, path string, schema Schema) (*sql.DB, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Set("_txlock", "immediate")
	// Processes opening a new file at once race to switch it to WAL, which
	// SQLite answers SQLITE_BUSY without waiting: the loser opens again.
	for attempt := 1; ; attempt++ {
		db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
		if err != nil {
			return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
		}
		db.SetMaxOpenConns(1)
		db.SetConnMaxIdleTime(0)
		err = setUp(ctx, db, schema)
		if err == nil {
			return db, nil
		}
		_ = db.Close()
		if !busy(err) || attempt == openAttempts {
			return nil, fmt.Errorf("sqlite: %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("sqlite: %s: %w", path, err)
		case <-time.After(time.Duration(attempt) * 10 * time.Millisecond):
		}
	}
}

// openAttempts bounds how often OpenSQLite opens a file that stays busy.
const openAttempts = 20

// busy reports whether err is SQLite's SQLITE_BUSY or SQLITE_LOCKED.
func busy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	c := se.Code() & 0xff
	return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
}

func setUp(ctx context.Context, db *sql.DB, schema Schema) error {
	mode, err := Pragma(ctx, db, "journal_mode")
	if err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %q, want wal", mode)
	}
	return Migrate(ctx, db, schema)
}

// Migrate applies the migrations of schema newer than the database's
// user_version, and records the latest, in one IMMEDIATE transaction: a
// second process migrating at the same time waits for the write lock,
// then finds nothing left to do. A database newer than schema is refused.
func Migrate(ctx context.Context, db *sql.DB, schema Schema) error {
	files, err := schema.migrations()
	if err != nil {
		return err
	}
	latest := files[len(files)-1].Version
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var v int64
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	switch {
	case v == latest:
		return nil
	case v > latest:
		return fmt.Errorf("schema version %d is newer than this binary's %d", v, latest)
	}
	for _, f := range files {
		if f.Version <= v {
			continue
		}
		if _, err := tx.ExecContext(ctx, f.SQL); err != nil {
			return fmt.Errorf("migrate to version %d (%s): %w", f.Version, f.Name, err)
		}
	}
	// PRAGMA takes no parameters; latest is a number of ours.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", latest)); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return tx.Commit()
}

// Row is a row to scan: *sql.Row or *sql.Rows.
type Row interface {
	Scan(dest ...any) error
}

// Querier runs queries: *sql.DB or *sql.Tx.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// QueryOne scans the row query selects with scan. An error says what
// failed ("get order: …"); none selected is sql.ErrNoRows, wrapped.
func QueryOne[T any](ctx context.Context, q Querier, what string, scan func(Row) (T, error), query string, args ...any) (T, error) {
	v, err := scan(q.QueryRowContext(ctx, query, args...))
	if err != nil {
		var zero T
		return zero, fmt.Errorf("%s: %w", what, err)
	}
	return v, nil
}

// QueryAll scans every row query selects with scan; none is an empty
// slice (a JSON []). An error says what failed.
func QueryAll[T any](ctx context.Context, q Querier, what string, scan func(Row) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer func() { _ = rows.Close() }()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// ScanString scans a row of one text column.
func ScanString(r Row) (string, error) {
	var s string
	err := r.Scan(&s)
	return s, err
}

// Pragma reads one PRAGMA value.
func Pragma(ctx context.Context, db *sql.DB, name string) (string, error) {
	var v string
	err := db.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v)
	return v, err
}

// TimeLayout is how the services store times: UTC, microseconds, fixed
// width, so that stored times sort as text.
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// FormatTime is t as stored.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// ParseTime reads a stored time; anything else is the zero time.
func ParseTime(s string) time.Time {
	t, _ := time.Parse(TimeLayout, s)
	return t
}

// Cursor is the sequence of the last ledger event of workspace that the
// service applied, from the table event_cursors (workspace TEXT PRIMARY
// KEY, sequence INTEGER, update_time TEXT) its migrations create; 0
// before the first.
func Cursor(ctx context.Context, db *sql.DB, workspace string) (int64, error) {
	var seq int64
	err := db.QueryRowContext(ctx, `SELECT sequence FROM event_cursors WHERE workspace = ?`, workspace).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("event cursor: %w", err)
	}
	return seq, nil
}

// SaveCursor records in event_cursors that the workspace's events up to
// seq are applied. A cursor never moves back.
func SaveCursor(ctx context.Context, db *sql.DB, workspace string, seq int64) error {
	_, err := db.ExecContext(ctx, `
		INSERT INTO event_cursors (workspace, sequence, update_time) VALUES (?1, ?2, ?3)
		ON CONFLICT (workspace) DO UPDATE SET sequence = MAX(sequence, excluded.sequence), update_time = excluded.update_time`,
		workspace, seq, FormatTime(time.Now()))
	if err != nil {
		return fmt.Errorf("save event cursor: %w", err)
	}
	return nil
}
