// Package postgres is the production ledger store: PostgreSQL through pgx v5
// (pgxpool), with embedded migrations applied by Migrate.
//
// Correctness comes from the database, so that several ledgerd replicas can
// share it: every write is a batch (batch.go) in one READ COMMITTED
// transaction that locks what it decides on (SELECT … FOR UPDATE in one
// global order), moves accounts with conditional UPDATEs that re-check the
// version they read, and meets the schema's constraints and triggers, which
// refuse whatever would break the ledger's invariants (negative balances,
// rewritten history, a broken chain, a request decided twice, two active
// rates, a duplicate idempotency key). Reads (View) run in REPEATABLE READ
// READ ONLY transactions: one snapshot.
package postgres

import (
	"context"
	"errors"
	"sync"
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
	// ReadURLs are read replicas: hot standbys of the primary, each a
	// connection URL. Empty: every read goes to the primary.
	ReadURLs []string
	// MaxReplicaLagBytes is how far, in bytes of write-ahead log, a
	// replica may replay behind the primary and still serve reads
	// (0: DefaultMaxReplicaLagBytes).
	MaxReplicaLagBytes int64
	// ReplicaCheckInterval is how often the replicas are measured
	// (0: DefaultReplicaCheckInterval).
	ReplicaCheckInterval time.Duration
	// AllowPrivilegedRole lets read replicas serve when their role is not
	// held by row-level security (LEDGER_DB_ALLOW_PRIVILEGED_ROLE, for
	// development); otherwise such a replica is refused (ReplicaRefused).
	AllowPrivilegedRole bool
	// OnReplicaState, when set, is told of every change of a replica's
	// state (logs).
	OnReplicaState func(ReplicaStat)
	// Pooler is what stands between the store and PostgreSQL; the zero
	// value is a direct connection (pooler.go).
	Pooler Pooler
}

// Store is the PostgreSQL ledger store. It implements ledger.Store and
// ledger.Auditor and is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	// registered holds the workspaces whose row in the registry
	// (ledger_workspaces, never deleted) a batch of this process has seen
	// committed: later batches of theirs skip the statement.
	registered sync.Map
	// replicas serve ViewReplica; nil without LEDGER_READ_DATABASE_URL.
	replicas *replicas
}

var (
	_ ledger.Store         = (*Store)(nil)
	_ ledger.Auditor       = (*Store)(nil)
	_ ledger.ReplicaViewer = (*Store)(nil)
)

// Open connects to the database at url and checks that it answers, that it
// is reached the way opts.Pooler says, and that its schema is migrated to
// this binary's version. It does not migrate: run Migrate (`ledgerd
// migrate`) first.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parse error may quote the URL, password included.
		return nil, errors.New("postgres: invalid database URL")
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	configurePooler(cfg, opts.Pooler)
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
	if err := checkDirect(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	if err := checkSchema(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	st := &Store{pool: pool}
	if len(opts.ReadURLs) > 0 {
		if st.replicas, err = openReplicas(ctx, pool, opts.ReadURLs, opts); err != nil {
			pool.Close()
			return nil, err
		}
	}
	return st, nil
}

// Pool returns the connection pool (health checks, metrics, tests).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// rollback ends tx even when ctx has ended; a failed rollback closes the
// connection (pgx does), which ends the transaction on the server.
func rollback(ctx context.Context, tx pgx.Tx) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = tx.Rollback(rctx)
}

// View runs fn in a REPEATABLE READ READ ONLY transaction: every read sees
// the snapshot taken at its first statement. The transaction begins with
// the first read, in the same round trip (viewTx).
func (s *Store) View(ctx context.Context, fn func(ctx context.Context, tx ledger.ReadTx) error) error {
	return view(ctx, s.pool, "read", fn)
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return mapErr(ctx, "ping", err)
	}
	return nil
}

// Close closes the pool; calls made after Close fail with an unavailable
// error.
func (s *Store) Close() error {
	s.replicas.close()
	s.pool.Close()
	return nil
}

// PoolStats reports the pool for metrics (metrics.PoolStatser).
func (s *Store) PoolStats() (idle, inUse, maxConns int, acquireWait time.Duration) {
	st := s.pool.Stat()
	return int(st.IdleConns()), int(st.AcquiredConns()), int(st.MaxConns()), st.AcquireDuration()
}

// PendingRequestStats counts PENDING requests across every workspace and
// returns the submit time of the oldest (metrics.PendingStatser): one
// transaction per workspace, under its own setting (eachWorkspace).
func (s *Store) PendingRequestStats(ctx context.Context) (count int64, oldest time.Time, err error) {
	err = s.eachWorkspace(ctx, "count pending requests", func(b *pgx.Batch, ws string) {
		b.Queue(qPendingStats, ws).QueryRow(func(row pgx.Row) error {
			var n int64
			var first pgtype.Timestamptz
			if err := row.Scan(&n, &first); err != nil {
				return err
			}
			count += n
			if t := fromTime(first); !t.IsZero() && (oldest.IsZero() || t.Before(oldest)) {
				oldest = t
			}
			return nil
		})
	})
	if err != nil {
		return 0, time.Time{}, err
	}
	return count, oldest, nil
}

const qPendingStats = `SELECT count(*), min(create_time) FROM credit_requests WHERE status = 'PENDING' AND workspace = $1`
