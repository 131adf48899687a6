package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/creditledger/creditledger/internal/ledger"
)

// sqliteCode returns the extended result code of err, or 0.
func sqliteCode(err error) int {
	var se *msqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// isUnique reports a UNIQUE or PRIMARY KEY violation.
func isUnique(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// mapErr translates a driver error at the store's boundary:
//   - an error of the domain's type: unchanged;
//   - context cancellation or deadline: wrapped, errors.Is still matches;
//   - a lock held by another writer past busy_timeout (SQLITE_BUSY,
//     SQLITE_LOCKED), or a UNIQUE or PRIMARY KEY violation (a row another
//     writer created first): ledger.ErrConflict, on which the Service
//     decides the batch again from fresh state;
//   - a closed store, a broken connection, a file that cannot be opened or
//     read: ledger.UnavailableError;
//   - anything else, such as a CHECK or trigger refusing a write: wrapped
//     with the operation, so the Service treats it as INTERNAL (and applies
//     a batch again in halves); the SQL text stays in the cause, for logs
//     only.
func mapErr(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	var translated *ledger.Error
	if errors.As(err, &translated) {
		return err // a lost conditional write, already ErrConflict
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	wrapped := fmt.Errorf("sqlite: %s: %w", op, err)
	code := sqliteCode(err)
	switch code & 0xff {
	case sqlite3.SQLITE_INTERRUPT:
		// An interrupted statement: the driver interrupts when ctx ends.
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("sqlite: %s: %w (%w)", op, cerr, err)
		}
		return ledger.ConflictError(wrapped)
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return ledger.ConflictError(wrapped)
	case sqlite3.SQLITE_CONSTRAINT:
		if isUnique(err) {
			return ledger.ConflictError(wrapped)
		}
	case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY:
		return ledger.UnavailableError(wrapped)
	}
	if errors.Is(err, sql.ErrConnDone) || errors.Is(err, driver.ErrBadConn) ||
		strings.Contains(err.Error(), "database is closed") { // database/sql's errDBClosed is unexported
		return ledger.UnavailableError(wrapped)
	}
	if cerr := ctx.Err(); cerr != nil && errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("sqlite: %s: %w (%w)", op, cerr, err)
	}
	return wrapped
}
