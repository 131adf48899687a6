package checkout

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"
	"google.golang.org/genproto/googleapis/type/money"

	"github.com/creditledger/creditledger/internal/stripedev"
)

// stripeSecret is the Stripe endpoint secret of every test checkout, and
// stripeKey its Stripe secret key.
const (
	stripeSecret = "whsec_test_secret"
	stripeKey    = "sk_test_checkout_tests"
)

// stripeDev is the Stripe stand-in of a test, on a loopback port.
type stripeDev struct {
	*stripedev.Server
	url string
}

func startStripeDev(t testing.TB) *stripeDev {
	t.Helper()
	sd, err := stripedev.New(stripedev.Config{SecretKey: stripeKey, WebhookSecret: stripeSecret})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sd.Handler())
	t.Cleanup(srv.Close)
	return &stripeDev{Server: sd, url: srv.URL}
}

// provider is the Stripe provider that calls the stand-in; mods adjust
// its configuration.
func (s *stripeDev) provider(t testing.TB, mods ...func(*StripeConfig)) PaymentProvider {
	t.Helper()
	return stripeProviderAt(t, s.url, mods...)
}

func stripeProviderAt(t testing.TB, apiURL string, mods ...func(*StripeConfig)) PaymentProvider {
	t.Helper()
	cfg := StripeConfig{SecretKey: stripeKey, APIURL: apiURL, MaxNetworkRetries: -1}
	for _, m := range mods {
		m(&cfg)
	}
	p, err := NewStripe(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// unsignedWebhooks is the development mode that also accepts unsigned
// PaymentConfirmation bodies.
func unsignedWebhooks(c *Config) { c.UnsignedWebhooks = true }

// stripeAnswer is the body of a 200 to Stripe.
type stripeAnswer struct {
	Received bool     `json:"received"`
	Ignored  string   `json:"ignored"`
	Payment  *Payment `json:"payment"`
	Error    *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// stripeEvent is a Stripe event as Stripe sends it.
func stripeEvent(id, typ string, object map[string]any) []byte {
	b, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "type": typ, "api_version": "2024-06-20", "created": time.Now().Unix(),
		"livemode": false, "data": map[string]any{"object": object},
	})
	if err != nil {
		panic(err)
	}
	return b
}

func sessionCompleted(eventID, paymentIntent, workspace, purchase string, amount int64, currency string) []byte {
	return stripeEvent(eventID, "checkout.session.completed", map[string]any{
		"id": "cs_test_" + eventID, "object": "checkout.session", "mode": "payment", "payment_status": "paid",
		"amount_total": amount, "currency": currency, "payment_intent": paymentIntent,
		"metadata": map[string]string{"workspace": workspace, "purchase_id": purchase},
	})
}

// stripe delivers payload signed with secret at ts (unsigned when secret
// is empty) and decodes the answer into out.
func (e *env) stripe(payload []byte, ts time.Time, secret string, out any) int {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), "POST", e.srv.URL+"/webhooks/payments", bytes.NewReader(payload))
	if err != nil {
		e.t.Fatal(err)
	}
	if secret != "" {
		signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: ts})
		req.Header.Set("Stripe-Signature", signed.Header)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := testClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("decode %q: %v", raw, err)
		}
	}
	return res.StatusCode
}

// stripePurchase starts a card purchase as the portal would.
func (e *env) stripePurchase(account, pkg string) Purchase {
	e.t.Helper()
	var p Purchase
	if code := e.do("POST", "/v1/workspaces/"+ws+"/accounts/"+account+"/credit-purchases",
		PurchaseInput{PackageID: pkg, Method: MethodStripe}, &p); code != 201 {
		e.t.Fatalf("start purchase: HTTP %d", code)
	}
	return p
}

