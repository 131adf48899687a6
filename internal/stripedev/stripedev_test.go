package stripedev

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"
)

// testClient has a connection pool of its own (.golangci.yml's forbidigo
// rule says why tests need one).
var testClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}

const (
	key    = "sk_test_stand_in"
	secret = "whsec_stand_in"
)

// receiver is a webhook endpoint that verifies and keeps what it gets.
type receiver struct {
	mu     sync.Mutex
	events []stripe.Event
	bad    int
	status int
	srv    *httptest.Server
}

func newReceiver(t testing.TB) *receiver {
	t.Helper()
	r := &receiver{status: http.StatusOK}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		ev, err := webhook.ConstructEvent(body, req.Header.Get("Stripe-Signature"), secret)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			r.bad++
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.events = append(r.events, ev)
		w.WriteHeader(r.status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got() ([]stripe.Event, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]stripe.Event(nil), r.events...), r.bad
}

type fixture struct {
	sd  *Server
	url string
	sc  *stripe.Client
	rcv *receiver
	now time.Time
	mu  sync.Mutex
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

func newFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	f := &fixture{rcv: newReceiver(t), now: time.Now()}
	if cfg.WebhookSecret == "" {
		cfg.WebhookSecret = secret
	}
	if cfg.WebhookURL == "" {
		cfg.WebhookURL = f.rcv.srv.URL
	}
	cfg.Now = f.clock
	sd, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sd.Handler())
	t.Cleanup(srv.Close)
	f.sd, f.url = sd, srv.URL
	f.sc = client(srv.URL, key)
	return f
}

// client is stripe-go's own client pointed at the stand-in.
func client(apiURL, apiKey string) *stripe.Client {
	bc := &stripe.BackendConfig{URL: stripe.String(apiURL), HTTPClient: testClient, MaxNetworkRetries: stripe.Int64(0), LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull}}
	return stripe.NewClient(apiKey, stripe.WithBackends(stripe.NewBackendsWithConfig(bc)))
}

func sessionParams() *stripe.CheckoutSessionCreateParams {
	return &stripe.CheckoutSessionCreateParams{
		Mode: stripe.String("payment"),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{
			PriceData: &stripe.CheckoutSessionCreateLineItemPriceDataParams{
				Currency: stripe.String("usd"), UnitAmount: stripe.Int64(1000),
				ProductData: &stripe.CheckoutSessionCreateLineItemPriceDataProductDataParams{Name: stripe.String("Starter")},
			},
			Quantity: stripe.Int64(1),
		}},
		SuccessURL:        stripe.String("https://shop.example/done?s={CHECKOUT_SESSION_ID}"),
		CancelURL:         stripe.String("https://shop.example/cart"),
		Metadata:          map[string]string{"workspace": "acme", "purchase_id": "p-1"},
		PaymentIntentData: &stripe.CheckoutSessionCreatePaymentIntentDataParams{Metadata: map[string]string{"purchase_id": "p-1"}},
	}
}

func stripeErr(t testing.TB, err error) *stripe.Error {
	t.Helper()
	var se *stripe.Error
	if !errors.As(err, &se) {
		t.Fatalf("want a Stripe error, got %v", err)
	}
	return se
}

var noRedirect = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func submit(t testing.TB, pageURL, action string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", pageURL, strings.NewReader(url.Values{"action": {action}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Location"), string(b)
}

func TestASessionIsCreatedAsStripeGoAsksAndReadBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{SecretKey: key})
	sess, err := f.sc.V1CheckoutSessions.Create(t.Context(), sessionParams())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sess.ID, "cs_test_") || sess.URL != f.url+"/pay/"+sess.ID || sess.AmountTotal != 1000 || sess.Currency != "usd" ||
		sess.Status != stripe.CheckoutSessionStatusOpen || sess.PaymentStatus != stripe.CheckoutSessionPaymentStatusUnpaid ||
		sess.Metadata["purchase_id"] != "p-1" || sess.Mode != stripe.CheckoutSessionModePayment {
		t.Errorf("created: %+v", sess)
	}
	got, err := f.sc.V1CheckoutSessions.Retrieve(t.Context(), sess.ID, nil)
	if err != nil || got.ID != sess.ID || got.URL != sess.URL || got.AmountTotal != 1000 {
		t.Errorf("retrieved: %+v, %v", got, err)
	}
	_, err = f.sc.V1CheckoutSessions.Retrieve(t.Context(), "cs_test_nope", nil)
	if se := stripeErr(t, err); se.HTTPStatusCode != 404 || se.Code != stripe.ErrorCodeResourceMissing {
		t.Errorf("unknown session: %+v", se)
	}
	s := f.sd.Sessions()
	if len(s) != 1 || len(s[0].LineItems) != 1 || s[0].LineItems[0] != (LineItem{Name: "Starter", Currency: "usd", UnitAmount: 1000, Quantity: 1}) ||
		s[0].PaymentIntentMetadata["purchase_id"] != "p-1" {
		t.Errorf("recorded: %+v", s)
	}
}

