package checkout

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v82/webhook"
	"google.golang.org/genproto/googleapis/type/money"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
)

const (
	successURL = "https://portal.example/credits/done?session={CHECKOUT_SESSION_ID}"
	cancelURL  = "https://portal.example/credits"
)

// startCard starts a card purchase; the answer is decoded as a purchase
// (on success) and as an error body (otherwise).
func (e *env) startCard(account, pkg string, in PurchaseInput, headers ...string) (int, Purchase, apiError) {
	e.t.Helper()
	in.PackageID, in.Method = pkg, MethodStripe
	var raw json.RawMessage
	code := e.do("POST", "/v1/workspaces/"+ws+"/accounts/"+account+"/credit-purchases", in, &raw, headers...)
	var p Purchase
	var body apiError
	_ = json.Unmarshal(raw, &p)
	_ = json.Unmarshal(raw, &body)
	return code, p, body
}

// browser is an HTTP client that does not follow redirects: the test
// looks at where the payment page sends the buyer.
var browser = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// page GETs a payment page and returns its status and HTML.
func page(t testing.TB, pageURL string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", pageURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// press submits the payment page's form with the button action ("pay" or
// "cancel") and returns the status and the redirect's Location.
func press(t testing.TB, pageURL, action string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", pageURL, strings.NewReader(url.Values{"action": {action}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode, res.Header.Get("Location")
}

func createPriced(t testing.TB, e *env, id, name string, credits int64, price *money.Money) {
	t.Helper()
	if _, err := e.client.CreatePackage(t.Context(), &pb.CreatePackageRequest{
		Workspace: ws, PackageId: id, CreditPackage: &pb.CreditPackage{DisplayName: name, Credits: credits, Price: price},
	}); err != nil {
		t.Fatal(err)
	}
}

// TestCardPurchaseCreatesACheckoutSession: the session asked of Stripe is
// the package's price in the currency's smallest unit, with the metadata
// the webhook needs on the session and on its payment, under an
// idempotency key of the purchase, with the API key; the purchase answers
// the session's url.
func TestCardPurchaseCreatesACheckoutSession(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		price    *money.Money
		currency string
		amount   string
	}{
		{"dollars in cents", &money.Money{CurrencyCode: "USD", Units: 10}, "usd", "1000"},
		{"cents kept", &money.Money{CurrencyCode: "EUR", Units: 3, Nanos: 510_000_000}, "eur", "351"},
		{"yen in yen", &money.Money{CurrencyCode: "JPY", Units: 500}, "jpy", "500"},
		{"dinars in fils", &money.Money{CurrencyCode: "KWD", Units: 1, Nanos: 500_000_000}, "kwd", "1500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			createPriced(t, e, "pack", "Starter pack", 100, tt.price)
			code, p, body := e.startCard("client-1", "pack", PurchaseInput{SuccessURL: successURL, CancelURL: cancelURL})
			if code != 201 {
				t.Fatalf("HTTP %d %+v", code, body.Error)
			}
			sessions := e.sd.Sessions()
			if len(sessions) != 1 {
				t.Fatalf("%d sessions, want 1", len(sessions))
			}
			sess := sessions[0]
			if p.Status != PurchaseAwaitingPayment || p.StripeSessionID != sess.ID || p.CheckoutURL != e.sd.url+"/pay/"+sess.ID ||
				p.SuccessURL != successURL || p.CancelURL != cancelURL {
				t.Errorf("purchase %+v, session %s", p, sess.ID)
			}
			reqs := e.sd.Requests()
			if len(reqs) != 1 || reqs[0].Method != "POST" || reqs[0].Path != "/v1/checkout/sessions" {
				t.Fatalf("requests to Stripe: %+v", reqs)
			}
			r := reqs[0]
			if got := r.Header.Get("Authorization"); got != "Bearer "+stripeKey {
				t.Errorf("Authorization %q", got)
			}
			if got := r.Header.Get("Idempotency-Key"); got != PaymentStartKey(p.ID, 1) || !strings.Contains(got, p.ID) {
				t.Errorf("Idempotency-Key %q, want %q", got, PaymentStartKey(p.ID, 1))
			}
			want := url.Values{
				"mode":                                                 {"payment"},
				"client_reference_id":                                  {p.ID},
				"line_items[0][quantity]":                              {"1"},
				"line_items[0][price_data][currency]":                  {tt.currency},
				"line_items[0][price_data][unit_amount]":               {tt.amount},
				"line_items[0][price_data][product_data][name]":        {"Starter pack"},
				"line_items[0][price_data][product_data][description]": {"100 credits"},
				"metadata[workspace]":                                  {ws},
				"metadata[purchase_id]":                                {p.ID},
				"payment_intent_data[metadata][workspace]":             {ws},
				"payment_intent_data[metadata][purchase_id]":           {p.ID},
				"success_url":                                          {successURL},
				"cancel_url":                                           {cancelURL},
			}
			if diff := cmp.Diff(want, r.Form); diff != "" {
				t.Errorf("session parameters (-want +got):\n%s", diff)
			}

			// The same call again (the portal retrying): the same purchase and
			// page, nothing more asked of Stripe.
			key := "portal-retry-" + tt.currency
			code, p1, _ := e.startCard("client-1", "pack", PurchaseInput{SuccessURL: successURL, CancelURL: cancelURL}, "Idempotency-Key", key)
			code2, p2, _ := e.startCard("client-1", "pack", PurchaseInput{SuccessURL: successURL, CancelURL: cancelURL}, "Idempotency-Key", key)
			if code != 201 || code2 != 200 || p2.ID != p1.ID || p2.CheckoutURL != p1.CheckoutURL || p1.CheckoutURL == p.CheckoutURL {
				t.Errorf("retry: HTTP %d/%d %+v / %+v", code, code2, p1, p2)
			}
			if n := len(e.sd.Requests()); n != 2 {
				t.Errorf("%d requests to Stripe after a retried purchase, want 2", n)
			}
			var got Purchase
			if e.do("GET", "/v1/workspaces/"+ws+"/credit-purchases/"+p.ID, nil, &got); got.CheckoutURL != p.CheckoutURL {
				t.Errorf("read back: %+v", got)
			}
		})
	}
}

