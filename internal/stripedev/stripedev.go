// Package stripedev is a local stand-in for the part of Stripe that
// CreditLedger's checkout uses, for development and tests: no account, no
// network, no real payment.
//
// It serves, as stripe-go sends and reads them:
//
//	POST /v1/checkout/sessions                 create a Checkout Session (mode payment, price_data line items)
//	GET  /v1/checkout/sessions/{id}            read it back
//	GET  /v1/events, GET /v1/events/{id}       the events it sent
//	POST /v1/events/{id}/retry                 deliver an event again, newly signed (what `stripe events resend` asks)
//	POST /v1/webhook_endpoints                 add a webhook endpoint {url, enabled_events[]}
//	POST /v1/webhook_endpoints/{id}            change its url or events
//
// every call authenticated with the configured test key
// (Authorization: Bearer sk_test_…), and the hosted payment page at a
// session's url, GET /pay/{id}: plainly marked as a test stand-in, with a
// Pay and a Cancel button (forms, no JavaScript). Pay completes the
// session, builds its checkout.session.completed event, signs it with the
// webhook secret exactly as Stripe does (Stripe-Signature, through
// stripe-go's webhook package), POSTs it to every webhook endpoint, then
// sends the browser to the session's success_url; Cancel sends it to
// cancel_url and changes nothing.
//
// Differences from Stripe, on purpose: events are delivered once,
// synchronously, before the browser is redirected (a failed delivery is
// logged and kept; POST /v1/events/{id}/retry delivers it again), so that
// a test that clicked Pay may look at the result at once; every endpoint
// signs with the one configured secret (Stripe makes one per endpoint); only
// the parameters the checkout sends are accepted (others are refused as
// Stripe refuses unknown ones).
package stripedev

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"
	"go.uber.org/zap"
)