func TestTheAPIKeyIsChecked(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{SecretKey: key})
	for name, k := range map[string]string{
		"another test key": "sk_test_other",
		"a live key":       "sk_live_whatever",
		"a publishable":    "pk_test_abc",
	} {
		_, err := client(f.url, k).V1CheckoutSessions.Create(t.Context(), sessionParams())
		if se := stripeErr(t, err); se.HTTPStatusCode != 401 || strings.Contains(se.Msg, k) && len(k) > 12 {
			t.Errorf("%s: %+v", name, se)
		}
	}
	res, err := testClient.Post(f.url+"/v1/checkout/sessions", "application/x-www-form-urlencoded", strings.NewReader("mode=payment"))
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != 401 {
		t.Errorf("no key: HTTP %d", res.StatusCode)
	}
	if n := len(f.sd.Sessions()); n != 0 {
		t.Errorf("%d sessions created without the key", n)
	}
	// Basic authentication with the key as the user works as at Stripe.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", f.url+"/v1/events", nil)
	req.SetBasicAuth(key, "")
	if res, err := testClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Errorf("basic auth: %v %v", res, err)
	} else {
		_ = res.Body.Close()
	}
	if _, err := New(Config{SecretKey: "sk_live_abc", WebhookSecret: secret}); err == nil {
		t.Error("a live key was accepted as the expected key")
	}
}

func TestRequestsItDoesNotServeAreRefusedAsStripeWould(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	tests := map[string]func(*stripe.CheckoutSessionCreateParams){
		"subscription mode": func(p *stripe.CheckoutSessionCreateParams) { p.Mode = stripe.String("subscription") },
		"no line items":     func(p *stripe.CheckoutSessionCreateParams) { p.LineItems = nil },
		"a Price id": func(p *stripe.CheckoutSessionCreateParams) {
			p.LineItems[0].PriceData, p.LineItems[0].Price = nil, stripe.String("price_1")
		},
		"upper-case currency":  func(p *stripe.CheckoutSessionCreateParams) { p.LineItems[0].PriceData.Currency = stripe.String("USD") },
		"zero amount":          func(p *stripe.CheckoutSessionCreateParams) { p.LineItems[0].PriceData.UnitAmount = stripe.Int64(0) },
		"below the minimum":    func(p *stripe.CheckoutSessionCreateParams) { p.LineItems[0].PriceData.UnitAmount = stripe.Int64(49) },
		"no product name":      func(p *stripe.CheckoutSessionCreateParams) { p.LineItems[0].PriceData.ProductData.Name = nil },
		"relative success_url": func(p *stripe.CheckoutSessionCreateParams) { p.SuccessURL = stripe.String("/done") },
		"an unknown parameter": func(p *stripe.CheckoutSessionCreateParams) { p.CustomerEmail = stripe.String("a@b.example") },
		"a metadata key too long": func(p *stripe.CheckoutSessionCreateParams) {
			p.Metadata[strings.Repeat("k", 41)] = "v"
		},
	}
	for name, mod := range tests {
		p := sessionParams()
		mod(p)
		_, err := f.sc.V1CheckoutSessions.Create(t.Context(), p)
		if se := stripeErr(t, err); se.HTTPStatusCode != 400 || se.Type != stripe.ErrorTypeInvalidRequest || se.Msg == "" {
			t.Errorf("%s: %+v", name, se)
		}
	}
	if n := len(f.sd.Sessions()); n != 0 {
		t.Errorf("%d sessions created by refused requests", n)
	}
}

