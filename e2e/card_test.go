package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/checkout"
)

// The Stripe stand-in's test key and webhook secret, shared with checkout
// as an operator would set them.
const (
	stripeKey           = "sk_test_e2e"
	stripeWebhookSecret = "whsec_e2e"
)

// stripeDev is the running cmd/stripe-dev, and stripe-go pointed at it.
type stripeDev struct {
	proc     *proc
	base     string
	client   *stripe.Client
	endpoint string // the webhook endpoint that forwards to checkout
}

// startStripeDev starts the stand-in and returns it with the environment
// checkout needs to take card payments through it.
func (s *system) startStripeDev() []string {
	p := startProc(s.t, filepath.Join(s.bin, exe("stripe-dev")), []string{"--addr", "127.0.0.1:0"},
		envKV("STRIPE_DEV_SECRET_KEY", stripeKey), envKV("STRIPE_DEV_WEBHOOK_SECRET", stripeWebhookSecret))
	base := "http://" + p.field(s.t, "http_addr")
	bc := &stripe.BackendConfig{URL: stripe.String(base), HTTPClient: testClient, LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull}}
	s.stripe = &stripeDev{proc: p, base: base, client: stripe.NewClient(stripeKey, stripe.WithBackends(stripe.NewBackendsWithConfig(bc)))}
	return []string{
		envKV("CHECKOUT_STRIPE_API_URL", base), envKV("CHECKOUT_STRIPE_SECRET_KEY", stripeKey),
		envKV("CHECKOUT_STRIPE_WEBHOOK_SECRET", stripeWebhookSecret),
	}
}

// forwardWebhooks points the stand-in's webhook endpoint at the running
// checkout, as an operator registers the endpoint in Stripe's dashboard;
// again after checkout moved (a restart picks a new port).
func (s *system) forwardWebhooks() {
	s.t.Helper()
	hook := s.checkout.base + "/webhooks/payments"
	var err error
	if s.stripe.endpoint == "" {
		var ep *stripe.WebhookEndpoint
		ep, err = s.stripe.client.V1WebhookEndpoints.Create(s.t.Context(), &stripe.WebhookEndpointCreateParams{
			URL: stripe.String(hook), EnabledEvents: []*string{stripe.String("checkout.session.completed")},
		})
		if err == nil {
			s.stripe.endpoint = ep.ID
		}
	} else {
		_, err = s.stripe.client.V1WebhookEndpoints.Update(s.t.Context(), s.stripe.endpoint, &stripe.WebhookEndpointUpdateParams{URL: stripe.String(hook)})
	}
	if err != nil {
		s.t.Fatalf("webhook endpoint at the Stripe stand-in: %v", err)
	}
}

// browse is the buyer's browser: it does not follow redirects, so that
// the test sees where each page sends it.
func browse(s *system, method, pageURL string, form url.Values) (int, string, string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), 60*time.Second)
	defer cancel()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, pageURL, body)
	if err != nil {
		s.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	c := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, pageURL, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Location"), string(b)
}

// deliverSigned posts a Stripe event to checkout's webhook, signed now
// with the endpoint's secret, as Stripe does on every redelivery.
func deliverSigned(s *system, event []byte) checkout.Payment {
	s.t.Helper()
	sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: event, Secret: stripeWebhookSecret})
	req, _ := http.NewRequestWithContext(s.t.Context(), "POST", s.checkout.base+"/webhooks/payments", bytes.NewReader(event))
	req.Header.Set("Stripe-Signature", sig.Header)
	res, err := testClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	var answer struct {
		Received bool              `json:"received"`
		Payment  *checkout.Payment `json:"payment"`
	}
	if err := json.NewDecoder(res.Body).Decode(&answer); err != nil || res.StatusCode != 200 || answer.Payment == nil {
		s.t.Fatalf("signed redelivery: HTTP %d %+v %v", res.StatusCode, answer, err)
	}
	return *answer.Payment
}