// Config configures a Server.
type Config struct {
	// SecretKey is the API key callers must send (sk_test_… or rk_test_…);
	// empty accepts any test key. Live keys are always refused.
	SecretKey string
	// WebhookSecret signs every event (whsec_…). Required.
	WebhookSecret string
	// WebhookURL, when set, is a first webhook endpoint that takes every
	// event (what `stripe listen --forward-to` does).
	WebhookURL string
	// PublicURL is the base of the hosted pages' addresses (a session's
	// url); empty: http://<the Host the API was called on>.
	PublicURL string
	// Client delivers the events; nil: a client with a 10s timeout.
	Client *http.Client
	// Log receives one line per request and per delivery; nil: none.
	Log *zap.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Server is the stand-in. Its methods are safe for concurrent use.
type Server struct {
	cfg    Config
	client *http.Client
	log    *zap.Logger
	now    func() time.Time

	// idemMu serializes the POSTs that carry an idempotency key, so that
	// two at once with one key create one thing (Stripe answers the
	// second 409; here it waits, then gets the replay).
	idemMu sync.Mutex

	mu         sync.Mutex
	sessions   map[string]*Session
	order      []string // session ids, oldest first
	events     []*Event // oldest first
	endpoints  []*WebhookEndpoint
	idem       map[string]idemResult
	requests   []Request
	deliveries []Delivery
}

// New returns a stand-in.
func New(cfg Config) (*Server, error) {
	if cfg.WebhookSecret == "" {
		return nil, errors.New("stripedev: a webhook secret is required")
	}
	if cfg.SecretKey != "" && !testKey(cfg.SecretKey) {
		return nil, errors.New("stripedev: the secret key must be a test key (sk_test_… or rk_test_…)")
	}
	if cfg.PublicURL != "" {
		if err := checkURL(cfg.PublicURL); err != nil {
			return nil, fmt.Errorf("stripedev: public URL: %w", err)
		}
	}
	s := &Server{
		cfg: cfg, client: cfg.Client, log: cfg.Log, now: cfg.Now,
		sessions: map[string]*Session{}, idem: map[string]idemResult{},
	}
	if s.client == nil {
		s.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: 10 * time.Second}
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if cfg.WebhookURL != "" {
		if err := checkURL(cfg.WebhookURL); err != nil {
			return nil, fmt.Errorf("stripedev: webhook URL: %w", err)
		}
		s.endpoints = append(s.endpoints, &WebhookEndpoint{
			ID: "we_cli", Object: "webhook_endpoint", URL: cfg.WebhookURL, EnabledEvents: []string{"*"}, Status: "enabled",
		})
	}
	return s, nil
}

// Session is a Checkout Session, in Stripe's JSON.
type Session struct {
	ID                string            `json:"id"`
	Object            string            `json:"object"`
	AmountSubtotal    int64             `json:"amount_subtotal"`
	AmountTotal       int64             `json:"amount_total"`
	CancelURL         *string           `json:"cancel_url"`
	ClientReferenceID *string           `json:"client_reference_id"`
	Created           int64             `json:"created"`
	Currency          string            `json:"currency"`
	ExpiresAt         int64             `json:"expires_at"`
	Livemode          bool              `json:"livemode"`
	Metadata          map[string]string `json:"metadata"`
	Mode              string            `json:"mode"`
	PaymentIntent     *string           `json:"payment_intent"`
	PaymentStatus     string            `json:"payment_status"`
	Status            string            `json:"status"`
	SuccessURL        *string           `json:"success_url"`
	// URL is the hosted payment page while the session is open; null after.
	URL *string `json:"url"`

	// LineItems are what the session sells (Stripe lists them at
	// /line_items; here they are only for tests).
	LineItems []LineItem `json:"-"`
	// PaymentIntentMetadata is payment_intent_data.metadata: the
	// PaymentIntent's metadata once paid.
	PaymentIntentMetadata map[string]string `json:"-"`
	// IdempotencyKey is the key of the request that created the session.
	IdempotencyKey string `json:"-"`
	page           string
}

// LineItem is one line of a session.
type LineItem struct {
	Name        string
	Description string
	Currency    string
	UnitAmount  int64
	Quantity    int64
}

// Event is a Stripe event.
type Event struct {
	ID              string `json:"id"`
	Object          string `json:"object"`
	APIVersion      string `json:"api_version"`
	Created         int64  `json:"created"`
	Livemode        bool   `json:"livemode"`
	PendingWebhooks int    `json:"pending_webhooks"`
	Request         struct {
		ID             *string `json:"id"`
		IdempotencyKey *string `json:"idempotency_key"`
	} `json:"request"`
	Type string `json:"type"`
	Data struct {
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

// WebhookEndpoint is where events are delivered.
type WebhookEndpoint struct {
	ID            string   `json:"id"`
	Object        string   `json:"object"`
	URL           string   `json:"url"`
	EnabledEvents []string `json:"enabled_events"`
	Status        string   `json:"status"`
	// Secret is shown when the endpoint is created, as Stripe does: here
	// always the stand-in's one webhook secret.
	Secret string `json:"secret,omitempty"`
}

func (e *WebhookEndpoint) takes(eventType string) bool {
	return e.Status == "enabled" && (slices.Contains(e.EnabledEvents, "*") || slices.Contains(e.EnabledEvents, eventType))
}

// Request is an API call the stand-in received.
type Request struct {
	Method string
	Path   string
	Header http.Header
	// Form is the request's parameters: the form body of a POST, the
	// query of a GET.
	Form   url.Values
	Status int
}

// Delivery is one attempt to deliver an event to an endpoint.
type Delivery struct {
	EventID   string
	EventType string
	URL       string
	// Status is the endpoint's HTTP answer; 0 when none came (Err says why).
	Status int
	Err    string
	Body   string
}

type idemResult struct {
	fingerprint string
	status      int
	body        []byte
}

// SetWebhookURL points the first webhook endpoint (the one WebhookURL
// configures, "we_cli") at url, creating it if needed: for a receiver
// that started after the stand-in, or moved.
func (s *Server) SetWebhookURL(url string) error {
	if err := checkURL(url); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ep := range s.endpoints {
		if ep.ID == "we_cli" {
			ep.URL = url
			return nil
		}
	}
	s.endpoints = append([]*WebhookEndpoint{{ID: "we_cli", Object: "webhook_endpoint", URL: url, EnabledEvents: []string{"*"}, Status: "enabled"}},
		s.endpoints...)
	return nil
}

// Requests returns the API calls received so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Sessions returns the sessions created so far, oldest first.
func (s *Server) Sessions() []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Session, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, *s.sessions[id])
	}
	return out
}

// Events returns the events built so far, oldest first.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Event, len(s.events))
	for i, e := range s.events {
		out[i] = *e
	}
	return out
}

