package ledger

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// WebhookEndpoint is where a workspace's events are delivered (SPEC §10).
// Deliveries go in sequence order: DeliveredSequence is the endpoint's
// cursor, and the event after it is retried until delivered or the
// endpoint is disabled.
type WebhookEndpoint struct {
	Workspace   string
	ID          string
	URL         string
	EventTypes  []EventType // empty: every type
	Description string
	// Secret signs deliveries (Standard Webhooks, whsec_…). Shown to the
	// agency once, at creation.
	Secret         string
	Enabled        bool
	DisabledReason string
	// DeliveredSequence is the last event handled: delivered, or not of
	// the endpoint's types.
	DeliveredSequence int64
	// Attempts is how many times the next event failed; FirstFailure is
	// when it first did (the retry window starts there); NextAttempt is
	// when the next attempt is due.
	Attempts     int
	FirstFailure time.Time
	NextAttempt  time.Time
	// LeaseOwner and LeaseUntil: the worker delivering to the endpoint,
	// and until when the others leave it alone.
	LeaseOwner string
	LeaseUntil time.Time
	CreateTime time.Time
	UpdateTime time.Time
}

// Wants reports whether the endpoint delivers events of type t.
func (e WebhookEndpoint) Wants(t EventType) bool {
	return len(e.EventTypes) == 0 || slices.Contains(e.EventTypes, t)
}

// Public returns the endpoint without its secret and delivery lease.
func (e WebhookEndpoint) Public() WebhookEndpoint {
	e.Secret, e.LeaseOwner, e.LeaseUntil = "", "", time.Time{}
	return e
}

// WebhookDelivery is one attempt to deliver one event to one endpoint.
type WebhookDelivery struct {
	Workspace     string
	EndpointID    string
	EventSequence int64
	EventType     EventType
	Attempt       int
	AttemptTime   time.Time
	StatusCode    int
	Latency       time.Duration
	Succeeded     bool
	Error         string
}

// WebhookOutcome is what an attempt leaves the endpoint as: its cursor,
// failure count and window, next due time, and whether it stays enabled.
type WebhookOutcome struct {
	DeliveredSequence int64
	Attempts          int
	FirstFailure      time.Time
	NextAttempt       time.Time
	// Disable, when set, disables the endpoint with this reason; Event is
	// then the event that says so, written with the change.
	Disable string
	Event   *Event
}

// WebhookStore keeps webhook endpoints and their deliveries. Stores that
// implement it support webhooks; every method is scoped to one workspace.
type WebhookStore interface {
	// CreateWebhookEndpoint inserts e with DeliveredSequence set to the
	// workspace's last event sequence, in one transaction: deliveries
	// start with the events committed after it. It returns the endpoint.
	CreateWebhookEndpoint(ctx context.Context, e WebhookEndpoint) (WebhookEndpoint, error)
	// WebhookEndpoint returns one endpoint (NotFound when absent).
	WebhookEndpoint(ctx context.Context, workspace, id string) (WebhookEndpoint, error)
	// ListWebhookEndpoints returns the workspace's endpoints, oldest first.
	ListWebhookEndpoints(ctx context.Context, workspace string) ([]WebhookEndpoint, error)
	// UpdateWebhookEndpoint reads the endpoint locked, lets fn change it,
	// and writes url, event types, description, enabled, disabled reason,
	// failure state, next attempt and update time back.
	UpdateWebhookEndpoint(ctx context.Context, workspace, id string, fn func(*WebhookEndpoint) error) (WebhookEndpoint, error)
	// DeleteWebhookEndpoint removes the endpoint and its deliveries.
	DeleteWebhookEndpoint(ctx context.Context, workspace, id string) error
	// LeaseWebhookEndpoints takes up to limit enabled endpoints of the
	// workspace that are due at now and not leased by another worker
	// (skipping those another transaction holds), and leases them to
	// owner until until.
	LeaseWebhookEndpoints(ctx context.Context, workspace, owner string, now, until time.Time, limit int) ([]WebhookEndpoint, error)
	// RecordWebhookAttempt stores d and applies out to the endpoint, in
	// one transaction, provided owner still holds its lease (else
	// ErrConflict: another worker took it over, and this attempt's result
	// is dropped, to be repeated by that worker); the lease is extended
	// to leaseUntil, or released when zero.
	RecordWebhookAttempt(ctx context.Context, owner string, d WebhookDelivery, out WebhookOutcome, leaseUntil time.Time) error
	// ReleaseWebhookLease ends owner's lease on the endpoint, setting its
	// next attempt and, when skipped > its cursor, moving the cursor there
	// (events not of its types).
	ReleaseWebhookLease(ctx context.Context, workspace, id, owner string, next time.Time, skipped int64) error
	// WebhookWorkspaces lists the workspaces that have (or had) webhook
	// endpoints, across every workspace: where the delivery workers look.
	WebhookWorkspaces(ctx context.Context) ([]string, error)
	// ListWebhookDeliveries returns the endpoint's attempts newest first,
	// those before (sequence, attempt) when before is set.
	ListWebhookDeliveries(ctx context.Context, workspace, id string, before *WebhookDelivery, limit int) ([]WebhookDelivery, error)
}

