package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// EventType names a change that integrators learn of (SPEC §10).
type EventType string

// The event types. Every batch that changes something writes its events in
// the same database transaction as the change (a transactional outbox).
const (
	EventTransactionPosted EventType = "transaction.posted"
	EventRequestSubmitted  EventType = "request.submitted"
	EventRequestDecided    EventType = "request.decided"
	EventRequestCancelled  EventType = "request.cancelled"
	EventHoldCreated       EventType = "hold.created"
	EventHoldCaptured      EventType = "hold.captured"
	EventHoldVoided        EventType = "hold.voided"
	EventHoldExpired       EventType = "hold.expired"
	EventCreditsExpired    EventType = "credits.expired"
	EventBalanceLow        EventType = "balance.low"
	EventSettingsUpdated   EventType = "settings.updated"
	EventPackageUpdated    EventType = "package.updated"
	// EventWebhookEndpointDisabled: the server disabled an endpoint whose
	// deliveries failed for 3 days.
	EventWebhookEndpointDisabled EventType = "webhook_endpoint.disabled"
)

// EventTypes lists every event type, in the order of the specification.
var EventTypes = []EventType{
	EventTransactionPosted, EventRequestSubmitted, EventRequestDecided, EventRequestCancelled,
	EventHoldCreated, EventHoldCaptured, EventHoldVoided, EventHoldExpired, EventCreditsExpired,
	EventBalanceLow, EventSettingsUpdated, EventPackageUpdated, EventWebhookEndpointDisabled,
}

// Valid reports whether t is one of EventTypes.
func (t EventType) Valid() bool {
	for _, v := range EventTypes {
		if t == v {
			return true
		}
	}
	return false
}

// Event is one change of a workspace, as it was when it committed.
type Event struct {
	// The event's columns in a store (json "-": EncodeEventData keeps
	// the rest).
	Workspace string `json:"-"`
	// Sequence numbers the workspace's events from 1, gap-free, in commit
	// order; the store assigns it when the batch commits.
	Sequence   int64     `json:"-"`
	Type       EventType `json:"-"`
	CreateTime time.Time `json:"-"`
	// Account is the account the event concerns; empty for settings and
	// packages.
	Account string `json:"-"`
	// The object the event is about, as the change left it: exactly one
	// is set, by Type.
	Transaction *Transaction   `json:",omitempty"`
	Request     *CreditRequest `json:",omitempty"`
	Hold        *Hold          `json:",omitempty"`
	Settings    *Settings      `json:",omitempty"`
	Package     *Package       `json:",omitempty"`
	// BalanceLow is set for balance.low.
	BalanceLow *BalanceLow `json:",omitempty"`
	// Endpoint is set for webhook_endpoint.disabled (without its secret).
	Endpoint *WebhookEndpoint `json:",omitempty"`
	// TransactionID names the entry of a transaction.posted or
	// credits.expired event as stored: entries never change, so a store
	// keeps the reference, not a second copy, and ListEvents reads the
	// entry back (see EncodeEventData).
	TransactionID string `json:",omitempty"`
}

// BalanceLow is what a balance.low event says: the account's balance fell
// below the workspace's threshold.
type BalanceLow struct {
	Balance   int64
	Available int64
	Threshold int64
}

// ID is the event's stable identifier: the same for every read and every
// delivery of it (receivers deduplicate on it), unique across workspaces.
func (e Event) ID() string { return EventID(e.Workspace, e.Sequence) }

// EventID names event seq of workspace ws: evt_<workspace digest>_<seq>.
// The digest keeps IDs of two workspaces apart without putting the
// workspace's name in every delivery.
func EventID(ws string, seq int64) string {
	sum := sha256.Sum256([]byte(ws))
	return "evt_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:10])) +
		"_" + strconv.FormatInt(seq, 10)
}

// EncodeEventData is how stores keep an event's object: the event's
// fields but those the store keeps in columns (workspace, sequence, type,
// account, time), as JSON. An entry is kept as its ID: it is in the store
// already, and never changes (every write of the hot path has an event: a
// copy would double what it writes).
func EncodeEventData(e Event) ([]byte, error) {
	typ := e.Type
	e.Workspace, e.Sequence, e.Type, e.Account, e.CreateTime = "", 0, "", "", time.Time{}
	if e.Transaction != nil {
		e.TransactionID, e.Transaction = e.Transaction.ID, nil
	}
	if e.Request == nil && e.Hold == nil && e.Settings == nil && e.Package == nil && e.BalanceLow == nil && e.Endpoint == nil {
		// An entry's event, the hot path's: what json.Marshal would write
		// for it, without reflection.
		if e.TransactionID == "" {
			return []byte("{}"), nil
		}
		id, err := json.Marshal(e.TransactionID)
		if err != nil {
			return nil, InternalError(fmt.Errorf("encoding event %s: %w", typ, err))
		}
		return append(append([]byte(`{"TransactionID":`), id...), '}'), nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, InternalError(fmt.Errorf("encoding event %s: %w", typ, err))
	}
	return b, nil
}