// Deliveries returns every delivery attempt so far, oldest first.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deliveries)
}

// Handler returns the stand-in's API and hosted pages.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/checkout/sessions", s.api(s.createSession))
	mux.HandleFunc("GET /v1/checkout/sessions/{id}", s.api(s.getSession))
	mux.HandleFunc("GET /v1/events", s.api(s.listEvents))
	mux.HandleFunc("GET /v1/events/{id}", s.api(s.getEvent))
	mux.HandleFunc("POST /v1/events/{id}/retry", s.api(s.retryEvent))
	mux.HandleFunc("POST /v1/webhook_endpoints", s.api(s.createEndpoint))
	mux.HandleFunc("POST /v1/webhook_endpoints/{id}", s.api(s.updateEndpoint))
	mux.HandleFunc("/v1/", s.api(func(*http.Request, url.Values) (int, any) {
		return apiErr(http.StatusNotFound, "invalid_request_error", "", "", "Unrecognized request URL: the Stripe stand-in serves only what the checkout uses")
	}))
	mux.HandleFunc("GET /pay/{id}", s.payPage)
	mux.HandleFunc("POST /pay/{id}", s.payAction)
	mux.HandleFunc("GET /{$}", s.home)
	return mux
}

// --- the API ---

// apiHandler answers an authenticated API call with a status and a JSON body.
type apiHandler func(r *http.Request, form url.Values) (int, any)

// maxForm bounds a request's parameters.
const maxForm = 64 << 10

// api wraps an API handler: authentication, parameters, idempotent
// replays of POSTs, the record of the call, Stripe's error shape.
func (s *Server) api(h apiHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var form url.Values
		status, body := s.authenticate(r)
		if status == 0 {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if err := r.ParseForm(); err != nil {
				status, body = apiErr(http.StatusBadRequest, "invalid_request_error", "", "", "Invalid request body: "+err.Error())
			}
			form = r.Form
			if r.Method == http.MethodPost {
				form = r.PostForm
			}
		}
		key := r.Header.Get("Idempotency-Key")
		replayed := false
		if status == 0 && r.Method == http.MethodPost && key != "" {
			s.idemMu.Lock()
			defer s.idemMu.Unlock()
			status, body, replayed = s.replay(r, key, form)
		}
		var raw []byte
		if status == 0 {
			status, body = h(r, form)
			raw = mustJSON(body)
			if r.Method == http.MethodPost && key != "" && status < 400 {
				s.mu.Lock()
				s.idem[key] = idemResult{fingerprint: fingerprint(r, form), status: status, body: raw}
				s.mu.Unlock()
			}
		} else if b, ok := body.([]byte); ok {
			raw = b
		} else {
			raw = mustJSON(body)
		}
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Form: form, Status: status})
		s.mu.Unlock()
		s.log.Info("api request", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Int("status", status),
			zap.Bool("idempotent_replay", replayed))
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", "req_"+randomID(14))
		if key != "" {
			w.Header().Set("Idempotency-Key", key)
		}
		if replayed {
			w.Header().Set("Idempotent-Replayed", "true")
		}
		w.WriteHeader(status)
		_, _ = w.Write(raw) //nolint:gosec // G705: a JSON body (Content-Type application/json), not HTML
	}
}

// authenticate checks the API key as Stripe does: a Bearer token, or the
// key as the user of Basic authentication. 0 when it is accepted.
func (s *Server) authenticate(r *http.Request) (int, any) {
	key := ""
	if user, _, ok := r.BasicAuth(); ok {
		key = user
	} else if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		key = strings.TrimSpace(tok)
	}
	switch {
	case key == "":
		return apiErr(http.StatusUnauthorized, "invalid_request_error", "", "",
			"You did not provide an API key. Provide it in the Authorization header as a Bearer token (Authorization: Bearer sk_test_…).")
	case !testKey(key):
		return apiErr(http.StatusUnauthorized, "invalid_request_error", "", "", "The Stripe test stand-in takes test keys only (sk_test_… or rk_test_…).")
	case s.cfg.SecretKey != "" && key != s.cfg.SecretKey:
		return apiErr(http.StatusUnauthorized, "invalid_request_error", "", "", "Invalid API Key provided: "+maskKey(key))
	}
	return 0, nil
}

