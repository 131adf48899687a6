// Package metrics exports what operators alert on about the store behind
// ledgerd: how long its transactions take, whether it answers, its
// connection pool, the agency's queue of pending credit requests, and the
// credits reserved by active holds.
// (Per-RPC metrics come from the gRPC middleware in grpcserver, business
// counters from grpcserver.Observer.)
package metrics

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/creditledger/creditledger/internal/ledger"
)

// PoolStatser is implemented by stores with a connection pool.
type PoolStatser interface {
	// PoolStats reports idle and in-use connections, the pool's maximum, and
	// the total time callers have waited for a connection.
	PoolStats() (idle, inUse, maxConns int, acquireWait time.Duration)
}

// PendingStatser is implemented by stores that can count pending credit
// requests across every workspace in one query.
type PendingStatser interface {
	// PendingRequestStats returns how many requests are PENDING and the
	// submit time of the oldest (zero when none).
	PendingRequestStats(ctx context.Context) (count int64, oldest time.Time, err error)
}

// HoldStatser is implemented by stores that can sum the active holds
// across every workspace in one query.
type HoldStatser interface {
	// HoldStats returns how many holds are ACTIVE and the credits they
	// reserve.
	HoldStats(ctx context.Context) (active int64, held int64, err error)
}

// Store wraps a ledger.Store and times every Write and View.
type Store struct {
	ledger.Store
	seconds *prometheus.HistogramVec
	obs     [6]prometheus.Observer
	replica ledger.ReplicaViewer // nil when the store has no read replicas
}

// InstrumentStore registers creditledger_store_transaction_seconds on reg
// and returns s wrapped so that it observes every store transaction.
func InstrumentStore(s ledger.Store, reg prometheus.Registerer) (*Store, error) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "creditledger", Name: "store_transaction_seconds",
		Help:    "Duration of store transactions (mode write: one batch, view: read-only snapshot, replica_view: read-only snapshot on a read replica).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"mode", "outcome"})
	if err := reg.Register(h); err != nil {
		return nil, err
	}
	st := &Store{Store: s, seconds: h}
	st.obs[writeOK], st.obs[writeErr] = h.WithLabelValues("write", "ok"), h.WithLabelValues("write", "error")
	st.obs[viewOK], st.obs[viewErr] = h.WithLabelValues("view", "ok"), h.WithLabelValues("view", "error")
	if rv, ok := s.(ledger.ReplicaViewer); ok && rv.HasReplicas() {
		st.replica = rv
		st.obs[replicaOK], st.obs[replicaErr] = h.WithLabelValues("replica_view", "ok"), h.WithLabelValues("replica_view", "error")
	}
	return st, nil
}

// Write times the wrapped Write.
func (s *Store) Write(ctx context.Context, set ledger.WriteSet, decide func(*ledger.Snapshot) (*ledger.Effects, error)) error {
	start := time.Now()
	err := s.Store.Write(ctx, set, decide)
	s.observe(writeOK, writeErr, err, start)
	return err
}

// View times the wrapped View.
func (s *Store) View(ctx context.Context, fn func(context.Context, ledger.ReadTx) error) error {
	start := time.Now()
	err := s.Store.View(ctx, fn)
	s.observe(viewOK, viewErr, err, start)
	return err
}

// HasReplicas reports whether the wrapped store has read replicas
// (ledger.ReplicaViewer).
func (s *Store) HasReplicas() bool { return s.replica != nil }

// ViewReplica times the wrapped ViewReplica (mode replica_view).
func (s *Store) ViewReplica(ctx context.Context, fn func(context.Context, ledger.ReadTx) error) error {
	if s.replica == nil {
		return ledger.ErrNoReplica
	}
	start := time.Now()
	err := s.replica.ViewReplica(ctx, fn)
	s.observe(replicaOK, replicaErr, err, start)
	return err
}

// Label sets, resolved once: the label set is bounded (mode × ok/error),
// and a lookup per call would cost more than the observation.
const (
	writeOK = iota
	writeErr
	viewOK
	viewErr
	replicaOK
	replicaErr
)

func (s *Store) observe(ok, failed int, err error, start time.Time) {
	i := ok
	if err != nil {
		i = failed
	}
	s.obs[i].Observe(time.Since(start).Seconds())
}