// MaxWebhookEndpoints caps the endpoints of a workspace.
const MaxWebhookEndpoints = 20

// WithWebhookURLCheck adds a check of endpoint URLs beyond their syntax
// (the server's address policy: no loopback or private addresses unless
// allowed). check returns a message for the caller, or nil.
func WithWebhookURLCheck(check func(string) error) Option {
	return func(s *Service) { s.webhookURLCheck = check }
}

// WithWebhookStore names the store of webhook endpoints when the Store
// given to NewService does not implement WebhookStore itself (a wrapper).
func WithWebhookStore(ws WebhookStore) Option { return func(s *Service) { s.webhookStore = ws } }

func (s *Service) webhooks() (WebhookStore, error) {
	ws := s.webhookStore
	if ws == nil {
		ws, _ = s.store.(WebhookStore)
	}
	if ws == nil {
		return nil, &Error{Code: CodeFailedPrecondition, Reason: ReasonInvalidArgument, Message: "this store does not support webhooks"}
	}
	return ws, nil
}

// checkWebhook validates the fields of e that a caller sets, per paths
// (nil: all).
func (s *Service) checkWebhook(v *violations, e WebhookEndpoint, paths []string) {
	has := func(p string) bool { return paths == nil || slices.Contains(paths, p) }
	if has("url") {
		switch u, err := url.Parse(e.URL); {
		case e.URL == "":
			v.add("url", "is required")
		case len(e.URL) > 2048:
			v.add("url", "must be at most 2048 characters")
		case err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			v.add("url", "must be an absolute https URL")
		case u.User != nil || u.Fragment != "":
			v.add("url", "must have neither credentials nor a fragment")
		case s.webhookURLCheck != nil:
			if err := s.webhookURLCheck(e.URL); err != nil {
				v.add("url", "%s", err.Error())
			}
		}
	}
	if has("event_types") {
		for _, t := range e.EventTypes {
			if !t.Valid() {
				v.add("event_types", "unknown event type %q", truncate(string(t), 64))
			}
		}
		if len(e.EventTypes) > len(EventTypes) {
			v.add("event_types", "lists a type twice")
		}
	}
	if has("description") {
		checkText(v, "description", e.Description, 256)
	}
}

// CreateWebhookEndpoint adds an endpoint with a new signing secret; it is
// enabled, and its deliveries start after the workspace's last event.
func (s *Service) CreateWebhookEndpoint(ctx context.Context, in WebhookEndpoint) (WebhookEndpoint, error) {
	var v violations
	checkID(&v, "workspace", in.Workspace)
	s.checkWebhook(&v, in, nil)
	if err := v.err(); err != nil {
		return WebhookEndpoint{}, err
	}
	st, err := s.webhooks()
	if err != nil {
		return WebhookEndpoint{}, err
	}
	existing, err := st.ListWebhookEndpoints(ctx, in.Workspace)
	if err != nil {
		return WebhookEndpoint{}, err
	}
	if len(existing) >= MaxWebhookEndpoints {
		return WebhookEndpoint{}, newErr(CodeFailedPrecondition, ReasonInvalidArgument,
			fmt.Sprintf("a workspace has at most %d webhook endpoints", MaxWebhookEndpoints), nil)
	}
	secret, err := NewWebhookSecret()
	if err != nil {
		return WebhookEndpoint{}, InternalError(err)
	}
	now := s.clock()
	e := WebhookEndpoint{
		Workspace: in.Workspace, ID: "we_" + strings.ReplaceAll(s.newID(), "-", ""), URL: in.URL,
		EventTypes: dedupTypes(in.EventTypes), Description: in.Description, Secret: secret, Enabled: true,
		NextAttempt: now, CreateTime: now, UpdateTime: now,
	}
	return st.CreateWebhookEndpoint(ctx, e)
}

func dedupTypes(ts []EventType) []EventType {
	out := slices.Clone(ts)
	slices.Sort(out)
	return slices.Compact(out)
}

// NewWebhookSecret returns a new signing secret: whsec_ and 32 random
// bytes in base64, as the Standard Webhooks specification writes them.
func NewWebhookSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b), nil
}

// ListWebhookEndpoints returns the workspace's endpoints, without secrets.
func (s *Service) ListWebhookEndpoints(ctx context.Context, workspace string) ([]WebhookEndpoint, error) {
	var v violations
	checkID(&v, "workspace", workspace)
	if err := v.err(); err != nil {
		return nil, err
	}
	st, err := s.webhooks()
	if err != nil {
		return nil, err
	}
	eps, err := st.ListWebhookEndpoints(ctx, workspace)
	for i := range eps {
		eps[i] = eps[i].Public()
	}
	return eps, err
}

