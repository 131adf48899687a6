package grpcserver

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/creditledger/creditledger/internal/ledger"
)

// Observer is a ledger.Observer that counts business events in Prometheus.
type Observer struct {
	credits   *prometheus.CounterVec
	posted    *prometheus.CounterVec
	refusals  *prometheus.CounterVec
	replays   *prometheus.CounterVec
	conflicts *prometheus.CounterVec
}

var _ ledger.Observer = (*Observer)(nil)

// NewObserver registers the ledger's business counters on reg.
func NewObserver(reg prometheus.Registerer) (*Observer, error) {
	o := &Observer{
		credits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "creditledger", Name: "credits_posted_total",
			Help: "Credits moved by newly posted transactions (replays excluded), by type (IN/OUT) and kind.",
		}, []string{"type", "kind"}),
		posted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "creditledger", Name: "transactions_posted_total",
			Help: "Newly posted transactions (replays excluded), by type and kind.",
		}, []string{"type", "kind"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "creditledger", Name: "refusals_total",
			Help: "Operations refused for a business reason (INSUFFICIENT_CREDITS, VERSION_MISMATCH…).",
		}, []string{"operation", "reason"}),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "creditledger", Name: "idempotent_replays_total",
			Help: "Requests answered by replaying an earlier identical request's outcome.",
		}, []string{"operation"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "creditledger", Name: "store_conflicts_total",
			Help: "Store transactions retried after a concurrency conflict.",
		}, []string{"operation"}),
	}
	for _, c := range []prometheus.Collector{o.credits, o.posted, o.refusals, o.replays, o.conflicts} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Posted counts a newly posted transaction and its credits.
func (o *Observer) Posted(t ledger.Transaction) {
	typ, kind := t.Type.String(), t.Kind.String()
	o.posted.WithLabelValues(typ, kind).Inc()
	o.credits.WithLabelValues(typ, kind).Add(float64(t.Amount))
}

// Refused counts a business refusal.
func (o *Observer) Refused(op ledger.Operation, reason string) {
	o.refusals.WithLabelValues(operationLabel(op), reason).Inc()
}

// Replayed counts an idempotent replay.
func (o *Observer) Replayed(op ledger.Operation) { o.replays.WithLabelValues(operationLabel(op)).Inc() }

// Conflict counts a retried store transaction.
func (o *Observer) Conflict(op ledger.Operation) {
	o.conflicts.WithLabelValues(operationLabel(op)).Inc()
}

// operationLabel names the operation; settings and catalog writes run
// without an idempotent operation name.
func operationLabel(op ledger.Operation) string {
	if op == "" {
		return "other"
	}
	return string(op)
}
