package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/creditledger/creditledger/internal/ledger"
)

// Read replicas: hot standbys that replay the primary's write-ahead log
// (streaming replication) serve the reads the domain marks as such
// (ledger.ReplicaViewer): balances, histories, account lists, statements,
// event pages. Writes, idempotency checks and every other read stay on the
// primary.
//
// Whether a replica may serve is measured in the log, not in time: every
// ReplicaCheckInterval the store reads the primary's WAL position, then
// each replica's replay position; a replica is used while it is reachable,
// still in recovery (a promoted standby follows nobody and is dropped) and
// no more than MaxReplicaLagBytes behind. Read-your-writes is exact on top
// of that: a read that carries a min_version is checked against the
// account's version in the replica's own snapshot, and goes to the primary
// when the replica has not replayed it.

// Defaults of Options' replica settings.
const (
	DefaultMaxReplicaLagBytes   = 16 << 20
	DefaultReplicaCheckInterval = time.Second
)

// replica is one read pool and what the last check found.
type replica struct {
	pool *pgxpool.Pool
	name string // host:port/database, for metrics and logs; never credentials

	lag   atomic.Int64 // bytes behind the primary at the last check; -1: unknown
	state atomic.Value // string: ReplicaStreaming, ReplicaLagging, ReplicaDown, ReplicaPromoted, ReplicaRefused
	// changed is told of each change of state (Options.OnReplicaState).
	changed func(ReplicaStat)
}

// Replica states, as ReplicaStats reports them.
const (
	ReplicaStreaming = "streaming" // in recovery, within the lag bound: serves reads
	ReplicaLagging   = "lagging"   // in recovery, further behind than the bound
	ReplicaDown      = "down"      // unreachable, or it failed a read
	ReplicaPromoted  = "promoted"  // not in recovery: no longer a standby of the primary
	ReplicaRefused   = "refused"   // its role is not held by row-level security (see SessionRole)
)

// qReplicaCheck reads a replica's recovery state, replay position, and
// whether its role escapes row-level security, as SessionRole does.
const qReplicaCheck = `
	SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,
		r.rolsuper OR r.rolbypassrls OR pg_has_role(c.relowner, 'USAGE')
	FROM pg_roles r, pg_class c WHERE r.rolname = current_user AND c.oid = 'accounts'::regclass`

// ReplicaStat is one replica's state at the last check.
type ReplicaStat struct {
	Name     string
	State    string
	Usable   bool
	LagBytes int64 // -1 when unknown
}

// replicas is the store's set of read replicas and their monitor.
type replicas struct {
	list     []*replica
	next     atomic.Uint64
	maxLag   int64
	interval time.Duration
	// allowPrivileged lets a replica connect as a role that row-level
	// security does not hold (development only, as for the primary).
	allowPrivileged bool
	stop            context.CancelFunc
	done            sync.WaitGroup
}

func openReplicas(ctx context.Context, primary *pgxpool.Pool, urls []string, opts Options) (*replicas, error) {
	rs := &replicas{maxLag: opts.MaxReplicaLagBytes, interval: opts.ReplicaCheckInterval, allowPrivileged: opts.AllowPrivilegedRole}
	if rs.maxLag <= 0 {
		rs.maxLag = DefaultMaxReplicaLagBytes
	}
	if rs.interval <= 0 {
		rs.interval = DefaultReplicaCheckInterval
	}
	for i, raw := range urls {
		cfg, err := pgxpool.ParseConfig(raw)
		if err != nil {
			rs.close()
			return nil, fmt.Errorf("postgres: invalid read replica URL (number %d)", i+1)
		}
		if opts.MaxConns > 0 {
			cfg.MaxConns = opts.MaxConns
		}
		configurePooler(cfg, opts.Pooler) // a replica may sit behind the same kind of pooler
		if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
			cfg.ConnConfig.RuntimeParams["application_name"] = "ledgerd-read"
		}
		// A replica that does not answer must not hold a read for long:
		// the primary answers it instead.
		if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > 2*time.Second {
			cfg.ConnConfig.ConnectTimeout = 2 * time.Second
		}
		pool, err := pgxpool.NewWithConfig(ctx, cfg) // connects lazily: a replica that is down does not stop the ledger
		if err != nil {
			rs.close()
			return nil, mapErr(ctx, "open read replica", err)
		}
		r := &replica{pool: pool, name: replicaName(cfg)}
		r.lag.Store(-1)
		r.state.Store("unknown")
		r.changed = opts.OnReplicaState
		rs.list = append(rs.list, r)
	}
	rs.check(ctx, primary)
	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	rs.stop = cancel
	rs.done.Add(1)
	go rs.monitor(mctx, primary)
	return rs, nil
}

func replicaName(cfg *pgxpool.Config) string {
	host := cfg.ConnConfig.Host
	if !strings.HasPrefix(host, "/") {
		host = net.JoinHostPort(host, strconv.Itoa(int(cfg.ConnConfig.Port)))
	}
	return host + "/" + cfg.ConnConfig.Database
}

func (rs *replicas) monitor(ctx context.Context, primary *pgxpool.Pool) {
	defer rs.done.Done()
	t := time.NewTicker(rs.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rs.check(ctx, primary)
		}
	}
}