// StoredEvent is an event as a store reads it back: its columns and its
// data (EncodeEventData).
type StoredEvent struct {
	Workspace  string
	Sequence   int64
	Type       string
	Account    string
	CreateTime time.Time
	Data       []byte
}

// DecodeEventData is the inverse of EncodeEventData.
func DecodeEventData(r StoredEvent) (Event, error) {
	var e Event
	if err := json.Unmarshal(r.Data, &e); err != nil {
		return Event{}, InternalError(fmt.Errorf("decoding event %d of %q: %w", r.Sequence, r.Workspace, err))
	}
	e.Workspace, e.Sequence, e.Type, e.Account, e.CreateTime = r.Workspace, r.Sequence, EventType(r.Type), r.Account, r.CreateTime.UTC()
	return e, nil
}

// EventQuery selects events of one workspace with Sequence > After,
// ascending.
type EventQuery struct {
	Workspace string
	After     int64
	// Account, when set, keeps the events of that account only.
	Account string
	// Types, when set, keeps events of these types only.
	Types []EventType
	Limit int
}

// EventPage gathers a store's answer to an EventQuery from the events it
// reads in ascending sequence: it skips those at or before the cursor,
// keeps those the query's filters select, and is Full at its Limit. After
// is the last sequence it was given, where the store's next read resumes.
type EventPage struct {
	q      EventQuery
	After  int64
	Events []Event
}

// NewEventPage starts the page of q.
func NewEventPage(q EventQuery) *EventPage { return &EventPage{q: q, After: q.After} }

// Full reports whether the page holds q.Limit events.
func (p *EventPage) Full() bool { return len(p.Events) >= p.q.Limit }

// Add takes the next stored event, decoding it if the query selects it.
func (p *EventPage) Add(r StoredEvent) error {
	if r.Sequence <= p.After || p.Full() {
		return nil
	}
	p.After = r.Sequence
	if (p.q.Account != "" && r.Account != p.q.Account) || (len(p.q.Types) > 0 && !slices.Contains(p.q.Types, EventType(r.Type))) {
		return nil
	}
	e, err := DecodeEventData(r)
	if err != nil {
		return err
	}
	p.Events = append(p.Events, e)
	return nil
}

// ListEventsInput asks for a page of a workspace's events.
type ListEventsInput struct {
	Workspace     string
	AfterSequence int64
	Account       string
	Types         []EventType
	PageSize      int
}

// ListEventsResult is a page of events; Last is the sequence to resume
// after (that of the last event, or AfterSequence when there is none).
type ListEventsResult struct {
	Events []Event
	Last   int64
}

// MaxEventPage caps a page of events.
const MaxEventPage = 1000

// ListEvents returns the workspace's events after in.AfterSequence, in
// sequence order. A page never skips an event: what is committed after a
// read is after its last sequence. It reads from a replica when the store
// has one: a replica replays commits in the primary's order, so its
// snapshot holds a prefix of the sequence and a page from it skips nothing
// either; it may only end earlier.
func (s *Service) ListEvents(ctx context.Context, in ListEventsInput) (ListEventsResult, error) {
	return s.listEvents(ctx, in, true)
}

