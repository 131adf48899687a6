package storetest

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/ledger"
)

func (h *harness) webhooks() ledger.WebhookStore {
	h.t.Helper()
	st, ok := h.store.(ledger.WebhookStore)
	if !ok {
		h.t.Fatalf("%T does not implement ledger.WebhookStore", h.store)
	}
	return st
}

func (h *harness) endpoint(ws, url string, types ...ledger.EventType) ledger.WebhookEndpoint {
	h.t.Helper()
	e, err := h.svc.CreateWebhookEndpoint(h.ctx, ledger.WebhookEndpoint{Workspace: ws, URL: url, EventTypes: types, Description: "test"})
	if err != nil {
		h.t.Fatalf("CreateWebhookEndpoint: %v", err)
	}
	return e
}

// testWebhookEndpoints: the life of an endpoint as the agency sees it.
func testWebhookEndpoints(t *testing.T, h *harness) {
	h.enable("ws1", true)
	h.credit("ws1", "alice", 10) // events 1, 2: before the endpoint
	e := h.endpoint("ws1", "https://hooks.example.com/a", ledger.EventTransactionPosted, ledger.EventTransactionPosted)
	if e.ID == "" || len(e.Secret) < 40 || !e.Enabled || e.DeliveredSequence != 2 || len(e.EventTypes) != 1 {
		t.Fatalf("created: %+v", e)
	}
	if wss, err := h.webhooks().WebhookWorkspaces(h.ctx); err != nil || !slices.Contains(wss, "ws1") || slices.Contains(wss, "ws2") {
		t.Fatalf("WebhookWorkspaces = %v, %v; want ws1 (and not ws2, which has no endpoint)", wss, err)
	}
	list, err := h.svc.ListWebhookEndpoints(h.ctx, "ws1")
	if err != nil || len(list) != 1 || list[0].ID != e.ID || list[0].Secret != "" {
		t.Fatalf("listed: %+v, %v (the secret is shown at creation only)", list, err)
	}
	if other, err := h.svc.ListWebhookEndpoints(h.ctx, "ws2"); err != nil || len(other) != 0 {
		t.Fatalf("another workspace lists %+v, %v", other, err)
	}
	for _, bad := range []string{"", "ftp://x.example.com", "https://user:pw@x.example.com/", "/relative", "https://x.example.com/#frag"} {
		_, err := h.svc.CreateWebhookEndpoint(h.ctx, ledger.WebhookEndpoint{Workspace: "ws1", URL: bad})
		wantReason(t, err, ledger.CodeInvalid, ledger.ReasonInvalidArgument)
	}
	_, err = h.svc.CreateWebhookEndpoint(h.ctx, ledger.WebhookEndpoint{Workspace: "ws1", URL: "https://x.example.com", EventTypes: []ledger.EventType{"nope"}})
	wantReason(t, err, ledger.CodeInvalid, ledger.ReasonInvalidArgument)

	off, err := h.svc.UpdateWebhookEndpoint(h.ctx, "ws1", e.ID, ledger.WebhookEndpoint{Enabled: false, Description: "paused"}, []string{"enabled", "description"})
	if err != nil || off.Enabled || off.Description != "paused" || off.DisabledReason == "" || off.URL != e.URL {
		t.Fatalf("disabled: %+v, %v", off, err)
	}
	on, err := h.svc.UpdateWebhookEndpoint(h.ctx, "ws1", e.ID, ledger.WebhookEndpoint{Enabled: true}, []string{"enabled"})
	if err != nil || !on.Enabled || on.DisabledReason != "" {
		t.Fatalf("enabled: %+v, %v", on, err)
	}
	_, err = h.svc.UpdateWebhookEndpoint(h.ctx, "ws2", e.ID, ledger.WebhookEndpoint{Enabled: true}, []string{"enabled"})
	wantReason(t, err, ledger.CodeNotFound, ledger.ReasonNotFound)
	if err := h.svc.DeleteWebhookEndpoint(h.ctx, "ws2", e.ID); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("delete from another workspace: %v", err)
	}
	if err := h.svc.DeleteWebhookEndpoint(h.ctx, "ws1", e.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if list, _ := h.svc.ListWebhookEndpoints(h.ctx, "ws1"); len(list) != 0 {
		t.Fatalf("after delete: %+v", list)
	}
}