// TestCardPurchasePaidOnTheStandInIsCreditedOnce walks the buyer's path:
// the purchase's checkout_url, Pay, the signed event to the webhook, the
// return to success_url; then Stripe's redeliveries and forgeries.
func TestCardPurchasePaidOnTheStandInIsCreditedOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	createPackage(t, e, "starter", 100) // USD 10.00
	code, p, body := e.startCard("client-1", "starter", PurchaseInput{SuccessURL: successURL, CancelURL: cancelURL})
	if code != 201 {
		t.Fatalf("start: HTTP %d %+v", code, body.Error)
	}
	status, html := page(t, p.CheckoutURL)
	for _, want := range []string{"Stripe test stand-in — no real payment", "USD 10.00", `value="pay"`, `value="cancel"`, `lang="en"`} {
		if status != 200 || !strings.Contains(html, want) {
			t.Errorf("payment page (HTTP %d) lacks %q", status, want)
		}
	}
	if bal, _ := e.ledger.Balance(t, ws, "client-1"); bal != 0 {
		t.Fatalf("credited %d before paying", bal)
	}

	status, loc := press(t, p.CheckoutURL, "pay")
	if want := strings.ReplaceAll(successURL, "{CHECKOUT_SESSION_ID}", p.StripeSessionID); status != http.StatusSeeOther || loc != want {
		t.Errorf("after Pay: HTTP %d to %q, want 303 to %q", status, loc, want)
	}
	if bal, ver := e.ledger.Balance(t, ws, "client-1"); bal != 100 || ver != 1 {
		t.Fatalf("balance %d v%d after paying, want 100 v1", bal, ver)
	}
	sess := e.sd.Sessions()[0]
	if sess.Status != "complete" || sess.PaymentStatus != "paid" || sess.PaymentIntent == nil {
		t.Fatalf("session after Pay: %+v", sess)
	}
	pi := *sess.PaymentIntent
	var got Purchase
	e.do("GET", "/v1/workspaces/"+ws+"/credit-purchases/"+p.ID, nil, &got)
	if got.Status != PurchaseCredited || got.ProviderPaymentID != pi || got.Credits != 100 || got.TransactionID == "" {
		t.Errorf("purchase after Pay: %+v", got)
	}

	// Stripe redelivers (twice), and the buyer presses Pay again: one credit.
	events := e.sd.Events()
	if len(events) != 1 {
		t.Fatalf("%d events", len(events))
	}
	for range 2 {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", e.sd.url+"/v1/events/"+events[0].ID+"/retry", nil)
		req.Header.Set("Authorization", "Bearer "+stripeKey)
		res, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("retry: HTTP %d", res.StatusCode)
		}
	}
	if status, loc := press(t, p.CheckoutURL, "pay"); status != http.StatusSeeOther || !strings.HasPrefix(loc, "https://portal.example/") {
		t.Errorf("Pay again: HTTP %d %q", status, loc)
	}
	deliveries := e.sd.Deliveries()
	if len(deliveries) != 3 || len(e.sd.Events()) != 1 {
		t.Fatalf("%d deliveries of %d events, want 3 of 1", len(deliveries), len(e.sd.Events()))
	}
	for _, d := range deliveries {
		var res stripeAnswer
		if err := json.Unmarshal([]byte(d.Body), &res); err != nil || d.Status != 200 || res.Payment == nil ||
			res.Payment.TransactionID != got.TransactionID {
			t.Errorf("delivery: HTTP %d %s", d.Status, d.Body)
		}
	}
	if bal, ver := e.ledger.Balance(t, ws, "client-1"); bal != 100 || ver != 1 {
		t.Errorf("balance %d v%d after redeliveries, want 100 v1", bal, ver)
	}
	for _, c := range e.ledger.Calls("Credit") {
		if c.IdempotencyKey != "stripe:"+pi {
			t.Errorf("Credit with key %q, want stripe:%s", c.IdempotencyKey, pi)
		}
	}

	// A forged or altered event is refused and credits nothing.
	raw, err := json.Marshal(events[0])
	if err != nil {
		t.Fatal(err)
	}
	forged := bytes.Replace(raw, []byte(`"amount_total":1000`), []byte(`"amount_total":1`), 1)
	signedRaw := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: raw, Secret: stripeSecret}).Header
	for name, try := range map[string]func() int{
		"body altered after signing": func() int { return e.post(forged, signedRaw) },
		"signed with another secret": func() int {
			return e.post(raw, webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: raw, Secret: "whsec_attacker"}).Header)
		},
		"signature tampered": func() int { return e.post(raw, strings.Replace(signedRaw, "v1=", "v1=00", 1)) },
	} {
		if code := try(); code != 400 {
			t.Errorf("%s: HTTP %d, want 400", name, code)
		}
	}
	if bal, ver := e.ledger.Balance(t, ws, "client-1"); bal != 100 || ver != 1 {
		t.Errorf("balance %d v%d after forgeries, want 100 v1", bal, ver)
	}
}