func TestStripeWebhookCreditsOnceAndOnlyWhenVerified(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	createPackage(t, e, "starter", 100) // USD 10.00 = 1000 cents
	p := e.stripePurchase("client-1", "starter")
	good := sessionCompleted("evt_1", "pi_1", ws, p.ID, 1000, "usd")

	refused := []struct {
		name    string
		payload []byte
		ts      time.Time
		secret  string
	}{
		{"unsigned", good, time.Now(), ""},
		{"signed with another secret", good, time.Now(), "whsec_other"},
		{"stale timestamp", good, time.Now().Add(-10 * time.Minute), stripeSecret},
	}
	for _, tt := range refused {
		var body apiError
		if code := e.stripe(tt.payload, tt.ts, tt.secret, &body); code != 400 || body.Error.Code != CodeBadSignature {
			t.Errorf("%s: HTTP %d %+v, want 400 BAD_SIGNATURE", tt.name, code, body.Error)
		}
	}
	// A signature over another body does not carry over.
	req, _ := http.NewRequestWithContext(t.Context(), "POST", e.srv.URL+"/webhooks/payments",
		bytes.NewReader(sessionCompleted("evt_1", "pi_1", ws, p.ID, 1000, "usd")))
	req.Header.Set("Stripe-Signature", webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{
		Payload: sessionCompleted("evt_0", "pi_0", ws, p.ID, 10, "usd"), Secret: stripeSecret,
	}).Header)
	res, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != 400 {
		t.Errorf("signature of another body: HTTP %d", res.StatusCode)
	}
	if n := len(e.ledger.Calls("Credit")); n != 0 {
		t.Fatalf("%d credits before a valid signature", n)
	}

	var first stripeAnswer
	if code := e.stripe(good, time.Now(), stripeSecret, &first); code != 200 || first.Payment == nil || first.Payment.Status != PaymentCredited {
		t.Fatalf("signed: HTTP %d %+v", code, first)
	}
	// The same event again, and the payment intent's own event: nothing more.
	pi := stripeEvent("evt_2", "payment_intent.succeeded", map[string]any{
		"id": "pi_1", "object": "payment_intent", "amount": 1000, "amount_received": 1000, "currency": "usd", "status": "succeeded",
		"metadata": map[string]string{"workspace": ws, "purchase_id": p.ID},
	})
	for _, again := range [][]byte{good, pi} {
		var res stripeAnswer
		if code := e.stripe(again, time.Now(), stripeSecret, &res); code != 200 || res.Payment == nil || res.Payment.TransactionID != first.Payment.TransactionID {
			t.Errorf("replay: HTTP %d %+v", code, res)
		}
	}
	if bal, ver := e.ledger.Balance(e.t, ws, "client-1"); bal != 100 || ver != 1 {
		t.Errorf("balance %d v%d, want 100 v1", bal, ver)
	}
	for _, c := range e.ledger.Calls("Credit") {
		if c.IdempotencyKey != "stripe:pi_1" {
			t.Errorf("Credit with key %q", c.IdempotencyKey)
		}
	}
	got, err := e.app.GetPurchase(t.Context(), ws, p.ID)
	if err != nil || got.Status != PurchaseCredited || got.ProviderPaymentID != "pi_1" {
		t.Errorf("purchase %+v, %v", got, err)
	}
}

func TestStripePaymentsThatDoNotMatchAreRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	createPackage(t, e, "starter", 100) // USD 10.00
	p := e.stripePurchase("client-1", "starter")
	bank := func() Purchase {
		e.agency()
		var b Purchase
		if code := e.do("POST", "/v1/workspaces/"+ws+"/accounts/client-1/credit-purchases",
			PurchaseInput{PackageID: "starter", Method: MethodBankTransfer}, &b); code != 201 {
			t.Fatalf("bank purchase: HTTP %d", code)
		}
		return b
	}()
	tests := []struct {
		name    string
		payload []byte
		code    string
	}{
		{"amount too low", sessionCompleted("evt_a", "pi_a", ws, p.ID, 999, "usd"), CodePaymentMismatch},
		{"amount too high", sessionCompleted("evt_b", "pi_b", ws, p.ID, 1001, "usd"), CodePaymentMismatch},
		{"amount in units instead of cents", sessionCompleted("evt_c", "pi_c", ws, p.ID, 10, "usd"), CodePaymentMismatch},
		{"other currency", sessionCompleted("evt_d", "pi_d", ws, p.ID, 1000, "eur"), CodePaymentMismatch},
		{"unknown purchase", sessionCompleted("evt_e", "pi_e", ws, "0190aaaa-0000-7000-8000-000000000000", 1000, "usd"), CodeUnknownPurchase},
		{"purchase of another workspace", sessionCompleted("evt_f", "pi_f", "agency-2", p.ID, 1000, "usd"), CodeUnknownPurchase},
		{"not a card purchase", sessionCompleted("evt_g", "pi_g", ws, bank.ID, 1000, "usd"), CodePaymentMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var res stripeAnswer
			// 200: Stripe would otherwise redeliver for days, to be refused again.
			if code := e.stripe(tt.payload, time.Now(), stripeSecret, &res); code != 200 || !res.Received || res.Error == nil || res.Error.Code != tt.code || res.Payment != nil {
				t.Errorf("HTTP %d %+v, want 200 refused with %s", code, res, tt.code)
			}
		})
	}
	if n := len(e.ledger.Calls("Credit")); n != 0 {
		t.Errorf("%d Credit calls for refused payments", n)
	}
	if bal, _ := e.ledger.Balance(e.t, ws, "client-1"); bal != 0 {
		t.Errorf("balance %d, want 0", bal)
	}
	if rep, err := e.app.Reconcile(t.Context()); err != nil || rep.Payments != 0 {
		t.Errorf("refused payments left for reconciliation: %+v %v", rep, err)
	}
}

