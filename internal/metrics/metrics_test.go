package metrics

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/creditledger/creditledger/internal/ledger"
)

type fakeStore struct {
	ledger.Store // nil: only the methods below are called
	reads        int
	count        int64
	oldest       time.Time
	err          error
}

func (f *fakeStore) PendingRequestStats(context.Context) (int64, time.Time, error) {
	f.reads++
	return f.count, f.oldest, f.err
}

func (f *fakeStore) PoolStats() (int, int, int, time.Duration) {
	return 3, 2, 10, 1500 * time.Millisecond
}

func (f *fakeStore) Write(_ context.Context, _ ledger.WriteSet, decide func(*ledger.Snapshot) (*ledger.Effects, error)) error {
	_, err := decide(&ledger.Snapshot{})
	return err
}

func (f *fakeStore) View(_ context.Context, fn func(context.Context, ledger.ReadTx) error) error {
	return fn(context.Background(), nil)
}

func TestPendingGaugesAreCachedAndAged(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	f := &fakeStore{count: 4, oldest: now.Add(-90 * time.Minute)}
	c := &pendingCollector{s: f, interval: 10 * time.Second, now: func() time.Time { return now }}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)

	want := `
# HELP creditledger_pending_requests Credit requests waiting for the agency's decision, across workspaces.
# TYPE creditledger_pending_requests gauge
creditledger_pending_requests 4
# HELP creditledger_pending_requests_oldest_age_seconds Age of the oldest pending credit request (0 when none).
# TYPE creditledger_pending_requests_oldest_age_seconds gauge
creditledger_pending_requests_oldest_age_seconds 5400
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "creditledger_pending_requests", "creditledger_pending_requests_oldest_age_seconds"); err != nil {
		t.Fatal(err)
	}
	// A second scrape within the interval does not query the store again,
	// but the age keeps growing.
	now = now.Add(5 * time.Second)
	f.count = 99
	if got := testutil.ToFloat64(gaugeOnly(c, pendingDesc)); got != 4 || f.reads != 1 {
		t.Fatalf("within the interval: count %v after %d reads, want the cached 4 after 1", got, f.reads)
	}
	now = now.Add(10 * time.Second)
	if got := testutil.ToFloat64(gaugeOnly(c, pendingDesc)); got != 99 || f.reads != 2 {
		t.Fatalf("after the interval: count %v after %d reads, want 99 after 2", got, f.reads)
	}
	// A failing read keeps the last figures and counts the error.
	now = now.Add(time.Minute)
	f.err, f.count = errors.New("store down"), 7
	if got := testutil.ToFloat64(gaugeOnly(c, pendingErrDesc)); got != 1 {
		t.Fatalf("scrape errors = %v, want 1", got)
	}
}

// gaugeOnly collects c and keeps the metric of desc.
func gaugeOnly(c prometheus.Collector, desc *prometheus.Desc) prometheus.Collector {
	return filtered{c, desc}
}

type filtered struct {
	c    prometheus.Collector
	desc *prometheus.Desc
}

func (f filtered) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc }

func (f filtered) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric, 16)
	f.c.Collect(all)
	close(all)
	for m := range all {
		if m.Desc() == f.desc {
			ch <- m
		}
	}
}

func TestPoolAndStoreTiming(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	f := &fakeStore{}
	if err := RegisterStoreCollectors(reg, f, time.Second); err != nil {
		t.Fatal(err)
	}
	s, err := InstrumentStore(f, reg)
	if err != nil {
		t.Fatal(err)
	}
	refused := errors.New("refused")
	decided := func(err error) func(*ledger.Snapshot) (*ledger.Effects, error) {
		return func(*ledger.Snapshot) (*ledger.Effects, error) { return &ledger.Effects{}, err }
	}
	_ = s.Write(context.Background(), ledger.WriteSet{}, decided(nil))
	_ = s.Write(context.Background(), ledger.WriteSet{}, decided(refused))
	_ = s.View(context.Background(), func(context.Context, ledger.ReadTx) error { return nil })

	want := `