// replay answers a POST whose idempotency key was already used: the same
// answer for the same parameters, an idempotency_error for others.
func (s *Server) replay(r *http.Request, key string, form url.Values) (int, any, bool) {
	s.mu.Lock()
	prev, ok := s.idem[key]
	s.mu.Unlock()
	switch {
	case !ok:
		return 0, nil, false
	case prev.fingerprint != fingerprint(r, form):
		st, body := apiErr(http.StatusBadRequest, "idempotency_error", "", "",
			"Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '"+
				key+"' if you meant to execute a different request.")
		return st, body, false
	default:
		return prev.status, prev.body, true
	}
}

func fingerprint(r *http.Request, form url.Values) string {
	h := sha256.Sum256([]byte(r.Method + " " + r.URL.Path + "?" + form.Encode()))
	return hex.EncodeToString(h[:])
}

// stripeError is Stripe's error body.
type stripeError struct {
	Error struct {
		Type    string `json:"type"`
		Code    string `json:"code,omitempty"`
		Param   string `json:"param,omitempty"`
		Message string `json:"message"`
	} `json:"error"`
}

func apiErr(status int, typ, code, param, msg string) (int, any) {
	var e stripeError
	e.Error.Type, e.Error.Code, e.Error.Param, e.Error.Message = typ, code, param, msg
	return status, e
}

func invalid(param, format string, args ...any) (int, any) {
	return apiErr(http.StatusBadRequest, "invalid_request_error", "parameter_invalid", param, fmt.Sprintf(format, args...))
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own types are encoded
	}
	return b
}

var lineItemParam = regexp.MustCompile(`^line_items\[(\d+)\]\[([a-z_]+)\](?:\[([a-z_]+)\](?:\[([a-z_]+)\])?)?$`)