func TestAnIdempotencyKeyReplaysTheFirstAnswer(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	p := sessionParams()
	p.SetIdempotencyKey("purchase-1")
	first, err := f.sc.V1CheckoutSessions.Create(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	p = sessionParams()
	p.SetIdempotencyKey("purchase-1")
	again, err := f.sc.V1CheckoutSessions.Create(t.Context(), p)
	if err != nil || again.ID != first.ID || again.LastResponse.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: %+v %v", again, err)
	}
	p = sessionParams()
	p.LineItems[0].PriceData.UnitAmount = stripe.Int64(2000)
	p.SetIdempotencyKey("purchase-1")
	_, err = f.sc.V1CheckoutSessions.Create(t.Context(), p)
	if se := stripeErr(t, err); se.HTTPStatusCode != 400 || se.Type != stripe.ErrorTypeIdempotency {
		t.Errorf("same key, other parameters: %+v", se)
	}
	if n := len(f.sd.Sessions()); n != 1 {
		t.Errorf("%d sessions, want 1", n)
	}
	// Concurrent requests with one key create one session.
	var wg sync.WaitGroup
	ids := make([]string, 4)
	for i := range ids {
		wg.Go(func() {
			p := sessionParams()
			p.SetIdempotencyKey("purchase-2")
			if s, err := f.sc.V1CheckoutSessions.Create(t.Context(), p); err == nil {
				ids[i] = s.ID
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("concurrent creations with one key: %v", ids)
		}
	}
	if n := len(f.sd.Sessions()); n != 2 {
		t.Errorf("%d sessions, want 2", n)
	}
}

func TestPayDeliversTheSignedEventThenReturnsToTheShop(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	sess, err := f.sc.V1CheckoutSessions.Create(t.Context(), sessionParams())
	if err != nil {
		t.Fatal(err)
	}
	res, err := testClient.Get(sess.URL)
	if err != nil {
		t.Fatal(err)
	}
	html, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	for _, want := range []string{
		`<html lang="en">`, "Stripe test stand-in — no real payment", "USD 10.00", "Starter",
		`<form method="post" action="/pay/` + sess.ID + `"`, `<button type="submit" name="action" value="pay"`, `value="cancel"`,
	} {
		if !strings.Contains(string(html), want) {
			t.Errorf("the payment page lacks %q", want)
		}
	}
	if strings.Contains(string(html), "<script") {
		t.Error("the payment page needs JavaScript")
	}

	status, loc, _ := submit(t, sess.URL, "pay")
	if status != http.StatusSeeOther || loc != "https://shop.example/done?s="+sess.ID {
		t.Errorf("Pay: HTTP %d to %q", status, loc)
	}
	events, bad := f.rcv.got()
	if len(events) != 1 || bad != 0 {
		t.Fatalf("receiver got %d events, %d badly signed", len(events), bad)
	}
	ev := events[0]
	var cs stripe.CheckoutSession
	if err := json.Unmarshal(ev.Data.Raw, &cs); err != nil {
		t.Fatal(err)
	}
	if ev.Type != stripe.EventTypeCheckoutSessionCompleted || cs.ID != sess.ID || cs.Status != stripe.CheckoutSessionStatusComplete ||
		cs.PaymentStatus != stripe.CheckoutSessionPaymentStatusPaid || cs.AmountTotal != 1000 || cs.Currency != "usd" ||
		cs.PaymentIntent == nil || !strings.HasPrefix(cs.PaymentIntent.ID, "pi_") || cs.Metadata["workspace"] != "acme" || cs.Metadata["purchase_id"] != "p-1" {
		t.Errorf("event %s %+v", ev.Type, cs)
	}
	got, _ := f.sc.V1CheckoutSessions.Retrieve(t.Context(), sess.ID, nil)
	if got.Status != stripe.CheckoutSessionStatusComplete || got.URL != "" || got.PaymentIntent.ID != cs.PaymentIntent.ID {
		t.Errorf("session after Pay: %+v", got)
	}

	// A second Pay: back to the shop, no second payment.
	if status, loc, _ := submit(t, sess.URL, "pay"); status != http.StatusSeeOther || !strings.HasPrefix(loc, "https://shop.example/done") {
		t.Errorf("Pay again: HTTP %d %q", status, loc)
	}
	if events, _ := f.rcv.got(); len(events) != 1 {
		t.Errorf("%d events after paying twice", len(events))
	}

	// The event, listed and redelivered on request, newly signed.
	list, err := http.NewRequestWithContext(t.Context(), "POST", f.url+"/v1/events/"+ev.ID+"/retry", nil)
	if err != nil {
		t.Fatal(err)
	}
	list.Header.Set("Authorization", "Bearer "+key)
	if res, err := testClient.Do(list); err != nil || res.StatusCode != 200 {
		t.Fatalf("retry: %v %v", res, err)
	} else {
		_ = res.Body.Close()
	}
	if events, bad := f.rcv.got(); len(events) != 2 || bad != 0 || events[1].ID != ev.ID {
		t.Errorf("after retry: %d events, %d bad", len(events), bad)
	}
}

func TestCancelReturnsToTheShopAndChangesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	sess, err := f.sc.V1CheckoutSessions.Create(t.Context(), sessionParams())
	if err != nil {
		t.Fatal(err)
	}
	if status, loc, _ := submit(t, sess.URL, "cancel"); status != http.StatusSeeOther || loc != "https://shop.example/cart" {
		t.Errorf("Cancel: HTTP %d %q", status, loc)
	}
	if events, _ := f.rcv.got(); len(events) != 0 {
		t.Errorf("%d events after Cancel", len(events))
	}
	if got, _ := f.sc.V1CheckoutSessions.Retrieve(t.Context(), sess.ID, nil); got.Status != stripe.CheckoutSessionStatusOpen {
		t.Errorf("session after Cancel: %s", got.Status)
	}
}

func TestAnExpiredSessionCannotBePaid(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	sess, err := f.sc.V1CheckoutSessions.Create(t.Context(), sessionParams())
	if err != nil {
		t.Fatal(err)
	}
	f.advance(24*time.Hour + time.Second)
	if status, _, body := submit(t, sess.URL, "pay"); status != http.StatusConflict || !strings.Contains(body, "expired") {
		t.Errorf("Pay after expiry: HTTP %d", status)
	}
	if events, _ := f.rcv.got(); len(events) != 0 {
		t.Errorf("%d events", len(events))
	}
	if got, _ := f.sc.V1CheckoutSessions.Retrieve(t.Context(), sess.ID, nil); got.Status != stripe.CheckoutSessionStatusExpired {
		t.Errorf("status %s", got.Status)
	}
}

func TestAFailedDeliveryIsKeptForARetry(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	f.rcv.mu.Lock()
	f.rcv.status = http.StatusServiceUnavailable
	f.rcv.mu.Unlock()
	sess, err := f.sc.V1CheckoutSessions.Create(t.Context(), sessionParams())
	if err != nil {
		t.Fatal(err)
	}
	if status, _, _ := submit(t, sess.URL, "pay"); status != http.StatusSeeOther {
		t.Errorf("Pay: HTTP %d (the buyer returns to the shop whatever the webhook answered)", status)
	}
	d := f.sd.Deliveries()
	if len(d) != 1 || d[0].Status != http.StatusServiceUnavailable {
		t.Fatalf("deliveries %+v", d)
	}
}

func TestWebhookEndpointsAreManagedThroughTheAPI(t *testing.T) {
	t.Parallel()
	sd, err := New(Config{WebhookSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sd.Handler())
	t.Cleanup(srv.Close)
	sc := client(srv.URL, key)
	first, second := newReceiver(t), newReceiver(t)
	ep, err := sc.V1WebhookEndpoints.Create(t.Context(), &stripe.WebhookEndpointCreateParams{
		URL: stripe.String(first.srv.URL), EnabledEvents: []*string{stripe.String("checkout.session.completed")},
	})
	if err != nil || ep.Secret != secret || !strings.HasPrefix(ep.ID, "we_") {
		t.Fatalf("create: %+v %v", ep, err)
	}
	if _, err := sc.V1WebhookEndpoints.Update(t.Context(), ep.ID, &stripe.WebhookEndpointUpdateParams{URL: stripe.String(second.srv.URL)}); err != nil {
		t.Fatal(err)
	}
	sess, err := sc.V1CheckoutSessions.Create(t.Context(), sessionParams())
	if err != nil {
		t.Fatal(err)
	}
	submit(t, sess.URL, "pay")
	if a, _ := first.got(); len(a) != 0 {
		t.Errorf("the old URL got %d events", len(a))
	}
	if b, bad := second.got(); len(b) != 1 || bad != 0 {
		t.Errorf("the new URL got %d events (%d bad)", len(b), bad)
	}
}

func TestFormatAmount(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		amount   int64
		currency string
		want     string
	}{
		{1000, "usd", "USD 10.00"},
		{351, "eur", "EUR 3.51"},
		{5, "usd", "USD 0.05"},
		{500, "jpy", "JPY 500"},
		{1500, "kwd", "KWD 1.500"},
	} {
		if got := formatAmount(tt.amount, tt.currency); got != tt.want {
			t.Errorf("formatAmount(%d, %s) = %q, want %q", tt.amount, tt.currency, got, tt.want)
		}
	}
}