// Health holds creditledger_store_up, set by whoever pings the store.
type Health struct{ up prometheus.Gauge }

// NewHealth registers creditledger_store_up (0 until the first ping).
func NewHealth(reg prometheus.Registerer) (*Health, error) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "creditledger", Name: "store_up",
		Help: "1 when the store answered its last ping, 0 otherwise.",
	})
	if err := reg.Register(g); err != nil {
		return nil, err
	}
	return &Health{up: g}, nil
}

// Set records the outcome of a ping.
func (h *Health) Set(up bool) {
	if up {
		h.up.Set(1)
	} else {
		h.up.Set(0)
	}
}

// RegisterStoreCollectors registers the pool gauges (when the store has a
// pool), the pending-request gauges and the hold gauges (when it can count
// them). Pending and hold figures are read at most once per interval,
// however often Prometheus scrapes, and each read is bounded by a timeout.
func RegisterStoreCollectors(reg prometheus.Registerer, s ledger.Store, interval time.Duration) error {
	if p, ok := s.(PoolStatser); ok {
		if err := reg.Register(&poolCollector{s: p}); err != nil {
			return err
		}
	}
	if p, ok := s.(PendingStatser); ok {
		if err := reg.Register(&pendingCollector{s: p, interval: interval, now: time.Now}); err != nil {
			return err
		}
	}
	if h, ok := s.(HoldStatser); ok {
		if err := reg.Register(&holdCollector{s: h, interval: interval, now: time.Now}); err != nil {
			return err
		}
	}
	return nil
}

var (
	poolConnsDesc = prometheus.NewDesc("creditledger_store_pool_connections",
		"Store connections by state (idle, in_use).", []string{"state"}, nil)
	poolMaxDesc = prometheus.NewDesc("creditledger_store_pool_max_connections",
		"Maximum number of store connections.", nil, nil)
	poolWaitDesc = prometheus.NewDesc("creditledger_store_pool_acquire_wait_seconds_total",
		"Total time spent waiting for a store connection.", nil, nil)
	pendingDesc = prometheus.NewDesc("creditledger_pending_requests",
		"Credit requests waiting for the agency's decision, across workspaces.", nil, nil)
	pendingAgeDesc = prometheus.NewDesc("creditledger_pending_requests_oldest_age_seconds",
		"Age of the oldest pending credit request (0 when none).", nil, nil)
	pendingErrDesc = prometheus.NewDesc("creditledger_pending_requests_scrape_errors_total",
		"Failed reads of the pending-request figures.", nil, nil)
	holdsActiveDesc = prometheus.NewDesc("creditledger_holds_active",
		"Holds ACTIVE now, across workspaces.", nil, nil)
	heldCreditsDesc = prometheus.NewDesc("creditledger_held_credits",
		"Credits reserved by ACTIVE holds, across workspaces.", nil, nil)
	holdsErrDesc = prometheus.NewDesc("creditledger_holds_scrape_errors_total",
		"Failed reads of the hold figures.", nil, nil)
)

type poolCollector struct{ s PoolStatser }

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolConnsDesc
	ch <- poolMaxDesc
	ch <- poolWaitDesc
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	idle, inUse, maxConns, wait := c.s.PoolStats()
	ch <- prometheus.MustNewConstMetric(poolConnsDesc, prometheus.GaugeValue, float64(idle), "idle")
	ch <- prometheus.MustNewConstMetric(poolConnsDesc, prometheus.GaugeValue, float64(inUse), "in_use")
	ch <- prometheus.MustNewConstMetric(poolMaxDesc, prometheus.GaugeValue, float64(maxConns))
	ch <- prometheus.MustNewConstMetric(poolWaitDesc, prometheus.CounterValue, wait.Seconds())
}

type pendingCollector struct {
	s        PendingStatser
	interval time.Duration
	now      func() time.Time

	mu     sync.Mutex
	read   time.Time // when count and oldest were read
	count  int64
	oldest time.Time
	errors float64
}

func (c *pendingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- pendingAgeDesc
	ch <- pendingErrDesc
}