// createSession is POST /v1/checkout/sessions.
func (s *Server) createSession(r *http.Request, form url.Values) (int, any) {
	sess := &Session{
		Object: "checkout.session", Mode: form.Get("mode"), Status: "open", PaymentStatus: "unpaid",
		Metadata: map[string]string{}, PaymentIntentMetadata: map[string]string{}, IdempotencyKey: r.Header.Get("Idempotency-Key"),
	}
	items := map[int]*LineItem{}
	for name, vals := range form {
		v := vals[0]
		if len(vals) != 1 {
			return invalid(name, "Received more than one value for %s.", name)
		}
		if k, ok := metadataKey(name, "metadata["); ok {
			sess.Metadata[k] = v
			continue
		}
		if k, ok := metadataKey(name, "payment_intent_data[metadata]["); ok {
			sess.PaymentIntentMetadata[k] = v
			continue
		}
		if m := lineItemParam.FindStringSubmatch(name); m != nil {
			i, err := strconv.Atoi(m[1])
			if err != nil || i > 99 {
				return invalid(name, "Invalid line item index.")
			}
			if items[i] == nil {
				items[i] = &LineItem{}
			}
			if st, body := setLineItem(items[i], name, m[2:], v); st != 0 {
				return st, body
			}
			continue
		}
		switch name {
		case "mode":
		case "success_url", "cancel_url":
			if err := checkURL(v); err != nil {
				return invalid(name, "Not a valid URL: %v", err)
			}
			if name == "success_url" {
				sess.SuccessURL = &v
			} else {
				sess.CancelURL = &v
			}
		case "client_reference_id":
			if len(v) > 200 {
				return invalid(name, "client_reference_id must be at most 200 characters.")
			}
			sess.ClientReferenceID = &v
		default:
			return apiErr(http.StatusBadRequest, "invalid_request_error", "parameter_unknown", name,
				"Received unknown parameter: "+name+" (the Stripe test stand-in accepts only what the checkout sends)")
		}
	}
	if sess.Mode != "payment" {
		return invalid("mode", "The Stripe test stand-in supports mode=payment only (got %q).", sess.Mode)
	}
	for _, md := range []map[string]string{sess.Metadata, sess.PaymentIntentMetadata} {
		if len(md) > 50 {
			return invalid("metadata", "Metadata can have up to 50 keys.")
		}
		for k, v := range md {
			if k == "" || len(k) > 40 || len(v) > 500 {
				return invalid("metadata["+k+"]", "Metadata keys are 1-40 characters, values at most 500.")
			}
		}
	}
	if len(items) == 0 {
		return apiErr(http.StatusBadRequest, "invalid_request_error", "parameter_missing", "line_items",
			"Missing required param: line_items (price_data).")
	}
	for i := range len(items) {
		it := items[i]
		if it == nil {
			return invalid(fmt.Sprintf("line_items[%d]", i), "Line items must be numbered from 0 without a gap.")
		}
		switch {
		case it.Name == "":
			return apiErr(http.StatusBadRequest, "invalid_request_error", "parameter_missing",
				fmt.Sprintf("line_items[%d][price_data][product_data][name]", i), "Missing required param: name.")
		case len(it.Currency) != 3 || strings.ToLower(it.Currency) != it.Currency:
			return invalid(fmt.Sprintf("line_items[%d][price_data][currency]", i), "Invalid currency: %q (three lower-case letters).", it.Currency)
		case it.UnitAmount <= 0:
			return invalid(fmt.Sprintf("line_items[%d][price_data][unit_amount]", i), "unit_amount must be a positive integer of the currency's smallest unit.")
		case it.Quantity <= 0:
			return invalid(fmt.Sprintf("line_items[%d][quantity]", i), "quantity must be a positive integer.")
		case sess.Currency != "" && it.Currency != sess.Currency:
			return invalid(fmt.Sprintf("line_items[%d][price_data][currency]", i), "All line items must have the same currency.")
		}
		sess.Currency = it.Currency
		if it.UnitAmount > (1<<53)/it.Quantity || sess.AmountTotal > (1<<53)-it.UnitAmount*it.Quantity {
			return invalid("line_items", "The amount is too large.")
		}
		sess.AmountTotal += it.UnitAmount * it.Quantity
		sess.LineItems = append(sess.LineItems, *it)
	}
	sess.AmountSubtotal = sess.AmountTotal
	if low, ok := minimumCharge[sess.Currency]; ok && sess.AmountTotal < low {
		return apiErr(http.StatusBadRequest, "invalid_request_error", "amount_too_small", "",
			fmt.Sprintf("The Checkout Session's total amount due must add up to at least %s.", formatAmount(low, sess.Currency)))
	}
	now := s.now()
	sess.ID = "cs_test_" + randomID(32)
	sess.Created, sess.ExpiresAt = now.Unix(), now.Add(24*time.Hour).Unix()
	sess.page = s.publicURL(r) + "/pay/" + sess.ID
	sess.URL = &sess.page
	s.mu.Lock()
	s.sessions[sess.ID] = sess
	s.order = append(s.order, sess.ID)
	out := *sess
	s.mu.Unlock()
	s.log.Info("checkout session created", zap.String("session", sess.ID), zap.Int64("amount_total", sess.AmountTotal),
		zap.String("currency", sess.Currency), zap.Any("metadata", sess.Metadata))
	return http.StatusOK, out
}

// minimumCharge is Stripe's smallest amount per currency, for the few it
// is checked for here.
var minimumCharge = map[string]int64{"usd": 50, "eur": 50, "gbp": 30}

func metadataKey(name, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok || !strings.HasSuffix(rest, "]") {
		return "", false
	}
	k := strings.TrimSuffix(rest, "]")
	return k, !strings.ContainsAny(k, "[]")
}

// setLineItem sets one line_items[i][…] parameter (path without the index).
func setLineItem(it *LineItem, name string, path []string, v string) (int, any) {
	num := func() (int64, bool) {
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	}
	var ok bool
	switch strings.Join(slices.DeleteFunc(slices.Clone(path), func(p string) bool { return p == "" }), ".") {
	case "quantity":
		it.Quantity, ok = num()
	case "price_data.currency":
		it.Currency, ok = v, true
	case "price_data.unit_amount":
		it.UnitAmount, ok = num()
	case "price_data.product_data.name":
		it.Name, ok = v, true
	case "price_data.product_data.description":
		it.Description, ok = v, true
	default:
		return apiErr(http.StatusBadRequest, "invalid_request_error", "parameter_unknown", name,
			"Received unknown parameter: "+name+" (the Stripe test stand-in takes price_data line items only)")
	}
	if !ok {
		return invalid(name, "Invalid integer: %s", v)
	}
	return 0, nil
}