func TestStripeEventsThatCreditNothingByDesign(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	createPackage(t, e, "starter", 100)
	p := e.stripePurchase("client-1", "starter")
	tests := map[string][]byte{
		"another event type": stripeEvent("evt_1", "customer.created", map[string]any{"id": "cus_1", "object": "customer"}),
		"session not paid yet": stripeEvent("evt_2", "checkout.session.completed", map[string]any{
			"id": "cs_2", "object": "checkout.session", "payment_status": "unpaid", "amount_total": 1000, "currency": "usd",
			"metadata": map[string]string{"workspace": ws, "purchase_id": p.ID},
		}),
		"not a CreditLedger payment": stripeEvent("evt_3", "payment_intent.succeeded", map[string]any{
			"id": "pi_3", "object": "payment_intent", "amount_received": 1000, "currency": "usd",
		}),
	}
	for name, payload := range tests {
		t.Run(name, func(t *testing.T) {
			var res stripeAnswer
			if code := e.stripe(payload, time.Now(), stripeSecret, &res); code != 200 || res.Ignored == "" || res.Payment != nil {
				t.Errorf("HTTP %d %+v, want 200 ignored", code, res)
			}
		})
	}
	if n := len(e.ledger.Calls("Credit")); n != 0 {
		t.Errorf("%d Credit calls", n)
	}
}

func TestWebhooksWithoutASecretAreRefusedUnlessUnsignedIsChosen(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.StripeWebhookSecret = "" })
	createPackage(t, e, "starter", 100)
	hook := PaymentConfirmation{Provider: "stripe", PaymentID: "pi_u", Workspace: ws, Account: "client-1", PackageID: "starter"}
	var body apiError
	if code := e.do("POST", "/webhooks/payments", hook, &body); code != 400 || body.Error.Code != CodeBadSignature {
		t.Errorf("unsigned, no secret: HTTP %d %+v", code, body.Error)
	}
	if code := e.stripe(sessionCompleted("evt_1", "pi_1", ws, "x", 1000, "usd"), time.Now(), "whsec_any", &body); code != 400 {
		t.Errorf("signed, no secret: HTTP %d", code)
	}
	if n := len(e.ledger.Calls("Credit")); n != 0 {
		t.Fatalf("%d credits", n)
	}

	// Development: unsigned bodies are taken; a Stripe-signed one is still verified.
	e.restart(unsignedWebhooks)
	var pay Payment
	if code := e.do("POST", "/webhooks/payments", hook, &pay); code != 200 || pay.Status != PaymentCredited {
		t.Errorf("unsigned in development: HTTP %d %+v", code, pay)
	}
	if code := e.stripe(sessionCompleted("evt_2", "pi_2", ws, "x", 1000, "usd"), time.Now(), "whsec_wrong", &body); code != 400 {
		t.Errorf("badly signed in development: HTTP %d", code)
	}
}

func TestStripeAmount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		price *money.Money
		want  int64
		ok    bool
	}{
		{&money.Money{CurrencyCode: "USD", Units: 10}, 1000, true},
		{&money.Money{CurrencyCode: "USD", Units: 3, Nanos: 510_000_000}, 351, true},
		{&money.Money{CurrencyCode: "JPY", Units: 500}, 500, true},
		{&money.Money{CurrencyCode: "KWD", Units: 1, Nanos: 500_000_000}, 1500, true},
		{&money.Money{CurrencyCode: "USD", Nanos: 5_000_000}, 0, false}, // half a cent
		{&money.Money{CurrencyCode: "JPY", Units: 1, Nanos: 500_000_000}, 0, false},
		{&money.Money{CurrencyCode: "USD", Units: 1 << 62}, 0, false},
		{nil, 0, false},
	}
	for _, tt := range tests {
		got, err := stripeAmount(tt.price)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("stripeAmount(%v) = %d, %v; want %d (ok %v)", tt.price, got, err, tt.want, tt.ok)
		}
	}
}

// Fuzz the event reader: whatever a signed body holds, it neither panics
// nor yields a payment without the metadata that names the purchase.
func FuzzStripePaymentOf(f *testing.F) {
	f.Add(sessionCompleted("evt_1", "pi_1", ws, "p", 1000, "usd"))
	f.Add([]byte(`{"type":"payment_intent.succeeded","data":{"object":{"metadata":{"purchase_id":1}}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: stripeSecret})
		e, err := webhook.ConstructEventWithOptions(body, sig.Header, stripeSecret, webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
		if err != nil {
			return
		}
		sp, ignore, err := stripePaymentOf(e)
		if err == nil && ignore == "" && sp.Workspace == "" && sp.PurchaseID == "" {
			t.Fatalf("a payment without metadata: %+v", sp)
		}
	})
}