// check measures every replica against the primary's WAL position. The
// primary is read first: a replica whose replay position has reached it
// holds at least every commit acknowledged before the check began.
func (rs *replicas) check(ctx context.Context, primary *pgxpool.Pool) {
	cctx, cancel := context.WithTimeout(ctx, max(rs.interval, 2*time.Second))
	defer cancel()
	var primaryLSN string
	primaryErr := primary.QueryRow(cctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&primaryLSN)
	head, perr := parseLSN(primaryLSN)
	for _, r := range rs.list {
		var inRecovery, bypass bool
		var replay *string
		err := r.pool.QueryRow(cctx, qReplicaCheck).Scan(&inRecovery, &replay, &bypass)
		switch {
		case err != nil:
			r.set(ReplicaDown, -1)
		case bypass && !rs.allowPrivileged:
			r.set(ReplicaRefused, -1)
		case !inRecovery:
			r.set(ReplicaPromoted, -1)
		case replay == nil:
			r.set(ReplicaLagging, -1) // has not replayed anything yet
		case primaryErr != nil || perr != nil:
			// The primary's position is unknown (it is down: writes fail
			// anyway): keep serving reads from a replica that follows it,
			// at the lag measured last.
			r.set(ReplicaStreaming, r.lag.Load())
		default:
			pos, err := parseLSN(*replay)
			if err != nil {
				r.set(ReplicaDown, -1)
				continue
			}
			lag := int64(0)
			if head > pos {
				lag = int64(head - pos) //nolint:gosec // G115: WAL positions fit in int64 for 2^63 bytes of log.
			}
			if lag > rs.maxLag {
				r.set(ReplicaLagging, lag)
			} else {
				r.set(ReplicaStreaming, lag)
			}
		}
	}
}

func (r *replica) set(state string, lag int64) {
	old := r.state.Swap(state)
	r.lag.Store(lag)
	if old != state && r.changed != nil {
		r.changed(ReplicaStat{Name: r.name, State: state, Usable: state == ReplicaStreaming, LagBytes: lag})
	}
}

// usable reports whether the last check found r serving (streaming).
func (r *replica) usable() bool { return r.state.Load() == ReplicaStreaming }

// parseLSN reads a pg_lsn's text form, two hexadecimal halves "X/Y".
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("postgres: not a WAL position: %q", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("postgres: not a WAL position: %q", s)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("postgres: not a WAL position: %q", s)
	}
	return h<<32 | l, nil
}

// pick returns a usable replica, in turn, or nil.
func (rs *replicas) pick() *replica {
	n := len(rs.list)
	start := rs.next.Add(1)
	for i := range n {
		if r := rs.list[(start+uint64(i))%uint64(n)]; r.usable() { //nolint:gosec // G115: i < n, both small.
			return r
		}
	}
	return nil
}

func (rs *replicas) close() {
	if rs == nil {
		return
	}
	if rs.stop != nil {
		rs.stop()
		rs.done.Wait()
	}
	for _, r := range rs.list {
		r.pool.Close()
	}
}

// HasReplicas reports whether read replicas are configured
// (ledger.ReplicaViewer).
func (s *Store) HasReplicas() bool { return s.replicas != nil }

// ViewReplica runs fn in a REPEATABLE READ READ ONLY transaction on a read
// replica that the last check found usable (ledger.ReplicaViewer). Without
// one, or when the replica fails (unreachable, broken, or cancelling the
// read to replay the log), it answers ledger.ErrNoReplica and the caller
// reads the primary; a replica that failed is not used again until a check
// finds it well.
func (s *Store) ViewReplica(ctx context.Context, fn func(ctx context.Context, tx ledger.ReadTx) error) error {
	if s.replicas == nil {
		return ledger.ErrNoReplica
	}
	r := s.replicas.pick()
	if r == nil {
		return ledger.ErrNoReplica
	}
	err := view(ctx, r.pool, "replica read", fn)
	if err != nil && ctx.Err() == nil && replicaFailed(err) {
		r.set(ReplicaDown, -1)
		return fmt.Errorf("%w: %s: %w", ledger.ErrNoReplica, r.name, err)
	}
	return err
}

// replicaFailed tells a failure of the replica (the primary may still
// answer) from fn's own outcome (not found, invalid…), which the primary
// would give too.
func replicaFailed(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return true // the replica's own refusal: a schema it has not replayed yet, a cancelled read
	}
	var le *ledger.Error
	if !errors.As(err, &le) {
		return false
	}
	switch le.Code {
	case ledger.CodeUnavailable, ledger.CodeAborted, ledger.CodeInternal:
		return true
	}
	return false
}

// ReplicaStats reports each read replica's state at the last check
// (metrics).
func (s *Store) ReplicaStats() []ReplicaStat {
	if s.replicas == nil {
		return nil
	}
	out := make([]ReplicaStat, len(s.replicas.list))
	for i, r := range s.replicas.list {
		st, _ := r.state.Load().(string)
		out[i] = ReplicaStat{Name: r.name, State: st, Usable: st == ReplicaStreaming, LagBytes: r.lag.Load()}
	}
	return out
}

// CheckReplicas measures the replicas now instead of at the next tick
// (tests, and an operator's status command).
func (s *Store) CheckReplicas(ctx context.Context) {
	if s.replicas != nil {
		s.replicas.check(ctx, s.pool)
	}
}