// listEvents is ListEvents, on a replica only when replica is set. Watches
// read the primary: they wake at this process's commits, which a replica
// may not have replayed yet.
func (s *Service) listEvents(ctx context.Context, in ListEventsInput, replica bool) (ListEventsResult, error) {
	var v violations
	checkID(&v, "workspace", in.Workspace)
	if in.Account != "" {
		checkID(&v, "account", in.Account)
	}
	if in.AfterSequence < 0 {
		v.add("after_sequence", "must be ≥ 0")
	}
	for _, t := range in.Types {
		if !t.Valid() {
			v.add("types", "unknown event type %q", string(t))
		}
	}
	n := in.PageSize
	switch {
	case n < 0:
		v.add("page_size", "must be ≥ 0")
	case n == 0:
		n = 100
	case n > MaxEventPage:
		n = MaxEventPage
	}
	if err := v.err(); err != nil {
		return ListEventsResult{}, err
	}
	res := ListEventsResult{Last: in.AfterSequence}
	view := s.store.View
	if replica {
		view = func(ctx context.Context, fn func(ctx context.Context, tx ReadTx) error) error {
			return s.replicaRead(ctx, in.Workspace, "", 0, fn)
		}
	}
	err := view(ctx, func(ctx context.Context, tx ReadTx) error {
		evs, err := tx.ListEvents(ctx, EventQuery{
			Workspace: in.Workspace, After: in.AfterSequence, Account: in.Account, Types: in.Types, Limit: n,
		})
		if err != nil {
			return err
		}
		res.Events = evs
		return readEventEntries(ctx, tx, in.Workspace, evs)
	})
	if err != nil {
		return ListEventsResult{}, err
	}
	if k := len(res.Events); k > 0 {
		res.Last = res.Events[k-1].Sequence
	}
	return res, nil
}