// UpdateWebhookEndpoint changes the fields named in paths (url,
// event_types, description, enabled). Enabling an endpoint resumes its
// deliveries where they stopped, with a new retry window.
func (s *Service) UpdateWebhookEndpoint(ctx context.Context, workspace, id string, in WebhookEndpoint, paths []string) (WebhookEndpoint, error) {
	var v violations
	checkID(&v, "workspace", workspace)
	checkID(&v, "endpoint_id", id)
	set := maskPaths(&v, paths, []string{"url", "event_types", "description", "enabled"})
	if v.err() == nil {
		var named []string // what the mask resolves to ("*": every field)
		for p, on := range set {
			if on {
				named = append(named, p)
			}
		}
		s.checkWebhook(&v, in, named)
	}
	if err := v.err(); err != nil {
		return WebhookEndpoint{}, err
	}
	st, err := s.webhooks()
	if err != nil {
		return WebhookEndpoint{}, err
	}
	now := s.clock()
	out, err := st.UpdateWebhookEndpoint(ctx, workspace, id, func(e *WebhookEndpoint) error {
		if set["url"] {
			e.URL = in.URL
		}
		if set["event_types"] {
			e.EventTypes = dedupTypes(in.EventTypes)
		}
		if set["description"] {
			e.Description = in.Description
		}
		if set["enabled"] && in.Enabled != e.Enabled {
			e.Enabled = in.Enabled
			e.DisabledReason = ""
			if in.Enabled {
				e.FirstFailure, e.NextAttempt = time.Time{}, now
			} else {
				e.DisabledReason = "disabled by the agency"
			}
		}
		e.UpdateTime = now
		return nil
	})
	return out.Public(), err
}

// DeleteWebhookEndpoint removes an endpoint; its deliveries stop.
func (s *Service) DeleteWebhookEndpoint(ctx context.Context, workspace, id string) error {
	var v violations
	checkID(&v, "workspace", workspace)
	checkID(&v, "endpoint_id", id)
	if err := v.err(); err != nil {
		return err
	}
	st, err := s.webhooks()
	if err != nil {
		return err
	}
	return st.DeleteWebhookEndpoint(ctx, workspace, id)
}

// WebhookDeliveryPage is a page of attempts, newest first.
type WebhookDeliveryPage struct {
	Deliveries    []WebhookDelivery
	NextPageToken string
}

// ListWebhookDeliveries returns a page of an endpoint's attempts.
func (s *Service) ListWebhookDeliveries(ctx context.Context, workspace, id string, limit int32, pageToken string) (WebhookDeliveryPage, error) {
	var v violations
	checkID(&v, "workspace", workspace)
	checkID(&v, "endpoint_id", id)
	size := pageSize(&v, limit)
	if err := v.err(); err != nil {
		return WebhookDeliveryPage{}, err
	}
	st, err := s.webhooks()
	if err != nil {
		return WebhookDeliveryPage{}, err
	}
	if _, err := st.WebhookEndpoint(ctx, workspace, id); err != nil {
		return WebhookDeliveryPage{}, err
	}
	bind := binding("webhook-deliveries", workspace, id)
	var before *WebhookDelivery
	if pageToken != "" {
		cur, err := s.tokens.Decode(bind, pageToken)
		if err != nil {
			return WebhookDeliveryPage{}, err
		}
		seq, attempt, ok := parseDeliveryCursor(cur)
		if !ok {
			return WebhookDeliveryPage{}, invalid("page_token", "is invalid")
		}
		before = &WebhookDelivery{EventSequence: seq, Attempt: attempt}
	}
	rows, err := st.ListWebhookDeliveries(ctx, workspace, id, before, size+1)
	if err != nil {
		return WebhookDeliveryPage{}, err
	}
	page := WebhookDeliveryPage{Deliveries: rows}
	if len(rows) > size {
		page.Deliveries = rows[:size]
		last := rows[size-1]
		page.NextPageToken = s.tokens.Encode(bind, fmt.Sprintf("%d.%d", last.EventSequence, last.Attempt))
	}
	return page, nil
}

func parseDeliveryCursor(s string) (seq int64, attempt int, ok bool) {
	if _, err := fmt.Sscanf(s, "%d.%d", &seq, &attempt); err != nil || seq < 0 || attempt < 0 {
		return 0, 0, false
	}
	return seq, attempt, true
}

// ErrLeaseLost is RecordWebhookAttempt's answer when another worker took
// the endpoint over.
var ErrLeaseLost = errors.New("ledger: the webhook endpoint's lease was taken over")