// cardPurchase is the buyer's card checkout, across the three processes:
// the purchase answers the Stripe session's checkout_url; the buyer opens
// that page and presses Pay; the stand-in sends the signed
// checkout.session.completed to checkout and the browser back to
// success_url; the account is credited once, however often the event is
// delivered. Another buyer cancels on the page: nothing is credited.
func cardPurchase(s *system) {
	const success = "http://portal.test/credits/done?session={CHECKOUT_SESSION_ID}"
	var p checkout.Purchase
	s.checkout.must(201, "POST", "/v1/workspaces/"+ws+"/accounts/alice/credit-purchases",
		checkout.PurchaseInput{PackageID: "starter", Method: checkout.MethodStripe, SuccessURL: success, CancelURL: "http://portal.test/credits"}, &p)
	if p.Status != checkout.PurchaseAwaitingPayment || p.StripeSessionID == "" || p.CheckoutURL != s.stripe.base+"/pay/"+p.StripeSessionID {
		s.t.Fatalf("card purchase: %+v", p)
	}
	sess, err := s.stripe.client.V1CheckoutSessions.Retrieve(s.t.Context(), p.StripeSessionID, nil)
	if err != nil || sess.AmountTotal != 1000 || sess.Currency != "usd" || sess.Metadata["purchase_id"] != p.ID || sess.Metadata["workspace"] != ws {
		s.t.Fatalf("the Stripe session: %+v %v", sess, err)
	}
	s.wantBalance("alice", 0, 0)

	code, _, page := browse(s, "GET", p.CheckoutURL, nil)
	if code != 200 || !strings.Contains(page, "Stripe test stand-in — no real payment") || !strings.Contains(page, "USD 10.00") {
		s.t.Fatalf("payment page: HTTP %d\n%s", code, page)
	}
	code, loc, _ := browse(s, "POST", p.CheckoutURL, url.Values{"action": {"pay"}})
	if want := strings.ReplaceAll(success, "{CHECKOUT_SESSION_ID}", p.StripeSessionID); code != http.StatusSeeOther || loc != want {
		s.t.Errorf("Pay: HTTP %d to %q, want 303 to %q", code, loc, want)
	}
	s.wantBalance("alice", 100, 1)

	sess, err = s.stripe.client.V1CheckoutSessions.Retrieve(s.t.Context(), p.StripeSessionID, nil)
	if err != nil || sess.PaymentStatus != stripe.CheckoutSessionPaymentStatusPaid || sess.PaymentIntent == nil {
		s.t.Fatalf("the Stripe session after Pay: %+v %v", sess, err)
	}
	pi := sess.PaymentIntent.ID
	var event *stripe.Event
	for ev, err := range s.stripe.client.V1Events.List(s.t.Context(), &stripe.EventListParams{Type: stripe.String("checkout.session.completed")}) {
		if err != nil {
			s.t.Fatal(err)
		}
		event = ev
		break // newest first
	}
	if event == nil {
		s.t.Fatal("the stand-in lists no checkout.session.completed event")
	}
	// The event as Stripe sent it, byte for byte.
	event, err = s.stripe.client.V1Events.Retrieve(s.t.Context(), event.ID, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	raw := event.LastResponse.RawJSON
	// Stripe redelivers: once through the stand-in, once signed here.
	req, _ := http.NewRequestWithContext(s.t.Context(), "POST", s.stripe.base+"/v1/events/"+event.ID+"/retry", nil)
	req.Header.Set("Authorization", "Bearer "+stripeKey)
	if res, err := testClient.Do(req); err != nil || res.StatusCode != 200 {
		s.t.Fatalf("redeliver through the stand-in: %v %v", res, err)
	} else {
		_ = res.Body.Close()
	}
	pay := deliverSigned(s, raw)
	if pay.Status != checkout.PaymentCredited || pay.Deliveries != 3 || pay.PaymentID != pi || pay.PurchaseID != p.ID {
		s.t.Errorf("third delivery: %+v", pay)
	}
	s.wantBalance("alice", 100, 1)
	txs := s.transactions("alice")
	if len(txs) != 1 || txs[0].GetId() != pay.TransactionID || txs[0].GetIdempotencyKey() != "stripe:"+pi ||
		txs[0].GetReference() != "stripe:"+pi || txs[0].GetPackageId() != "starter" ||
		txs[0].GetKind() != pb.TransactionKind_TRANSACTION_KIND_PURCHASE {
		s.t.Errorf("alice's history after three deliveries: %v", txs)
	}
	var got checkout.Purchase
	s.checkout.must(200, "GET", "/v1/workspaces/"+ws+"/credit-purchases/"+p.ID, nil, &got)
	if got.Status != checkout.PurchaseCredited || got.TransactionID != pay.TransactionID || got.Credits != 100 || got.ProviderPaymentID != pi {
		s.t.Errorf("card purchase after the webhook: %+v", got)
	}

	// Erin gives up on the payment page: back to the shop, nothing paid.
	var q checkout.Purchase
	s.checkout.must(201, "POST", "/v1/workspaces/"+ws+"/accounts/erin/credit-purchases",
		checkout.PurchaseInput{PackageID: "starter", Method: checkout.MethodStripe, CancelURL: "http://portal.test/credits"}, &q)
	if code, loc, _ := browse(s, "POST", q.CheckoutURL, url.Values{"action": {"cancel"}}); code != http.StatusSeeOther || loc != "http://portal.test/credits" {
		s.t.Errorf("Cancel: HTTP %d to %q", code, loc)
	}
	s.wantBalance("erin", 0, 0)
	s.checkout.must(200, "GET", "/v1/workspaces/"+ws+"/credit-purchases/"+q.ID, nil, &got)
	if got.Status != checkout.PurchaseAwaitingPayment {
		s.t.Errorf("cancelled card purchase: %+v", got)
	}
	s.cardEvent, s.cardPI, s.cardTx, s.purchaseID = raw, pi, pay.TransactionID, p.ID
}
