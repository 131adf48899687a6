// Package postgres is the production ledger store: PostgreSQL through pgx v5
// (pgxpool), with embedded migrations applied by Migrate.
//
// Correctness comes from the database, so that several ledgerd replicas can
// share it: writes run in READ COMMITTED transactions that lock what they
// read before deciding (SELECT … FOR UPDATE on the account and the credit
// request, a transaction-scoped advisory lock on the idempotency key), the
// account moves with a conditional UPDATE that re-checks the version and the
// balance chain, and the schema's constraints and triggers refuse whatever
// would break the ledger's invariants (negative balances, rewritten history,
// a broken chain, a request decided twice, two active rates). Reads (View)
// run in REPEATABLE READ READ ONLY transactions: one snapshot.
//
// With Options.GroupCommit, concurrent Update calls share database
// transactions, one savepoint per call (see group.go).
package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/creditledger/creditledger/internal/ledger"
)

// Options tunes the store; the zero value is the production default.
type Options struct {
	// MaxConns caps the connection pool; 0 keeps pgxpool's default
	// (the larger of 4 and the number of CPUs), and a pool_max_conns in
	// the URL is honoured when MaxConns is 0.
	MaxConns int32
	// GroupCommit applies the functions of concurrent Update calls in
	// shared database transactions, each isolated by a savepoint.
	GroupCommit bool
}

// Store is the PostgreSQL ledger store. It implements ledger.Store and
// ledger.Auditor and is safe for concurrent use.
type Store struct {
	pool  *pgxpool.Pool
	group *grouper // nil unless Options.GroupCommit
}

var (
	_ ledger.Store   = (*Store)(nil)
	_ ledger.Auditor = (*Store)(nil)
)

// Open connects to the database at url and checks that it answers and that
// its schema is migrated to this binary's version. It does not migrate: run
// Migrate (`ledgerd migrate`) first.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parse error may quote the URL, password included.
		return nil, errors.New("postgres: invalid database URL")
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "ledgerd"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, mapErr(ctx, "open", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, mapErr(ctx, "ping", err)
	}
	if err := checkSchema(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	s := &Store{pool: pool}
	if opts.GroupCommit {
		s.group = newGrouper(s, int(cfg.MaxConns))
	}
	return s, nil
}

// Pool returns the connection pool (health checks, metrics, tests).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Update runs fn in one READ COMMITTED transaction and commits when fn
// returns nil; fn's error is returned unchanged after a rollback. With group
// commit, fn may share the transaction with other calls (see group.go).
func (s *Store) Update(ctx context.Context, fn func(ctx context.Context, tx ledger.Tx) error) error {
	if s.group != nil {
		return s.group.update(ctx, fn)
	}
	return s.updateAlone(ctx, fn)
}

// updateAlone runs fn in a transaction of its own.
func (s *Store) updateAlone(ctx context.Context, fn func(ctx context.Context, tx ledger.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return mapErr(ctx, "begin", err)
	}
	done := false
	defer func() {
		if !done {
			rollback(ctx, tx) // fn panicked
		}
	}()
	err = fn(ctx, &writeTx{readTx{tx: tx}})
	done = true
	if err != nil {
		rollback(ctx, tx)
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return mapErr(ctx, "commit", err)
	}
	return nil
}

// rollback ends tx even when ctx has ended; a failed rollback closes the
// connection (pgx does), which ends the transaction on the server.
func rollback(ctx context.Context, tx pgx.Tx) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = tx.Rollback(rctx)
}

// View runs fn in a REPEATABLE READ READ ONLY transaction: every read sees
// the snapshot taken at its first statement.
func (s *Store) View(ctx context.Context, fn func(ctx context.Context, tx ledger.ReadTx) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return mapErr(ctx, "begin read", err)
	}
	done := false
	defer func() {
		if !done {
			rollback(ctx, tx)
		}
	}()
	err = fn(ctx, &readTx{tx: tx})
	done = true
	if err != nil {
		rollback(ctx, tx)
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return mapErr(ctx, "end read", err)
	}
	return nil
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return mapErr(ctx, "ping", err)
	}
	return nil
}

// Close waits for pending group commits, then closes the pool; calls made
// after Close fail with an unavailable error.
func (s *Store) Close() error {
	if s.group != nil {
		s.group.close()
	}
	s.pool.Close()
	return nil
}

// PoolStats reports the pool for metrics (metrics.PoolStatser).
func (s *Store) PoolStats() (idle, inUse, maxConns int, acquireWait time.Duration) {
	st := s.pool.Stat()
	return int(st.IdleConns()), int(st.AcquiredConns()), int(st.MaxConns()), st.AcquireDuration()
}

// PendingRequestStats counts PENDING requests across every workspace and
// returns the submit time of the oldest (metrics.PendingStatser).
func (s *Store) PendingRequestStats(ctx context.Context) (count int64, oldest time.Time, err error) {
	var first pgtype.Timestamptz
	err = s.pool.QueryRow(ctx,
		`SELECT count(*), min(create_time) FROM credit_requests WHERE status = 'PENDING'`).Scan(&count, &first)
	if err != nil {
		return 0, time.Time{}, mapErr(ctx, "count pending requests", err)
	}
	return count, fromTime(first), nil
}
