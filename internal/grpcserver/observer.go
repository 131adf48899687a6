package grpcserver

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/creditledger/creditledger/internal/ledger"
)

// Observer is a ledger.Observer that counts business events in Prometheus.
type Observer struct {
	credits                   *prometheus.CounterVec
	posted                    *prometheus.CounterVec
	refusals                  *prometheus.CounterVec
	replays                   *prometheus.CounterVec
	conflicts                 *prometheus.CounterVec
	batches                   *prometheus.CounterVec
	batchSize                 prometheus.Histogram
	batchTime                 prometheus.Histogram
	waiting                   prometheus.Gauge
	holds                     *prometheus.CounterVec
	reversals                 *prometheus.CounterVec
	events, deliveries        *prometheus.CounterVec
	deliveryLag, deliveryTime prometheus.Histogram
	disabled                  prometheus.Counter
	reads                     *prometheus.CounterVec
	readsBy                   map[string]prometheus.Counter // resolved once: every balance read counts

	// Series of the hot path, resolved once (a label lookup per posting
	// costs more than the increment): by type, then kind.
	postedBy  [3][ledger.KindExpiry + 1]prometheus.Counter
	eventsBy  map[ledger.EventType]prometheus.Counter // resolved once: every credit and debit has an event
	creditsBy [3][ledger.KindExpiry + 1]prometheus.Counter
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
			Help: "Operations decided again because their batch met a concurrent writer (another replica).",
		}, []string{"operation"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "creditledger", Name: "write_batches_total",
			Help: "Write batches applied, by outcome: committed, unavailable (commit failed or unknown: every op answered UNAVAILABLE), failed, split (refused by the database and applied again in halves).",
		}, []string{"outcome"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "creditledger", Name: "write_batch_size",
			Help:    "Operations per committed write batch.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		batchTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "creditledger", Name: "write_batch_seconds",
			Help:    "Duration of committed write batches, from the store's first read to the commit.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "creditledger", Name: "write_queue_ops",
			Help: "Write operations queued for a batch (all workspaces).",
		}),
	}
	o.holds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "creditledger", Name: "holds_total",
		Help: "Holds created (status ACTIVE) and ended (CAPTURED, VOIDED, EXPIRED).",
	}, []string{"status"})
	o.reversals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "creditledger", Name: "reversals_total",
		Help: "REVERSAL entries posted, by the kind of the entry they reverse.",
	}, []string{"kind"})
	o.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "creditledger", Name: "events_written_total",
		Help: "Events written with the changes they describe, by type.",
	}, []string{"type"})
	o.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "creditledger", Name: "webhook_deliveries_total",
		Help: "Webhook delivery attempts by outcome (delivered: the receiver answered 2xx; failed: anything else).",
	}, []string{"outcome"})
	o.deliveryLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "creditledger", Name: "webhook_delivery_lag_seconds",
		Help:    "Time from an event's commit to its delivery to an endpoint.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400, 259200},
	})
	o.deliveryTime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "creditledger", Name: "webhook_delivery_duration_seconds",
		Help:    "Time of one webhook delivery attempt, the receiver's answer included.",
		Buckets: prometheus.DefBuckets,
	})
	o.disabled = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "creditledger", Name: "webhook_endpoints_disabled_total",
		Help: "Webhook endpoints disabled by the server after 3 days of failed deliveries.",
	})
	o.reads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "creditledger", Name: "replica_reads_total",
		Help: "Reads that a read replica may serve (balances, histories, account lists, statements, event pages), by where they were served: replica; primary_behind (the replica had not replayed min_version); primary_no_replica (no replica usable). Counted only when LEDGER_READ_DATABASE_URL is set.",
	}, []string{"served_by"})
	for _, c := range []prometheus.Collector{
		o.credits, o.posted, o.refusals, o.replays, o.conflicts, o.batches, o.batchSize, o.batchTime, o.waiting, o.holds, o.reversals,
		o.events, o.deliveries, o.deliveryLag, o.deliveryTime, o.disabled, o.reads,
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, typ := range []ledger.TxType{ledger.TypeIn, ledger.TypeOut} {
		for k := ledger.KindPurchase; k <= ledger.KindExpiry; k++ {
			o.postedBy[typ][k] = o.posted.WithLabelValues(typ.String(), k.String())
			o.creditsBy[typ][k] = o.credits.WithLabelValues(typ.String(), k.String())
		}
	}
	for _, outcome := range []string{"committed", "unavailable", "failed", "split"} {
		o.batches.WithLabelValues(outcome)
	}
	for _, outcome := range []string{"delivered", "failed"} {
		o.deliveries.WithLabelValues(outcome)
	}
	o.readsBy = make(map[string]prometheus.Counter, 3)
	for _, where := range []string{ledger.ReadReplica, ledger.ReadPrimaryBehind, ledger.ReadPrimaryNoReplica} {
		o.readsBy[where] = o.reads.WithLabelValues(where)
	}
	o.eventsBy = make(map[ledger.EventType]prometheus.Counter, len(ledger.EventTypes))
	for _, typ := range ledger.EventTypes {
		o.eventsBy[typ] = o.events.WithLabelValues(string(typ))
	}
	return o, nil
}

