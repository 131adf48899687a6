// Package delivery delivers a workspace's events to its webhook endpoints
// (SPEC §10): at least once, in sequence order per endpoint, signed as the
// Standard Webhooks specification says, retried with exponential backoff
// and jitter for up to three days, after which the endpoint is disabled.
//
// Every replica runs a Worker. An endpoint is delivered to by the worker
// that leases it (the store takes due endpoints with FOR UPDATE SKIP LOCKED
// on PostgreSQL), which delivers its next events one at a time and moves
// its cursor, in one transaction with the attempt's record, only after the
// receiver said 2xx. A worker that dies mid-delivery leaves a lease that
// runs out; another (or the restarted one) then repeats the event that was
// in flight, and nothing else.
package delivery

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/creditledger/creditledger/internal/grpcserver"
	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/creditledger/creditledger/internal/webhook"
)

// Observer receives what the worker does (metrics).
type Observer interface {
	// Delivery reports one attempt: outcome is delivered or failed; lag is
	// how long after its commit the event was delivered (delivered only).
	Delivery(outcome string, latency, lag time.Duration)
	// EndpointDisabled reports an endpoint disabled after its retry window.
	EndpointDisabled()
}

type nopObserver struct{}

func (nopObserver) Delivery(string, time.Duration, time.Duration) {}
func (nopObserver) EndpointDisabled()                             {}

// Options configures a Worker.
type Options struct {
	Service *ledger.Service
	Store   ledger.WebhookStore
	// Workspaces lists the workspaces to look at; default: the store's
	// WebhookWorkspaces.
	Workspaces func(ctx context.Context) ([]string, error)
	// Client sends the deliveries (webhook.NewClient: no redirects, no
	// private addresses unless allowed, timeouts).
	Client *http.Client
	// Owner names this worker in leases; unique per process.
	Owner string
	// Lease is how long an endpoint stays this worker's without news
	// (default 60 s; longer than one delivery's timeout).
	Lease time.Duration
	// Interval is how often due endpoints are looked for (default 1 s).
	Interval time.Duration
	// Parallel caps the endpoints delivered to at once (default 8).
	Parallel int
	// RetryBase is the first retry's delay (default webhook.BaseDelay);
	// each failure doubles it, up to webhook.MaxDelay, with jitter.
	RetryBase time.Duration
	Now       func() time.Time
	Rand      func() float64 // jitter; nil: math/rand
	Log       *zap.Logger
	Observer  Observer
}

// Worker delivers events to webhook endpoints.
type Worker struct {
	o Options
}