// testWebhookLeases: a due endpoint goes to one worker at a time; an
// attempt recorded without the lease is refused; the cursor moves with a
// success only, and the log keeps every attempt.
func testWebhookLeases(t *testing.T, h *harness) {
	st := h.webhooks()
	h.enable("ws1", true)
	e := h.endpoint("ws1", "https://hooks.example.com/a")
	h.credit("ws1", "alice", 10)
	now := h.now()

	// Several workers race for the endpoint: exactly one wins it.
	var wg sync.WaitGroup
	won := make(chan string, 8)
	for i := range 8 {
		owner := string(rune('a' + i))
		wg.Go(func() {
			eps, err := st.LeaseWebhookEndpoints(h.ctx, "ws1", owner, now, now.Add(time.Minute), 10)
			if err != nil {
				t.Errorf("lease: %v", err)
			}
			for range eps {
				won <- owner
			}
		})
	}
	wg.Wait()
	close(won)
	var owners []string
	for o := range won {
		owners = append(owners, o)
	}
	if len(owners) != 1 {
		t.Fatalf("the endpoint was leased by %v, want exactly one worker", owners)
	}
	owner, loser := owners[0], "z"

	fail := ledger.WebhookDelivery{
		Workspace: "ws1", EndpointID: e.ID, EventSequence: 2, EventType: ledger.EventTransactionPosted,
		Attempt: 1, AttemptTime: now, StatusCode: 500, Latency: 3 * time.Millisecond, Error: "http status 500",
	}
	if err := st.RecordWebhookAttempt(h.ctx, loser, fail, ledger.WebhookOutcome{DeliveredSequence: 1}, time.Time{}); !errors.Is(err, ledger.ErrLeaseLost) {
		t.Fatalf("an attempt without the lease: %v, want ErrLeaseLost", err)
	}
	next := now.Add(5 * time.Second)
	if err := st.RecordWebhookAttempt(h.ctx, owner, fail, ledger.WebhookOutcome{
		DeliveredSequence: e.DeliveredSequence, Attempts: 1, FirstFailure: now, NextAttempt: next,
	}, time.Time{}); err != nil {
		t.Fatalf("record failure: %v", err)
	}
	// Released, but not due before next.
	if eps, _ := st.LeaseWebhookEndpoints(h.ctx, "ws1", "b", now.Add(time.Second), now.Add(time.Minute), 10); len(eps) != 0 {
		t.Fatalf("leased before its next attempt: %+v", eps)
	}
	eps, err := st.LeaseWebhookEndpoints(h.ctx, "ws1", "b", next, next.Add(time.Minute), 10)
	if err != nil || len(eps) != 1 || eps[0].Attempts != 1 || !eps[0].FirstFailure.Equal(now.UTC().Truncate(time.Microsecond)) {
		t.Fatalf("due again: %+v, %v", eps, err)
	}
	ok := fail
	ok.Attempt, ok.StatusCode, ok.Error, ok.Succeeded = 2, 204, "", true
	if err := st.RecordWebhookAttempt(h.ctx, "b", ok, ledger.WebhookOutcome{DeliveredSequence: 2, NextAttempt: next}, next.Add(time.Minute)); err != nil {
		t.Fatalf("record success: %v", err)
	}
	got, err := st.WebhookEndpoint(h.ctx, "ws1", e.ID)
	if err != nil || got.DeliveredSequence != 2 || got.Attempts != 0 || !got.FirstFailure.IsZero() || got.LeaseOwner != "b" {
		t.Fatalf("after success: %+v, %v", got, err)
	}
	page, err := h.svc.ListWebhookDeliveries(h.ctx, "ws1", e.ID, 1, "")
	if err != nil || len(page.Deliveries) != 1 || page.Deliveries[0].Attempt != 2 || !page.Deliveries[0].Succeeded || page.NextPageToken == "" {
		t.Fatalf("deliveries page 1: %+v, %v", page, err)
	}
	page, err = h.svc.ListWebhookDeliveries(h.ctx, "ws1", e.ID, 1, page.NextPageToken)
	if err != nil || len(page.Deliveries) != 1 || page.Deliveries[0].StatusCode != 500 || page.Deliveries[0].Latency != 3*time.Millisecond {
		t.Fatalf("deliveries page 2: %+v, %v", page, err)
	}
	// The server disables an endpoint with an event that says so.
	h.credit("ws1", "alice", 1)
	off := ledger.Event{Workspace: "ws1", Type: ledger.EventWebhookEndpointDisabled, CreateTime: now, Endpoint: &ledger.WebhookEndpoint{ID: e.ID}}
	fail.EventSequence, fail.Attempt = 3, 9
	if err := st.RecordWebhookAttempt(h.ctx, "b", fail, ledger.WebhookOutcome{
		DeliveredSequence: 2, Attempts: 9, FirstFailure: now, NextAttempt: next, Disable: "deliveries failed for 3 days", Event: &off,
	}, time.Time{}); err != nil {
		t.Fatalf("record and disable: %v", err)
	}
	got, _ = st.WebhookEndpoint(h.ctx, "ws1", e.ID)
	if got.Enabled || got.DisabledReason != "deliveries failed for 3 days" {
		t.Fatalf("not disabled: %+v", got)
	}
	evs := h.events("ws1", 0, ledger.ListEventsInput{Types: []ledger.EventType{ledger.EventWebhookEndpointDisabled}})
	if len(evs) != 1 || evs[0].Endpoint == nil || evs[0].Endpoint.ID != e.ID {
		t.Fatalf("disabled event: %+v", evs)
	}
	if eps, _ := st.LeaseWebhookEndpoints(h.ctx, "ws1", "c", next.Add(time.Hour), next.Add(2*time.Hour), 10); len(eps) != 0 {
		t.Fatalf("a disabled endpoint was leased: %+v", eps)
	}
}