// post delivers a payload with a Stripe-Signature header as given.
func (e *env) post(payload []byte, sig string) int {
	e.t.Helper()
	req, _ := http.NewRequestWithContext(e.t.Context(), "POST", e.srv.URL+"/webhooks/payments", bytes.NewReader(payload))
	req.Header.Set("Stripe-Signature", sig)
	res, err := testClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	_ = res.Body.Close()
	return res.StatusCode
}

// TestCardPurchaseCancelledCreditsNothing: Cancel on the payment page
// sends the buyer to cancel_url; no event, no credit, the purchase still
// waits (its page may still be paid until it expires).
func TestCardPurchaseCancelledCreditsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	createPackage(t, e, "starter", 100)
	_, p, _ := e.startCard("client-1", "starter", PurchaseInput{SuccessURL: successURL, CancelURL: cancelURL})
	if status, loc := press(t, p.CheckoutURL, "cancel"); status != http.StatusSeeOther || loc != cancelURL {
		t.Errorf("Cancel: HTTP %d to %q, want 303 to %q", status, loc, cancelURL)
	}
	if n := len(e.sd.Events()); n != 0 {
		t.Errorf("%d events after Cancel", n)
	}
	if n := len(e.ledger.Calls("Credit")); n != 0 {
		t.Errorf("%d credits after Cancel", n)
	}
	var got Purchase
	if e.do("GET", "/v1/workspaces/"+ws+"/credit-purchases/"+p.ID, nil, &got); got.Status != PurchaseAwaitingPayment || got.CheckoutURL != p.CheckoutURL {
		t.Errorf("purchase after Cancel: %+v", got)
	}
	if bal, _ := e.ledger.Balance(t, ws, "client-1"); bal != 0 {
		t.Errorf("balance %d after Cancel", bal)
	}
}

// flakyStripe answers the first n session requests with fail, then lets
// the stand-in answer; it counts the requests and keeps their keys.
type flakyStripe struct {
	n    atomic.Int32
	fail http.HandlerFunc
	keys chan string
}