// EventsWritten counts a committed batch's events by type.
func (o *Observer) EventsWritten(evs []ledger.Event) {
	for _, e := range evs {
		if c, ok := o.eventsBy[e.Type]; ok {
			c.Inc()
		} else {
			o.events.WithLabelValues(string(e.Type)).Inc()
		}
	}
}

// Read counts a read that a replica may serve by where it was served.
func (o *Observer) Read(where string) {
	if c, ok := o.readsBy[where]; ok {
		c.Inc()
		return
	}
	o.reads.WithLabelValues(where).Inc()
}

// Delivery counts a webhook delivery attempt (delivery.Observer).
func (o *Observer) Delivery(outcome string, latency, lag time.Duration) {
	o.deliveries.WithLabelValues(outcome).Inc()
	o.deliveryTime.Observe(latency.Seconds())
	if outcome == "delivered" {
		o.deliveryLag.Observe(max(lag, 0).Seconds())
	}
}

// EndpointDisabled counts an endpoint the server disabled (delivery.Observer).
func (o *Observer) EndpointDisabled() { o.disabled.Inc() }

// Hold counts a hold created (HoldActive) or ended.
func (o *Observer) Hold(status ledger.HoldStatus) { o.holds.WithLabelValues(status.String()).Inc() }

// Reversed counts a reversal of an entry of kind original.
func (o *Observer) Reversed(original ledger.Kind) {
	o.reversals.WithLabelValues(original.String()).Inc()
}

// Posted counts a newly posted transaction and its credits.
func (o *Observer) Posted(t ledger.Transaction) {
	if t.Type > ledger.TypeUnspecified && t.Type <= ledger.TypeOut && t.Kind > ledger.KindUnspecified && t.Kind <= ledger.KindExpiry {
		o.postedBy[t.Type][t.Kind].Inc()
		o.creditsBy[t.Type][t.Kind].Add(float64(t.Amount))
		return
	}
	typ, kind := t.Type.String(), t.Kind.String()
	o.posted.WithLabelValues(typ, kind).Inc()
	o.credits.WithLabelValues(typ, kind).Add(float64(t.Amount))
}

// Waiting moves the queued-ops gauge.
func (o *Observer) Waiting(delta int) { o.waiting.Add(float64(delta)) }

// Batch counts a write batch; committed ones also give their size and time.
func (o *Observer) Batch(ops int, outcome string, d time.Duration) {
	o.batches.WithLabelValues(outcome).Inc()
	if outcome == "committed" {
		o.batchSize.Observe(float64(ops))
		o.batchTime.Observe(d.Seconds())
	}
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