// New returns a Worker.
func New(o Options) *Worker {
	if o.Lease <= 0 {
		o.Lease = 60 * time.Second
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	if o.RetryBase <= 0 {
		o.RetryBase = webhook.BaseDelay
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	if o.Workspaces == nil {
		o.Workspaces = o.Store.WebhookWorkspaces
	}
	return &Worker{o: o}
}

// Run delivers until ctx ends.
func (w *Worker) Run(ctx context.Context) {
	t := time.NewTicker(w.o.Interval)
	defer t.Stop()
	for {
		if err := w.RunOnce(ctx); err != nil && ctx.Err() == nil {
			w.o.Log.Warn("webhook deliveries: pass failed", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunOnce leases every due endpoint of every workspace and delivers what
// it has to deliver, then returns.
func (w *Worker) RunOnce(ctx context.Context) error {
	wss, err := w.o.Workspaces(ctx)
	if err != nil {
		return err
	}
	sem := make(chan struct{}, w.o.Parallel)
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	for _, ws := range wss {
		now := w.o.Now()
		eps, err := w.o.Store.LeaseWebhookEndpoints(ctx, ws, w.o.Owner, now, now.Add(w.o.Lease), w.o.Parallel)
		if err != nil {
			mu.Lock()
			firstErr = cmpErr(firstErr, err)
			mu.Unlock()
			continue
		}
		for _, ep := range eps {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if err := w.serve(ctx, ep); err != nil && !errors.Is(err, ledger.ErrLeaseLost) {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	return firstErr
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// Body is what a delivery POSTs: the event as the API's JSON (the same
// object ListEvents returns).
func Body(e ledger.Event) ([]byte, error) {
	return protojson.Marshal(grpcserver.ToProtoEvent(e))
}

// serve delivers the leased endpoint's next events in order, until none is
// left, one fails, or the lease is lost.
func (w *Worker) serve(ctx context.Context, ep ledger.WebhookEndpoint) error {
	signer, err := webhook.NewSigner(ep.Secret)
	if err != nil {
		return err
	}
	release := func(next time.Time, skipped int64) error {
		// The lease ends even when ctx did (shutdown): the next worker
		// should not have to wait for it to run out.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return w.o.Store.ReleaseWebhookLease(rctx, ep.Workspace, ep.ID, w.o.Owner, next, skipped)
	}
	after := ep.DeliveredSequence
	for {
		page, err := w.o.Service.ListEvents(ctx, ledger.ListEventsInput{
			Workspace: ep.Workspace, AfterSequence: after, Types: ep.EventTypes, PageSize: 100,
		})
		if err != nil {
			_ = release(w.o.Now().Add(w.o.Interval), after)
			return err
		}
		if len(page.Events) == 0 {
			return release(w.o.Now(), after)
		}
		for _, e := range page.Events {
			ok, err := w.attempt(ctx, &ep, signer, e)
			if err != nil || !ok {
				return err
			}
			after = e.Sequence
		}
	}
}

// attempt delivers one event and records the attempt with its outcome.
func (w *Worker) attempt(ctx context.Context, ep *ledger.WebhookEndpoint, signer webhook.Signer, e ledger.Event) (bool, error) {
	body, err := Body(e)
	if err != nil {
		return false, err
	}
	start := w.o.Now()
	a := webhook.Deliver(ctx, w.o.Client, signer, ep.URL, webhook.Message{ID: e.ID(), Timestamp: start, Body: body})
	if ctx.Err() != nil {
		// Shut down mid-attempt: the receiver may or may not have it; the
		// lease runs out and the event is delivered again.
		return false, ctx.Err()
	}
	now := w.o.Now()
	d := ledger.WebhookDelivery{
		Workspace: ep.Workspace, EndpointID: ep.ID, EventSequence: e.Sequence, EventType: e.Type,
		Attempt: ep.Attempts + 1, AttemptTime: start, StatusCode: a.StatusCode, Latency: a.Latency,
		Succeeded: a.OK(), Error: a.Error,
	}
	var out ledger.WebhookOutcome
	var lease time.Time
	if a.OK() {
		out = ledger.WebhookOutcome{DeliveredSequence: e.Sequence, NextAttempt: now}
		lease = now.Add(w.o.Lease)
	} else {
		first := ep.FirstFailure
		if first.IsZero() {
			first = start
		}
		next := now.Add(w.retryDelay(d.Attempt))
		out = ledger.WebhookOutcome{DeliveredSequence: ep.DeliveredSequence, Attempts: d.Attempt, FirstFailure: first, NextAttempt: next}
		if webhook.GiveUp(first, next) {
			out.Disable = "deliveries failed for 3 days (last: " + a.Error + ")"
			off := ep.Public()
			off.Enabled, off.DisabledReason, off.UpdateTime = false, out.Disable, now
			out.Event = &ledger.Event{
				Workspace: ep.Workspace, Type: ledger.EventWebhookEndpointDisabled, CreateTime: now, Endpoint: &off,
			}
		}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := w.o.Store.RecordWebhookAttempt(rctx, w.o.Owner, d, out, lease); err != nil {
		if errors.Is(err, ledger.ErrLeaseLost) {
			w.o.Log.Warn("webhook deliveries: lease lost; the endpoint's new worker repeats the attempt",
				zap.String("workspace", ep.Workspace), zap.String("endpoint_id", ep.ID), zap.Int64("sequence", e.Sequence))
		}
		return false, err
	}
	if a.OK() {
		w.o.Observer.Delivery("delivered", a.Latency, now.Sub(e.CreateTime))
		ep.DeliveredSequence, ep.Attempts, ep.FirstFailure = e.Sequence, 0, time.Time{}
		return true, nil
	}
	w.o.Observer.Delivery("failed", a.Latency, 0)
	if out.Disable != "" {
		w.o.Observer.EndpointDisabled()
		w.o.Log.Warn("webhook endpoint disabled: deliveries failed for 3 days",
			zap.String("workspace", ep.Workspace), zap.String("endpoint_id", ep.ID), zap.String("last_error", a.Error))
	}
	return false, nil
}

// retryDelay is webhook.NextDelay scaled to the worker's RetryBase, still
// capped at webhook.MaxDelay.
func (w *Worker) retryDelay(attempt int) time.Duration {
	d := webhook.NextDelay(attempt, w.o.Rand)
	if w.o.RetryBase != webhook.BaseDelay {
		d = time.Duration(float64(d) * float64(w.o.RetryBase) / float64(webhook.BaseDelay))
	}
	return min(d, webhook.MaxDelay)
}
