// Package sqlite is the embedded ledger store: one SQLite file, pure Go
// (modernc.org/sqlite, no cgo), with the same semantics as the PostgreSQL
// store, proven by the same conformance suite (internal/store/storetest).
//
// Durability: WAL journal with synchronous=FULL, so a commit is fsynced
// before Write returns and an acknowledged write survives a crash of the
// process or the machine. Writes go through one connection whose
// transactions start with BEGIN IMMEDIATE: the database's write lock
// serialises writers (also across processes sharing the file), so nothing
// a batch read can change before it commits (see batch.go). Reads go
// through a separate pool of query-only connections; each View is one
// deferred read transaction, i.e. one WAL snapshot, and never waits for
// writers.
//
// Opening the path Memory gives a private store that lives in memory for
// as long as it is open (tests, and tools that need a ledger for a
// moment). It is the same store on a file of a memory-backed file
// system, so it keeps every semantics above: one writer connection,
// snapshot reads that never wait for it, the same durability settings.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/creditledger/creditledger/internal/ledger"
)

// Options tunes the store; the zero value is the production default.
type Options struct {
	// BusyTimeout is how long a statement waits for a lock held by another
	// connection or process before it fails (then mapped to ErrConflict).
	// Default 5s.
	BusyTimeout time.Duration
}

const defaultBusyTimeout = 5 * time.Second

// Store is the embedded ledger store. It implements ledger.Store and
// ledger.Auditor and is safe for concurrent use.
type Store struct {
	path string
	w    *sql.DB // one connection: BEGIN IMMEDIATE transactions
	r    *sql.DB // query-only connections: deferred read transactions
	ws   map[string]*sql.Stmt
	rs   map[string]*sql.Stmt
	// tempDir is the directory of a Memory store, removed at Close.
	tempDir string
}

var (
	_ ledger.Store   = (*Store)(nil)
	_ ledger.Auditor = (*Store)(nil)
)

// Open opens (creating it, mode 0600, when missing) the database file at
// path, applies the embedded migrations and returns the store. The path
// Memory opens a new private store in memory instead.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == Memory {
		return openMemory(ctx, opts)
	}
	return open(ctx, path, opts)
}

// open opens the store on the file at path.
func open(ctx context.Context, path string, opts Options) (*Store, error) {
	busy := opts.BusyTimeout
	if busy <= 0 {
		busy = defaultBusyTimeout
	}
	w, err := openWriter(ctx, path, busy)
	if err != nil {
		return nil, err
	}
	if err := migrate(ctx, w); err != nil {
		_ = w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn(path, busy, true))
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxIdleTime(0)
	r.SetConnMaxLifetime(0)
	s := &Store{path: path, w: w, r: r}
	if s.ws, err = prepareAll(ctx, w, append(readQueries(), writeQueries()...)); err != nil {
		_ = s.Close()
		return nil, err
	}
	if s.rs, err = prepareAll(ctx, r, readQueries()); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// Migrate creates the file at path if needed (mode 0600) and applies the
// embedded migrations that are not applied yet. It is idempotent and safe
// when several processes migrate the same file at once.
func Migrate(ctx context.Context, path string) error {
	if path == Memory {
		return errors.New("sqlite: an in-memory store is migrated when it is opened, and lost when it is closed")
	}
	w, err := openWriter(ctx, path, defaultBusyTimeout)
	if err != nil {
		return err
	}
	if err := migrate(ctx, w); err != nil {
		_ = w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("sqlite: close %s: %w", path, err)
	}
	return nil
}

// openWriter creates the file if needed and opens the single-connection
// write pool, checking that the durability settings took effect.
func openWriter(ctx context.Context, path string, busy time.Duration) (*sql.DB, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	if err := createFile(path); err != nil {
		return nil, err
	}
	w, err := sql.Open("sqlite", dsn(path, busy, false))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// One connection: SQLite has one writer anyway, and a second pooled
	// writer would only wait on the file lock instead of in the pool.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	// Switching a new file to WAL needs an exclusive lock that SQLite does
	// not wait for under busy_timeout; when several processes create the
	// file at once, the losers retry until the winner is done.
	deadline := time.Now().Add(busy)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		err = checkPragmas(ctx, w)
		if err == nil || sqliteCode(err)&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			err = ctx.Err()
		case <-t.C:
		}
		if ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return w, nil
}