# HELP creditledger_store_pool_connections Store connections by state (idle, in_use).
# TYPE creditledger_store_pool_connections gauge
creditledger_store_pool_connections{state="idle"} 3
creditledger_store_pool_connections{state="in_use"} 2
# HELP creditledger_store_pool_max_connections Maximum number of store connections.
# TYPE creditledger_store_pool_max_connections gauge
creditledger_store_pool_max_connections 10
# HELP creditledger_store_pool_acquire_wait_seconds_total Total time spent waiting for a store connection.
# TYPE creditledger_store_pool_acquire_wait_seconds_total counter
creditledger_store_pool_acquire_wait_seconds_total 1.5
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "creditledger_store_pool_connections",
		"creditledger_store_pool_max_connections", "creditledger_store_pool_acquire_wait_seconds_total"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode, outcome string
		want          uint64
	}{{"write", "ok", 1}, {"write", "error", 1}, {"view", "ok", 1}, {"view", "error", 0}} {
		var m dto.Metric
		if err := s.seconds.WithLabelValues(tc.mode, tc.outcome).(prometheus.Histogram).Write(&m); err != nil {
			t.Fatal(err)
		}
		if got := m.GetHistogram().GetSampleCount(); got != tc.want {
			t.Errorf("store_transaction_seconds{mode=%q,outcome=%q} count = %d, want %d", tc.mode, tc.outcome, got, tc.want)
		}
	}
}

// holdStore is a store that can sum its active holds.
type holdStore struct {
	fakeStore
	active, held int64
	holdReads    int
	holdErr      error
}

func (h *holdStore) HoldStats(context.Context) (int64, int64, error) {
	h.holdReads++
	return h.active, h.held, h.holdErr
}

func TestHoldGaugesAreCached(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	f := &holdStore{active: 3, held: 450}
	c := &holdCollector{s: f, interval: 15 * time.Second, now: func() time.Time { return now }}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	want := `
# HELP creditledger_held_credits Credits reserved by ACTIVE holds, across workspaces.
# TYPE creditledger_held_credits gauge
creditledger_held_credits 450
# HELP creditledger_holds_active Holds ACTIVE now, across workspaces.
# TYPE creditledger_holds_active gauge
creditledger_holds_active 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "creditledger_holds_active", "creditledger_held_credits"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(10 * time.Second)
	f.active = 9
	if got := testutil.ToFloat64(gaugeOnly(c, holdsActiveDesc)); got != 3 || f.holdReads != 1 {
		t.Fatalf("within the interval: %v after %d reads, want the cached 3 after 1", got, f.holdReads)
	}
	now = now.Add(5 * time.Second)
	if got := testutil.ToFloat64(gaugeOnly(c, holdsActiveDesc)); got != 9 || f.holdReads != 2 {
		t.Fatalf("after the interval: %v after %d reads, want 9 after 2", got, f.holdReads)
	}
	now = now.Add(time.Minute)
	f.holdErr, f.held = errors.New("store down"), 1
	if got := testutil.ToFloat64(gaugeOnly(c, holdsErrDesc)); got != 1 {
		t.Fatalf("scrape errors = %v, want 1", got)
	}
	if got := testutil.ToFloat64(gaugeOnly(c, heldCreditsDesc)); got != 450 {
		t.Fatalf("after a failed read: %v, want the last good 450", got)
	}
}

// The hold gauges exist only for a store that can count its holds.
func TestHoldGaugesRegisteredByCapability(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		store ledger.Store
		want  bool
	}{{&holdStore{}, true}, {&fakeStore{}, false}} {
		reg := prometheus.NewPedanticRegistry()
		if err := RegisterStoreCollectors(reg, tc.store, time.Second); err != nil {
			t.Fatal(err)
		}
		n, err := testutil.GatherAndCount(reg, "creditledger_holds_active")
		if err != nil {
			t.Fatal(err)
		}
		if (n == 1) != tc.want {
			t.Errorf("%T: %d series of creditledger_holds_active", tc.store, n)
		}
	}
}