func (c *pendingCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.read.IsZero() || now.Sub(c.read) >= c.interval {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		count, oldest, err := c.s.PendingRequestStats(ctx)
		cancel()
		if err != nil {
			c.errors++
		} else {
			c.read, c.count, c.oldest = now, count, oldest
		}
	}
	age := 0.0
	if !c.oldest.IsZero() {
		age = max(now.Sub(c.oldest).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(c.count))
	ch <- prometheus.MustNewConstMetric(pendingAgeDesc, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(pendingErrDesc, prometheus.CounterValue, c.errors)
}

// holdCollector exports the active holds, read at most once per interval.
type holdCollector struct {
	s        HoldStatser
	interval time.Duration
	now      func() time.Time

	mu     sync.Mutex
	read   time.Time // when active and held were read
	active int64
	held   int64
	errors float64
}

func (c *holdCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- holdsActiveDesc
	ch <- heldCreditsDesc
	ch <- holdsErrDesc
}

func (c *holdCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.read.IsZero() || now.Sub(c.read) >= c.interval {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		active, held, err := c.s.HoldStats(ctx)
		cancel()
		if err != nil {
			c.errors++
		} else {
			c.read, c.active, c.held = now, active, held
		}
	}
	ch <- prometheus.MustNewConstMetric(holdsActiveDesc, prometheus.GaugeValue, float64(c.active))
	ch <- prometheus.MustNewConstMetric(heldCreditsDesc, prometheus.GaugeValue, float64(c.held))
	ch <- prometheus.MustNewConstMetric(holdsErrDesc, prometheus.CounterValue, c.errors)
}

// Workspaces passes ledger.Auditor through to the wrapped store, so that
// what needs it (ledger.Verify, the expiry sweep) works on the wrapper.
func (s *Store) Workspaces(ctx context.Context, tx ledger.ReadTx) ([]string, error) {
	a, ok := s.Store.(ledger.Auditor)
	if !ok {
		return nil, fmt.Errorf("metrics: store %T cannot list its workspaces", s.Store)
	}
	return a.Workspaces(ctx, tx)
}

// IdempotencyRecords passes ledger.Auditor through to the wrapped store.
func (s *Store) IdempotencyRecords(ctx context.Context, tx ledger.ReadTx, workspace string, fn func(ledger.IdempotencyRecord) error) error {
	a, ok := s.Store.(ledger.Auditor)
	if !ok {
		return fmt.Errorf("metrics: store %T cannot list its idempotency records", s.Store)
	}
	return a.IdempotencyRecords(ctx, tx, workspace, fn)
}

var _ ledger.Auditor = (*Store)(nil)

// ReplicaState is one read replica's state at its last check.
type ReplicaState struct {
	Name     string // host:port/database
	State    string // streaming, lagging, down, promoted, refused
	Usable   bool
	LagBytes int64 // bytes of write-ahead log behind the primary; -1 unknown
}

var (
	replicaUsableDesc = prometheus.NewDesc("creditledger_read_replica_usable",
		"1 when the read replica serves reads (reachable, in recovery, within LEDGER_READ_MAX_LAG_BYTES of the primary), 0 otherwise; state says why.",
		[]string{"replica", "state"}, nil)
	replicaLagDesc = prometheus.NewDesc("creditledger_read_replica_lag_bytes",
		"Bytes of write-ahead log the read replica had not replayed at its last check (absent while unknown).",
		[]string{"replica"}, nil)
)

// RegisterReplicaCollector exports the read replicas' states, as states
// reports them (measured by the store's own monitor, not at scrape time).
func RegisterReplicaCollector(reg prometheus.Registerer, states func() []ReplicaState) error {
	return reg.Register(replicaCollector(states))
}

type replicaCollector func() []ReplicaState

func (c replicaCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- replicaUsableDesc
	ch <- replicaLagDesc
}

func (c replicaCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c() {
		usable := 0.0
		if r.Usable {
			usable = 1
		}
		ch <- prometheus.MustNewConstMetric(replicaUsableDesc, prometheus.GaugeValue, usable, r.Name, r.State)
		if r.LagBytes >= 0 {
			ch <- prometheus.MustNewConstMetric(replicaLagDesc, prometheus.GaugeValue, float64(r.LagBytes), r.Name)
		}
	}
}
