package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/creditledger/creditledger/internal/ledger"
)

// PostgreSQL error codes the store reacts to
// (https://www.postgresql.org/docs/current/errcodes-appendix.html).
const (
	codeUniqueViolation      = "23505"
	codeCheckViolation       = "23514"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeLockNotAvailable     = "55P03"
	codeQueryCanceled        = "57014"
	codeReadOnlyTransaction  = "25006"
	codeUndefinedTable       = "42P01"
)

// packagesPkey is the constraint whose violation means "package ID taken".
const packagesPkey = "packages_pkey"

// pgCode returns the SQLSTATE of a server error in err's chain, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// mapErr translates a driver error at the store's boundary. The SQL text and
// the server's message stay in the cause, for logs only; callers see the
// ledger error's safe message.
//
//   - context cancellation or deadline: wrapped, errors.Is still matches;
//   - serialization failure, deadlock, lock timeout, a unique violation
//     (a concurrent writer won): ledger.ErrConflict, which the Service retries;
//     except a taken package ID, which is ledger.ErrAlreadyExists;
//   - an unreachable server, a broken connection, a closed pool, a server
//     shutting down, out of connections or resources, or a read-only server
//     (a standby after failover), and a pooler's errors (pgbouncer reports
//     a lost server, a server it cannot reach and a client that waited too
//     long for one as 08P01): ledger.UnavailableError;
//   - anything else: wrapped with the operation, which the Service reports
//     as INTERNAL.
func mapErr(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	wrapped := fmt.Errorf("postgres: %s: %w", op, err)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return wrapped
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == codeUniqueViolation && pe.ConstraintName == packagesPkey:
			return ledger.AlreadyExistsError("package", wrapped)
		case pe.Code == codeUniqueViolation, pe.Code == codeSerializationFailure,
			pe.Code == codeDeadlockDetected, pe.Code == codeLockNotAvailable:
			return ledger.ConflictError(wrapped)
		case pe.Code == codeQueryCanceled:
			if cerr := ctx.Err(); cerr != nil {
				return fmt.Errorf("postgres: %s: %w (%w)", op, cerr, err)
			}
			return ledger.UnavailableError(wrapped) // statement_timeout, or cancelled by an operator
		case lostConnection(pe), // the server or a pooler in front of it went away, or refuses connections for now
			strings.HasPrefix(pe.Code, "53"),   // insufficient resources: disk, memory, connections
			pe.Code == codeReadOnlyTransaction: // connected to a standby
			return ledger.UnavailableError(wrapped)
		}
		return wrapped
	}
	if cerr := ctx.Err(); cerr != nil {
		// pgx interrupts a statement by expiring the connection's deadline
		// when ctx ends; report the cause the caller knows.
		return fmt.Errorf("postgres: %s: %w (%w)", op, cerr, err)
	}
	if unreachable(err) {
		return ledger.UnavailableError(wrapped)
	}
	return wrapped
}

// lostConnection reports a server error that ends the connection rather
// than refusing a statement: a connection exception (class 08) or an
// operator's intervention (57P: shutdown, termination). PostgreSQL sends
// these, and so does a pooler about the server connection it lost under a
// client's transaction (pgbouncer: 08P01 "server conn crashed?"). A COMMIT
// sent before one may have committed.
func lostConnection(pe *pgconn.PgError) bool {
	return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P")
}

// unreachable reports a failure to reach the server or to keep talking to it.
func unreachable(err error) bool {
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr), errors.As(err, &netErr), pgconn.Timeout(err), pgconn.SafeToRetry(err):
		return true
	case errors.Is(err, puddle.ErrClosedPool), errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ENOENT): // a unix socket that is gone
		return true
	}
	return false
}