func (f *flakyStripe) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.keys <- r.Header.Get("Idempotency-Key")
		if f.n.Add(-1) >= 0 {
			f.fail(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func stripeFails(status int, typ, code string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", "req_test_1")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"error":{"type":"`+typ+`","code":"`+code+`","message":"Invalid API Key provided: sk_test_****ests"}}`)
	}
}

// stall reads the request and answers nothing until the client gives up
// (the server notices the closed connection once the body is read).
func stall(_ http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
}

// TestStripeFailureLeavesThePurchaseRetryable: whatever Stripe does
// (refuses, fails, does not answer), the purchase is kept without a page,
// the answer says what happened, and the same call with the same
// Idempotency-Key gets the page: with a new idempotency key at Stripe
// after Stripe answered (it would replay its answer), with the same one
// after no answer came (the lost request may have created the session).
func TestStripeFailureLeavesThePurchaseRetryable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		fail     http.HandlerFunc
		status   int
		code     string
		sameKey  bool
		metadata map[string]string
	}{
		{
			"invalid request", stripeFails(400, "invalid_request_error", "parameter_invalid"), 502, CodeProviderRefused, false,
			map[string]string{"provider_status": "400", "provider_code": "parameter_invalid", "provider_request_id": "req_test_1"},
		},
		{"bad API key", stripeFails(401, "invalid_request_error", ""), 502, CodeProviderRefused, false, map[string]string{"provider_status": "401"}},
		{"rate limited", stripeFails(429, "invalid_request_error", "rate_limit"), 503, CodeProviderUnavailable, false, map[string]string{"provider_status": "429"}},
		{"server error", stripeFails(500, "api_error", ""), 503, CodeProviderUnavailable, false, map[string]string{"provider_status": "500"}},
		{"concurrent request with the key", stripeFails(409, "idempotency_error", "idempotency_key_in_use"), 503, CodeProviderUnavailable, true, nil},
		{"no answer in time", stall, 503, CodeProviderUnavailable, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sd := startStripeDev(t)
			f := &flakyStripe{fail: tt.fail, keys: make(chan string, 10)}
			f.n.Store(1)
			front := httptest.NewServer(f.handler(sd.Handler()))
			t.Cleanup(front.Close)
			e := newEnv(t, func(c *Config) {
				c.Providers = map[PaymentMethod]PaymentProvider{MethodStripe: stripeProviderAt(t, front.URL, func(c *StripeConfig) {
					c.RequestTimeout = 300 * time.Millisecond
				})}
			})
			if err := sd.SetWebhookURL(e.srv.URL + "/webhooks/payments"); err != nil {
				t.Fatal(err)
			}
			createPackage(t, e, "starter", 100)

			code, _, body := e.startCard("client-1", "starter", PurchaseInput{}, "Idempotency-Key", "buy-1")
			if code != tt.status || body.Error.Code != tt.code || body.Error.Message == "" {
				t.Fatalf("HTTP %d %+v, want %d %s", code, body.Error, tt.status, tt.code)
			}
			if strings.Contains(body.Error.Message, "sk_test") {
				t.Errorf("the answer quotes the key: %q", body.Error.Message)
			}
			for k, v := range tt.metadata {
				if body.Error.Metadata[k] != v {
					t.Errorf("metadata %s = %q, want %q (%v)", k, body.Error.Metadata[k], v, body.Error.Metadata)
				}
			}
			p := body.Purchase
			if p == nil || p.Status != PurchaseAwaitingPayment || p.CheckoutURL != "" || body.Error.Metadata["purchase_id"] != p.ID {
				t.Fatalf("purchase with the error: %+v %v", p, body.Error.Metadata)
			}

			code, again, _ := e.startCard("client-1", "starter", PurchaseInput{}, "Idempotency-Key", "buy-1")
			if code != 200 || again.ID != p.ID || again.CheckoutURL == "" {
				t.Fatalf("retry: HTTP %d %+v", code, again)
			}
			first, second := <-f.keys, <-f.keys
			wantSecond := PaymentStartKey(p.ID, 2)
			if tt.sameKey {
				wantSecond = first
			}
			if first != PaymentStartKey(p.ID, 1) || second != wantSecond {
				t.Errorf("idempotency keys %q then %q, want %q then %q", first, second, PaymentStartKey(p.ID, 1), wantSecond)
			}
			if n := len(e.ledger.Calls("Credit")); n != 0 {
				t.Errorf("%d credits", n)
			}
			// Paying the page the retry got credits it.
			if status, _ := press(t, again.CheckoutURL, "pay"); status != http.StatusOK {
				t.Errorf("Pay without a success_url: HTTP %d, want 200 (the stand-in's own page)", status)
			}
			if bal, _ := e.ledger.Balance(t, ws, "client-1"); bal != 100 {
				t.Errorf("balance %d after paying the retried page", bal)
			}
		})
	}
}