// getSession is GET /v1/checkout/sessions/{id}.
func (s *Server) getSession(r *http.Request, _ url.Values) (int, any) {
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok {
		return apiErr(http.StatusNotFound, "invalid_request_error", "resource_missing", "session", "No such checkout.session: '"+id+"'")
	}
	s.expire(sess)
	return http.StatusOK, *sess
}

// expire closes an open session past its expiry. Called with s.mu held.
func (s *Server) expire(sess *Session) {
	if sess.Status == "open" && s.now().Unix() >= sess.ExpiresAt {
		sess.Status, sess.URL = "expired", nil
	}
}

// listEvents is GET /v1/events: newest first, optionally of one type.
func (s *Server) listEvents(_ *http.Request, form url.Values) (int, any) {
	typ := form.Get("type")
	s.mu.Lock()
	defer s.mu.Unlock()
	data := []Event{}
	for i := len(s.events) - 1; i >= 0; i-- {
		if typ == "" || s.events[i].Type == typ {
			data = append(data, *s.events[i])
		}
	}
	return http.StatusOK, map[string]any{"object": "list", "url": "/v1/events", "has_more": false, "data": data}
}

func (s *Server) event(id string) (*Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.events {
		if e.ID == id {
			return e, true
		}
	}
	return nil, false
}

// getEvent is GET /v1/events/{id}.
func (s *Server) getEvent(r *http.Request, _ url.Values) (int, any) {
	e, ok := s.event(r.PathValue("id"))
	if !ok {
		return apiErr(http.StatusNotFound, "invalid_request_error", "resource_missing", "id", "No such event: '"+r.PathValue("id")+"'")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return http.StatusOK, *e
}

// retryEvent is POST /v1/events/{id}/retry: the event delivered again to
// every endpoint that takes it, or to the one named by webhook_endpoint.
func (s *Server) retryEvent(r *http.Request, form url.Values) (int, any) {
	e, ok := s.event(r.PathValue("id"))
	if !ok {
		return apiErr(http.StatusNotFound, "invalid_request_error", "resource_missing", "id", "No such event: '"+r.PathValue("id")+"'")
	}
	for name := range form {
		if name != "webhook_endpoint" {
			return apiErr(http.StatusBadRequest, "invalid_request_error", "parameter_unknown", name, "Received unknown parameter: "+name)
		}
	}
	s.mu.Lock()
	ev := *e
	s.mu.Unlock()
	n := s.deliver(r.Context(), ev, form.Get("webhook_endpoint"))
	if n == 0 {
		return invalid("webhook_endpoint", "No webhook endpoint takes %s events.", ev.Type)
	}
	return http.StatusOK, ev
}

// createEndpoint is POST /v1/webhook_endpoints.
func (s *Server) createEndpoint(_ *http.Request, form url.Values) (int, any) {
	ep := &WebhookEndpoint{ID: "we_" + randomID(24), Object: "webhook_endpoint", Status: "enabled"}
	if st, body := setEndpoint(ep, form, true); st != 0 {
		return st, body
	}
	s.mu.Lock()
	s.endpoints = append(s.endpoints, ep)
	out := *ep
	s.mu.Unlock()
	out.Secret = s.cfg.WebhookSecret
	return http.StatusOK, out
}

// updateEndpoint is POST /v1/webhook_endpoints/{id}.
func (s *Server) updateEndpoint(r *http.Request, form url.Values) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ep := range s.endpoints {
		if ep.ID == r.PathValue("id") {
			next := *ep
			if st, body := setEndpoint(&next, form, false); st != 0 {
				return st, body
			}
			*ep = next
			return http.StatusOK, next
		}
	}
	return apiErr(http.StatusNotFound, "invalid_request_error", "resource_missing", "id", "No such webhook endpoint: '"+r.PathValue("id")+"'")
}

func setEndpoint(ep *WebhookEndpoint, form url.Values, create bool) (int, any) {
	events := []string(nil)
	for name, vals := range form {
		switch {
		case name == "url":
			if err := checkURL(vals[0]); err != nil {
				return invalid("url", "Invalid URL: %v", err)
			}
			ep.URL = vals[0]
		case name == "disabled":
			ep.Status = map[bool]string{true: "disabled", false: "enabled"}[vals[0] == "true"]
		case strings.HasPrefix(name, "enabled_events["):
			events = append(events, vals...)
		default:
			return apiErr(http.StatusBadRequest, "invalid_request_error", "parameter_unknown", name, "Received unknown parameter: "+name)
		}
	}
	if events != nil {
		ep.EnabledEvents = events
	}
	if create && (ep.URL == "" || len(ep.EnabledEvents) == 0) {
		return apiErr(http.StatusBadRequest, "invalid_request_error", "parameter_missing", "url", "Missing required param: url and enabled_events.")
	}
	return 0, nil
}