// readEventEntries reads back the entries that events name by ID (see
// EncodeEventData), as they were posted: nothing reversed yet.
func readEventEntries(ctx context.Context, tx ReadTx, ws string, evs []Event) error {
	var ids []string
	for _, e := range evs {
		if e.Transaction == nil && e.TransactionID != "" {
			ids = append(ids, e.TransactionID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	txs, err := tx.TransactionsByID(ctx, ws, ids)
	if err != nil {
		return err
	}
	byID := make(map[string]Transaction, len(txs))
	for _, t := range txs {
		t.ReversedAmount = 0
		byID[t.ID] = t
	}
	for i := range evs {
		if id := evs[i].TransactionID; id != "" && evs[i].Transaction == nil {
			t, ok := byID[id]
			if !ok {
				return InternalError(fmt.Errorf("event %d of %q names entry %q, which the store did not return", evs[i].Sequence, ws, id))
			}
			evs[i].Transaction = &t
		}
		evs[i].TransactionID = ""
	}
	return nil
}

// events derives the batch's events from its effects, in the order a
// reader expects within one commit: settings and packages, new requests,
// new holds, the entries in the order the batch posted them (with
// credits.expired after each EXPIRY entry), the holds that ended, the
// requests decided, and last the balances that fell below the threshold.
// It runs before effects() sorts the entries.
func (b *batchState) events() []Event {
	now := b.s.now().UTC()
	eff := &b.eff
	var evs []Event
	add := func(e Event) {
		e.Workspace = b.ws
		if e.CreateTime.IsZero() {
			e.CreateTime = now
		}
		evs = append(evs, e)
	}
	if st := eff.Settings; st != nil {
		c := *st
		add(Event{Type: EventSettingsUpdated, Settings: &c, CreateTime: st.UpdateTime})
	}
	for _, ps := range [][]Package{eff.NewPackages, eff.PackageUpdates} {
		for i := range ps {
			p := ps[i]
			add(Event{Type: EventPackageUpdated, Package: &p, CreateTime: p.UpdateTime})
		}
	}
	for i := range eff.NewRequests {
		r := eff.NewRequests[i]
		add(Event{Type: EventRequestSubmitted, Account: r.Account, Request: &r, CreateTime: r.CreateTime})
	}
	for i := range eff.NewHolds {
		h := eff.NewHolds[i]
		add(Event{Type: EventHoldCreated, Account: h.Account, Hold: &h, CreateTime: h.CreateTime})
	}
	// An entry's events name it (EncodeEventData keeps no more, and the
	// entries are written with the events); ListEvents reads it back.
	for i := range eff.Transactions {
		t := &eff.Transactions[i]
		add(Event{Type: EventTransactionPosted, Account: t.Account, TransactionID: t.ID, CreateTime: t.CreateTime})
		if t.Kind == KindExpiry {
			add(Event{Type: EventCreditsExpired, Account: t.Account, TransactionID: t.ID, CreateTime: t.CreateTime})
		}
	}
	for i := range eff.HoldUpdates {
		h := eff.HoldUpdates[i]
		if typ, ok := holdEndEvent(h.Status); ok {
			add(Event{Type: typ, Account: h.Account, Hold: &h, CreateTime: h.UpdateTime})
		}
	}
	for i := range eff.Decisions {
		r := eff.Decisions[i]
		add(Event{Type: decisionEvent(r.Status), Account: r.Account, Request: &r, CreateTime: r.DecideTime})
	}
	for _, m := range eff.Accounts {
		if low, ok := b.balanceLow(m); ok {
			add(Event{Type: EventBalanceLow, Account: m.ID, BalanceLow: &low, CreateTime: m.UpdateTime})
		}
	}
	return evs
}

func holdEndEvent(s HoldStatus) (EventType, bool) {
	switch s {
	case HoldCaptured:
		return EventHoldCaptured, true
	case HoldVoided:
		return EventHoldVoided, true
	case HoldExpired:
		return EventHoldExpired, true
	}
	return "", false
}

func decisionEvent(s RequestStatus) EventType {
	if s == StatusCancelled {
		return EventRequestCancelled
	}
	return EventRequestDecided
}

// balanceLow reports whether move m took the account's available credits
// (balance − held: what the client can still spend) from at least the
// workspace's low-balance threshold to below it. A new account starts at
// 0, already low: its first credit raises no event.
func (b *batchState) balanceLow(m AccountMove) (BalanceLow, bool) {
	before := b.snap.Accounts[m.ID] // zero for a new account
	was, now := before.Balance-before.Held, m.Balance-m.Held
	if !b.settings.LowBalanceCrossed(was, now) {
		return BalanceLow{}, false
	}
	return BalanceLow{Balance: m.Balance, Available: now, Threshold: b.settings.LowBalanceThreshold}, true
}

// WatchEventsInput asks for a stream of a workspace's events.
type WatchEventsInput struct {
	Workspace     string
	AfterSequence int64
	Account       string
	Types         []EventType
}

// DefaultEventPoll is how often a watch looks for events committed by
// other replicas; the events this process commits wake it at once.
const DefaultEventPoll = time.Second

// WithEventPoll sets how often watches look for other replicas' events.
func WithEventPoll(d time.Duration) Option { return func(s *Service) { s.eventPoll = d } }

// WatchEvents sends the workspace's events after in.AfterSequence in
// sequence order, then each new one as it commits, until ctx ends or send
// fails. Since a workspace's sequence follows commit order and a reader
// that sees an event sees every earlier one, a watch resumed after the
// last sequence it sent repeats and skips nothing.
func (s *Service) WatchEvents(ctx context.Context, in WatchEventsInput, send func(Event) error) error {
	q := ListEventsInput{
		Workspace: in.Workspace, AfterSequence: in.AfterSequence, Account: in.Account, Types: in.Types, PageSize: MaxEventPage,
	}
	poll := s.eventPoll
	if poll <= 0 {
		poll = DefaultEventPoll
	}
	timer := time.NewTimer(poll)
	defer timer.Stop()
	for {
		// Taken before the read, so that a commit between the read and
		// the wait still wakes it.
		wake := s.events.wait(in.Workspace)
		page, err := s.listEvents(ctx, q, false)
		if err != nil {
			return err
		}
		for _, e := range page.Events {
			if err := send(e); err != nil {
				return err
			}
		}
		q.AfterSequence = page.Last
		if len(page.Events) == MaxEventPage {
			continue
		}
		timer.Reset(poll)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.events.stopped():
			return UnavailableError(fmt.Errorf("the server is shutting down: watch again after sequence %d", q.AfterSequence))
		case <-wake:
		case <-timer.C:
		}
	}
}

// StopWatches ends every watch of this service, now and later, with
// UNAVAILABLE: a server that drains must not wait for callers that would
// otherwise stay for ever. They resume elsewhere from their last sequence.
func (s *Service) StopWatches() { s.events.stop() }

// eventHub wakes the watches of a workspace when this process commits a
// batch of it.
type eventHub struct {
	mu   sync.Mutex
	ch   map[string]chan struct{}
	done chan struct{} // closed by stop
}

func (h *eventHub) stopped() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done == nil {
		h.done = make(chan struct{})
	}
	return h.done
}

func (h *eventHub) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done == nil {
		h.done = make(chan struct{})
	}
	select {
	case <-h.done:
	default:
		close(h.done)
	}
}

// wait returns a channel closed at the workspace's next commit.
func (h *eventHub) wait(ws string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ch == nil {
		h.ch = map[string]chan struct{}{}
	}
	c, ok := h.ch[ws]
	if !ok {
		c = make(chan struct{})
		h.ch[ws] = c
	}
	return c
}

// wake closes the workspace's channel, if a watch waits on it.
func (h *eventHub) wake(ws string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c, ok := h.ch[ws]; ok {
		close(c)
		delete(h.ch, ws)
	}
}