// TestStripeRetriesALostRequestWithTheSameKey: with stripe-go's own
// retries on, a request that got no answer is sent again at once with the
// same idempotency key, and the purchase gets its page in one call.
func TestStripeRetriesALostRequestWithTheSameKey(t *testing.T) {
	t.Parallel()
	sd := startStripeDev(t)
	f := &flakyStripe{fail: stall, keys: make(chan string, 10)}
	f.n.Store(1)
	front := httptest.NewServer(f.handler(sd.Handler()))
	t.Cleanup(front.Close)
	e := newEnv(t, func(c *Config) {
		c.Providers = map[PaymentMethod]PaymentProvider{MethodStripe: stripeProviderAt(t, front.URL, func(c *StripeConfig) {
			c.MaxNetworkRetries, c.RequestTimeout = 1, 200*time.Millisecond
		})}
	})
	createPackage(t, e, "starter", 100)
	code, p, body := e.startCard("client-1", "starter", PurchaseInput{})
	if code != 201 || p.CheckoutURL == "" {
		t.Fatalf("HTTP %d %+v", code, body.Error)
	}
	if first, second := <-f.keys, <-f.keys; first != second || first != PaymentStartKey(p.ID, 1) {
		t.Errorf("keys %q, %q", first, second)
	}
}

// TestCardPurchaseRefusedWithoutAProvider: a checkout without a Stripe
// key (or any PayPal adapter) refuses instant purchases with a reason
// that names what is missing, and records nothing.
func TestCardPurchaseRefusedWithoutAProvider(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.Providers = nil })
	createPackage(t, e, "starter", 100)
	for _, tt := range []struct {
		method  PaymentMethod
		missing string
	}{
		{MethodStripe, "CHECKOUT_STRIPE_SECRET_KEY"},
		{MethodPayPal, "PayPal adapter"},
	} {
		var body apiError
		code := e.do("POST", "/v1/workspaces/"+ws+"/accounts/client-1/credit-purchases",
			PurchaseInput{PackageID: "starter", Method: tt.method}, &body)
		if code != 422 || body.Error.Code != CodeProviderNotConfigured || !strings.Contains(body.Error.Message, tt.missing) ||
			body.Error.Metadata["payment_method"] != string(tt.method) || body.Purchase != nil {
			t.Errorf("%s: HTTP %d %+v purchase %+v", tt.method, code, body.Error, body.Purchase)
		}
	}
	if open, err := e.store.queryPurchaseCount(t); err != nil || open != 0 {
		t.Errorf("%d purchases recorded (%v)", open, err)
	}
	// Bank transfers do not need a provider.
	e.agency()
	var p Purchase
	if code := e.do("POST", "/v1/workspaces/"+ws+"/accounts/client-1/credit-purchases",
		PurchaseInput{PackageID: "starter", Method: MethodBankTransfer}, &p); code != 201 {
		t.Errorf("bank transfer: HTTP %d", code)
	}
}

func (s *Store) queryPurchaseCount(t testing.TB) (int, error) {
	var n int
	err := s.db.QueryRowContext(t.Context(), `SELECT count(*) FROM purchases`).Scan(&n)
	return n, err
}