// --- events ---

// complete marks an open session paid and records its
// checkout.session.completed event. ok is false when the session is not
// open (already paid, or expired): nothing changes.
func (s *Server) complete(id string) (Event, Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok {
		return Event{}, Session{}, false
	}
	s.expire(sess)
	if sess.Status != "open" {
		return Event{}, *sess, false
	}
	pi := "pi_" + randomID(24)
	sess.Status, sess.PaymentStatus, sess.PaymentIntent, sess.URL = "complete", "paid", &pi, nil
	ev := &Event{ID: "evt_" + randomID(24), Object: "event", APIVersion: stripe.APIVersion, Created: s.now().Unix(), Type: "checkout.session.completed"}
	ev.Data.Object = mustJSON(sess)
	for _, ep := range s.endpoints {
		if ep.takes(ev.Type) {
			ev.PendingWebhooks++
		}
	}
	s.events = append(s.events, ev)
	return *ev, *sess, true
}

// deliver signs ev and POSTs it to every endpoint that takes it (only to
// endpointID when set), and returns how many it was sent to.
func (s *Server) deliver(ctx context.Context, ev Event, endpointID string) int {
	s.mu.Lock()
	var targets []WebhookEndpoint
	for _, ep := range s.endpoints {
		if ep.takes(ev.Type) && (endpointID == "" || ep.ID == endpointID) {
			targets = append(targets, *ep)
		}
	}
	s.mu.Unlock()
	payload := mustJSON(ev)
	for _, ep := range targets {
		d := s.post(ctx, ep.URL, payload)
		d.EventID, d.EventType = ev.ID, ev.Type
		s.mu.Lock()
		s.deliveries = append(s.deliveries, d)
		s.mu.Unlock()
		if d.Status >= 200 && d.Status < 300 {
			s.log.Info("event delivered", zap.String("event", ev.ID), zap.String("type", ev.Type), zap.String("url", ep.URL), zap.Int("status", d.Status))
		} else {
			s.log.Warn("event not delivered; POST /v1/events/"+ev.ID+"/retry sends it again", zap.String("event", ev.ID),
				zap.String("type", ev.Type), zap.String("url", ep.URL), zap.Int("status", d.Status), zap.String("error", d.Err), zap.String("answer", d.Body))
		}
	}
	if len(targets) == 0 {
		s.log.Warn("no webhook endpoint: the event is kept, not delivered", zap.String("event", ev.ID), zap.String("type", ev.Type))
	}
	return len(targets)
}

// post delivers one signed payload as Stripe does.
func (s *Server) post(ctx context.Context, target string, payload []byte) Delivery {
	d := Delivery{URL: target}
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: s.cfg.WebhookSecret, Timestamp: s.now()})
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, target, bytes.NewReader(payload))
	if err != nil {
		d.Err = err.Error()
		return d
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Stripe-Signature", signed.Header)
	req.Header.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks; stripedev stand-in)")
	res, err := s.client.Do(req)
	if err != nil {
		d.Err = err.Error()
		return d
	}
	defer func() { _ = res.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
	d.Status, d.Body = res.StatusCode, string(body)
	return d
}

// --- helpers ---

func (s *Server) publicURL(r *http.Request) string {
	if s.cfg.PublicURL != "" {
		return strings.TrimSuffix(s.cfg.PublicURL, "/")
	}
	return "http://" + r.Host
}

func testKey(k string) bool {
	return (strings.HasPrefix(k, "sk_test_") || strings.HasPrefix(k, "rk_test_")) && len(k) > len("sk_test_")
}

func maskKey(k string) string {
	if len(k) <= 12 {
		return k[:min(len(k), 8)] + "****"
	}
	return k[:8] + "****" + k[len(k)-4:]
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}

// randomID is n lower-case letters and digits.
func randomID(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