// createFile creates the database file owner-only; SQLite gives its -wal
// and -shm files the same permissions. An existing file is left as it is.
func createFile(path string) error {
	//nolint:gosec // G703: the operator's configured database path is the point
	f, err := os.OpenFile(filepath.Clean(path), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	// Make the new name durable too (SQLite syncs the directory for the
	// -wal file it creates, not for a main file it did not create).
	dir, err := os.Open(filepath.Dir(filepath.Clean(path))) //nolint:gosec // G703: as above
	if err != nil {
		return fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	serr := dir.Sync()
	if cerr := dir.Close(); serr == nil {
		serr = cerr
	}
	if serr != nil {
		return fmt.Errorf("sqlite: create %s: sync directory: %w", path, serr)
	}
	return nil
}

// dsn names the file as a URI with the pragmas every pooled connection
// runs when it opens (database/sql may open connections at any time, so
// per-connection settings belong in the DSN, not in one Exec).
func dsn(path string, busy time.Duration, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	if readOnly {
		q.Set("_query_only", "1")
	} else {
		// Checkpoint every ~40 MiB of WAL instead of every 4 MiB: a page
		// that batches keep changing (an account, an index leaf) is copied
		// back into the database file once per checkpoint, and the
		// checkpoint runs inside a commit, on the one writer.
		q.Add("_pragma", "wal_autocheckpoint(10000)")
		// A batch's multi-row INSERTs change more pages in one statement
		// than the statement journal holds in memory (64 KiB): SQLite then
		// spilled it to a temporary file, opened, written and closed for
		// every such statement. In memory, it is only memory; it exists
		// to undo a failed statement, and a crash ends the transaction
		// anyway (the WAL keeps what is durable).
		q.Add("_pragma", "temp_store(MEMORY)")
		q.Set("_txlock", "immediate")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// checkPragmas refuses to run without the settings durability depends on.
func checkPragmas(ctx context.Context, db *sql.DB) error {
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %q, want wal", mode)
	}
	var syncMode, fk int
	if err := db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&syncMode); err != nil {
		return err
	}
	if syncMode < 2 { // 2 = FULL, 3 = EXTRA
		return fmt.Errorf("synchronous is %d, want FULL (2)", syncMode)
	}
	if err := db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return err
	}
	if fk != 1 {
		return errors.New("foreign_keys is off")
	}
	return nil
}

// Path returns the database file's path (for a Memory store, the file
// in its temporary directory).
func (s *Store) Path() string { return s.path }

// View runs fn in a read-only transaction: one WAL snapshot, taken at the
// transaction's first read.
func (s *Store) View(ctx context.Context, fn func(ctx context.Context, tx ledger.ReadTx) error) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return mapErr(ctx, "begin read", err)
	}
	done := false
	defer func() {
		if !done {
			_ = tx.Rollback()
		}
	}()
	err = fn(ctx, &readTx{tx: tx, stmts: s.rs})
	done = true
	if err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return mapErr(ctx, "end read", err)
	}
	return nil
}

// Ping reports whether the database file answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
		return mapErr(ctx, "ping", err)
	}
	return nil
}

// Close closes both pools; a Memory store's data is then deleted.
// In-flight calls fail with an unavailable error.
func (s *Store) Close() error {
	closeAll(s.rs)
	closeAll(s.ws)
	err := errors.Join(s.r.Close(), s.w.Close())
	if s.tempDir != "" {
		err = errors.Join(err, os.RemoveAll(s.tempDir))
	}
	return err
}

// PoolStats reports both pools together (metrics.PoolStatser). The
// writer's wait time is the time Write calls queued for the one writer.
func (s *Store) PoolStats() (idle, inUse, maxConns int, acquireWait time.Duration) {
	for _, db := range []*sql.DB{s.w, s.r} {
		st := db.Stats()
		idle += st.Idle
		inUse += st.InUse
		maxConns += st.MaxOpenConnections
		acquireWait += st.WaitDuration
	}
	return idle, inUse, maxConns, acquireWait
}

// PendingRequestStats counts PENDING requests across every workspace and
// returns the submit time of the oldest (metrics.PendingStatser).
func (s *Store) PendingRequestStats(ctx context.Context) (count int64, oldest time.Time, err error) {
	var first sql.NullInt64
	err = s.r.QueryRowContext(ctx,
		`SELECT count(*), min(create_time) FROM credit_requests WHERE status = 'PENDING'`).Scan(&count, &first)
	if err != nil {
		return 0, time.Time{}, mapErr(ctx, "count pending requests", err)
	}
	return count, fromMicros(first), nil
}

// IntegrityCheck runs SQLite's integrity_check and foreign_key_check and
// fails unless both find nothing wrong.
func (s *Store) IntegrityCheck(ctx context.Context) error {
	var problems []string
	err := pragmaRows(ctx, s.r, "PRAGMA integrity_check", 1, func(v []sql.NullString) {
		if v[0].String != "ok" {
			problems = append(problems, v[0].String)
		}
	})
	if err != nil {
		return mapErr(ctx, "integrity check", err)
	}
	err = pragmaRows(ctx, s.r, "PRAGMA foreign_key_check", 4, func(v []sql.NullString) {
		problems = append(problems, fmt.Sprintf("%s row %s: missing %s (foreign key %s)", v[0].String, v[1].String, v[2].String, v[3].String))
	})
	if err != nil {
		return mapErr(ctx, "foreign key check", err)
	}
	if len(problems) > 0 {
		if len(problems) > 20 {
			problems = append(problems[:20], fmt.Sprintf("… and %d more", len(problems)-20))
		}
		return fmt.Errorf("sqlite: integrity check of %s failed: %s", s.path, strings.Join(problems, "; "))
	}
	return nil
}

// pragmaRows calls fn with the n columns of every row q returns.
func pragmaRows(ctx context.Context, db *sql.DB, q string, n int, fn func([]sql.NullString)) error {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer func() { _ = rows.Close() }()
	vals := make([]sql.NullString, n)
	ptrs := make([]any, n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		fn(vals)
	}
	return rows.Err()
}