// TestCardPurchaseRefusals: what Stripe cannot take is refused with the
// reason and no page; bad return URLs are refused before anything.
func TestCardPurchaseRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	createPriced(t, e, "tiny", "Tiny", 3, &money.Money{CurrencyCode: "USD", Nanos: 300_000_000})        // below Stripe's USD 0.50
	createPriced(t, e, "odd", "Odd", 10, &money.Money{CurrencyCode: "USD", Units: 1, Nanos: 5_000_000}) // half a cent
	createPackage(t, e, "starter", 100)

	code, _, body := e.startCard("client-1", "tiny", PurchaseInput{})
	if code != 502 || body.Error.Code != CodeProviderRefused || body.Error.Metadata["provider_code"] != "amount_too_small" ||
		body.Purchase == nil || body.Purchase.CheckoutURL != "" {
		t.Errorf("below Stripe's minimum: HTTP %d %+v %+v", code, body.Error, body.Purchase)
	}
	before := len(e.sd.Requests())
	code, _, body = e.startCard("client-1", "odd", PurchaseInput{})
	if code != 422 || body.Error.Code != CodeProviderRefused || !strings.Contains(body.Error.Message, "smallest unit") {
		t.Errorf("price finer than a cent: HTTP %d %+v", code, body.Error)
	}
	if n := len(e.sd.Requests()); n != before {
		t.Errorf("a price Stripe cannot take was sent to it")
	}

	for name, in := range map[string]PurchaseInput{
		"relative success_url":   {SuccessURL: "/credits/done"},
		"javascript cancel_url":  {CancelURL: "javascript:alert(1)"},
		"ftp success_url":        {SuccessURL: "ftp://portal.example/"},
		"credentials in the URL": {SuccessURL: "https://user:pw@portal.example/"},
		"space in the URL":       {CancelURL: "https://portal.example/a b"},
		"no host":                {SuccessURL: "https:///path"},
		"longer than 2048":       {SuccessURL: "https://portal.example/" + strings.Repeat("a", 2048)},
		"non-ASCII":              {SuccessURL: "https://portal.example/crédits"},
	} {
		code, _, body := e.startCard("client-1", "starter", in)
		if code != 400 || body.Error.Code != CodeInvalidArgument {
			t.Errorf("%s: HTTP %d %+v", name, code, body.Error)
		}
	}
	var body2 apiError
	if code := e.do("POST", "/v1/workspaces/"+ws+"/accounts/client-1/credit-purchases",
		PurchaseInput{PackageID: "starter", Method: MethodBankTransfer, SuccessURL: successURL}, &body2); code != 400 {
		t.Errorf("return URL on a bank transfer: HTTP %d %+v", code, body2.Error)
	}
	// The same client key with other return URLs is another purchase.
	if code, _, _ := e.startCard("client-1", "starter", PurchaseInput{SuccessURL: successURL}, "Idempotency-Key", "k-1"); code != 201 {
		t.Fatalf("HTTP %d", code)
	}
	if code, _, body := e.startCard("client-1", "starter", PurchaseInput{SuccessURL: cancelURL}, "Idempotency-Key", "k-1"); code != 409 || body.Error.Code != CodeKeyReused {
		t.Errorf("same key, other success_url: HTTP %d %+v", code, body.Error)
	}
}

func TestNewStripeRefusesUnsafeConfigurations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  StripeConfig
		ok   bool
	}{
		{"test key, Stripe's API", StripeConfig{SecretKey: "sk_test_abc"}, true},
		{"test key, a stand-in", StripeConfig{SecretKey: "sk_test_abc", APIURL: "http://127.0.0.1:12111"}, true},
		{"restricted live key, Stripe's API", StripeConfig{SecretKey: "rk_live_abc", APIURL: "https://api.stripe.com"}, true},
		{"live key, a stand-in", StripeConfig{SecretKey: "sk_live_abc", APIURL: "http://127.0.0.1:12111"}, false},
		{"publishable key", StripeConfig{SecretKey: "pk_test_abc"}, false},
		{"webhook secret instead of a key", StripeConfig{SecretKey: "whsec_abc"}, false},
		{"empty key", StripeConfig{}, false},
		{"prefix only", StripeConfig{SecretKey: "sk_test_"}, false},
		{"API URL with a path", StripeConfig{SecretKey: "sk_test_abc", APIURL: "http://127.0.0.1:12111/v1"}, false},
		{"API URL not http", StripeConfig{SecretKey: "sk_test_abc", APIURL: "ftp://127.0.0.1"}, false},
	}
	for _, tt := range tests {
		if _, err := NewStripe(tt.cfg); (err == nil) != tt.ok {
			t.Errorf("%s: err %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

// FuzzCheckReturnURL: a return URL the checkout accepts is an absolute
// http(s) URL of printable ASCII with a host and no credentials, whatever
// the buyer's portal was made to send.
func FuzzCheckReturnURL(f *testing.F) {
	for _, s := range []string{successURL, cancelURL, "", "javascript:alert(1)", "//evil.example/", "https://a@b/", "http://[::1]:8080/x", "https://x/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkReturnURL("success_url", s) != nil || s == "" {
			return
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || len(s) > maxReturnURL ||
			strings.ContainsFunc(s, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
			t.Fatalf("accepted %q", s)
		}
	})
}
