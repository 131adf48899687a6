package delivery_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/delivery"
	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/creditledger/creditledger/internal/store/sqlite"
	"github.com/creditledger/creditledger/internal/webhook"
)

// clock is the test's time, moved by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type counts struct {
	delivered, failed, disabled atomic.Int64
}

func (c *counts) Delivery(outcome string, _, _ time.Duration) {
	if outcome == "delivered" {
		c.delivered.Add(1)
	} else {
		c.failed.Add(1)
	}
}
func (c *counts) EndpointDisabled() { c.disabled.Add(1) }

type fixture struct {
	svc    *ledger.Service
	store  *sqlite.Store
	clock  *clock
	obs    *counts
	worker *delivery.Worker
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	clk := &clock{now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	svc := ledger.NewService(st, ledger.WithClock(clk.Now))
	obs := &counts{}
	w := delivery.New(delivery.Options{
		Service: svc, Store: st, Client: webhook.NewClient(webhook.ClientOptions{AllowPrivate: true, Timeout: 2 * time.Second}),
		Owner: "test", Now: clk.Now, Rand: func() float64 { return 0 }, Observer: obs,
		Workspaces: func(context.Context) ([]string, error) { return []string{"ws"}, nil },
	})
	return &fixture{svc: svc, store: st, clock: clk, obs: obs, worker: w}
}

// TestWorkerDisablesAfterThreeDays: an endpoint that never answers 2xx is
// retried with growing delays, then disabled once its first failure is 72
// hours old, with an event saying so; enabled again, it resumes with the
// same event, and the receiver then gets it signed.
func TestWorkerDisablesAfterThreeDays(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	var up atomic.Bool
	var secret atomic.Value
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !up.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		if err := webhook.VerifyAt(secret.Load().(string), r.Header, body, f.clock.Now()); err != nil {
			t.Errorf("verify: %v", err)
		}
		got.Add(1)
	}))
	defer srv.Close()

	ep, err := f.svc.CreateWebhookEndpoint(ctx, ledger.WebhookEndpoint{Workspace: "ws", URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	secret.Store(ep.Secret)
	if _, err := f.svc.Credit(ctx, ledger.CreditInput{Workspace: "ws", Account: "a", Amount: 5, IdempotencyKey: "k"}); err != nil {
		t.Fatal(err)
	}

	// Run passes as time goes by: each failure is due again only after its
	// delay, which doubles.
	var delays []time.Duration
	last := f.clock.Now()
	for range 120 {
		before := f.obs.failed.Load()
		if err := f.worker.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		if f.obs.failed.Load() > before {
			delays = append(delays, f.clock.Now().Sub(last))
			last = f.clock.Now()
		}
		if f.obs.disabled.Load() > 0 {
			break
		}
		f.clock.advance(time.Hour)
	}
	if f.obs.disabled.Load() != 1 || f.obs.delivered.Load() != 0 {
		t.Fatalf("after %d failed attempts: disabled %d, delivered %d", f.obs.failed.Load(), f.obs.disabled.Load(), f.obs.delivered.Load())
	}
	if n := f.obs.failed.Load(); n < 8 || n > 40 {
		t.Fatalf("%d attempts over 3 days: the backoff is off", n)
	}
	for i := 1; i < len(delays)-1; i++ {
		if delays[i] < delays[i-1] {
			t.Fatalf("delays between attempts shrink: %v", delays)
		}
	}
	eps, err := f.svc.ListWebhookEndpoints(ctx, "ws")
	if err != nil || len(eps) != 1 || eps[0].Enabled || eps[0].DisabledReason == "" {
		t.Fatalf("endpoint after 3 days: %+v, %v", eps, err)
	}
	evs, err := f.svc.ListEvents(ctx, ledger.ListEventsInput{Workspace: "ws", Types: []ledger.EventType{ledger.EventWebhookEndpointDisabled}})
	if err != nil || len(evs.Events) != 1 || evs.Events[0].Endpoint.ID != ep.ID || evs.Events[0].Endpoint.Secret != "" {
		t.Fatalf("disabled event: %+v, %v", evs, err)
	}
	page, err := f.svc.ListWebhookDeliveries(ctx, "ws", ep.ID, 100, "")
	if err != nil || int64(len(page.Deliveries)) != f.obs.failed.Load() || page.Deliveries[0].StatusCode != http.StatusBadGateway {
		t.Fatalf("delivery log: %d entries, %v (want one per attempt, status 502)", len(page.Deliveries), err)
	}

	// A disabled endpoint gets nothing, however long it waits.
	f.clock.advance(24 * time.Hour)
	if err := f.worker.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got.Load() != 0 {
		t.Fatalf("a disabled endpoint received %d deliveries", got.Load())
	}
	// Enabled again, it resumes where it stopped: the credit's event, then
	// the disabled event (the endpoint takes every type).
	up.Store(true)
	if _, err := f.svc.UpdateWebhookEndpoint(ctx, "ws", ep.ID, ledger.WebhookEndpoint{Enabled: true}, []string{"enabled"}); err != nil {
		t.Fatal(err)
	}
	if err := f.worker.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got.Load() != 2 || f.obs.delivered.Load() != 2 {
		t.Fatalf("after enabling: received %d, delivered %d; want 2", got.Load(), f.obs.delivered.Load())
	}
	eps, _ = f.svc.ListWebhookEndpoints(ctx, "ws")
	if eps[0].DeliveredSequence != 2 {
		t.Fatalf("cursor after catching up: %d, want 2", eps[0].DeliveredSequence)
	}
}

// TestWorkerKeepsTypesAndOrder: an endpoint gets only the types it asked
// for, in sequence order, each once.
func TestWorkerKeepsTypesAndOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.svc.UpdateSettings(ctx, "ws", ledger.Settings{CreditPaymentsEnabled: true}, []string{"credit_payments_enabled"}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var types []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ev, err := webhookEvent(body)
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		types = append(types, ev)
		mu.Unlock()
	}))
	defer srv.Close()
	if _, err := f.svc.CreateWebhookEndpoint(ctx, ledger.WebhookEndpoint{
		Workspace: "ws", URL: srv.URL, EventTypes: []ledger.EventType{ledger.EventHoldCreated, ledger.EventHoldVoided},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Credit(ctx, ledger.CreditInput{Workspace: "ws", Account: "a", Amount: 50, IdempotencyKey: "c"}); err != nil {
		t.Fatal(err)
	}
	h, err := f.svc.CreateHold(ctx, ledger.CreateHoldInput{Workspace: "ws", Account: "a", Amount: 5, TTL: time.Hour, IdempotencyKey: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.VoidHold(ctx, ledger.VoidHoldInput{Workspace: "ws", HoldID: h.Hold.ID, IdempotencyKey: "v"}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := f.worker.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(types) != 2 || types[0] != "hold.created" || types[1] != "hold.voided" {
		t.Fatalf("received %v, want [hold.created hold.voided]", types)
	}
}

func webhookEvent(body []byte) (string, error) {
	var ev struct {
		Type string `json:"type"`
	}
	err := json.Unmarshal(body, &ev)
	return ev.Type, err
}
