package checkout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82"
	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/type/money"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/consumer"
	"github.com/creditledger/creditledger/internal/ident"
)

// Metadata keys the Stripe Checkout Session (or PaymentIntent, through
// payment_intent_data.metadata) must carry: the checkout's purchase the
// payment is for, and its workspace. The purchase names the account and
// the package; nothing else in the event is trusted to.
const (
	StripeMetadataWorkspace = "workspace"
	StripeMetadataPurchase  = "purchase_id"
)

// StripePayment is what a verified Stripe event says was paid.
type StripePayment struct {
	EventID   string
	EventType string
	// PaymentID is the PaymentIntent's id (pi_…), or the Checkout
	// Session's (cs_…) when it has none: the idempotency key of the credit
	// is "stripe:<PaymentID>", the same for the session's event and the
	// payment intent's.
	PaymentID  string
	Workspace  string
	PurchaseID string
	// Amount is in the currency's smallest unit, as Stripe gives it;
	// Currency is Stripe's lower-case ISO code.
	Amount   int64
	Currency string
}

// stripePaymentOf reads the payment of a verified event. ignore, when not
// empty, says why the event is acknowledged without crediting anything:
// a type the checkout does not act on, a session not paid yet (an
// asynchronous method; its async_payment_succeeded follows), or a payment
// that is not a CreditLedger purchase.
func stripePaymentOf(ev stripe.Event) (sp StripePayment, ignore string, err error) {
	if ev.Data == nil {
		return sp, "", errors.New("the event has no data object")
	}
	var md map[string]string
	switch ev.Type {
	case stripe.EventTypeCheckoutSessionCompleted, stripe.EventTypeCheckoutSessionAsyncPaymentSucceeded:
		var s stripe.CheckoutSession
		if err := json.Unmarshal(ev.Data.Raw, &s); err != nil {
			return sp, "", fmt.Errorf("checkout session: %w", err)
		}
		if s.PaymentStatus != stripe.CheckoutSessionPaymentStatusPaid {
			return sp, "the session is not paid (payment_status " + string(s.PaymentStatus) + ")", nil
		}
		sp.PaymentID, sp.Amount, sp.Currency, md = s.ID, s.AmountTotal, string(s.Currency), s.Metadata
		if s.PaymentIntent != nil && s.PaymentIntent.ID != "" {
			sp.PaymentID = s.PaymentIntent.ID
		}
	case stripe.EventTypePaymentIntentSucceeded:
		var pi stripe.PaymentIntent
		if err := json.Unmarshal(ev.Data.Raw, &pi); err != nil {
			return sp, "", fmt.Errorf("payment intent: %w", err)
		}
		sp.PaymentID, sp.Amount, sp.Currency, md = pi.ID, pi.AmountReceived, string(pi.Currency), pi.Metadata
	default:
		return sp, "event type " + string(ev.Type) + " is not handled", nil
	}
	sp.EventID, sp.EventType = ev.ID, string(ev.Type)
	sp.Workspace, sp.PurchaseID = md[StripeMetadataWorkspace], md[StripeMetadataPurchase]
	if sp.Workspace == "" && sp.PurchaseID == "" {
		return sp, "no " + StripeMetadataPurchase + " metadata: not a CreditLedger purchase", nil
	}
	return sp, "", nil
}

// refusal is a permanent refusal of a verified payment: nothing is
// credited, and a redelivery would be refused the same way.
func refusal(code, format string, args ...any) *consumer.Error {
	return &consumer.Error{Kind: consumer.KindRefused, Code: code, Message: fmt.Sprintf(format, args...)}
}

// ConfirmStripePayment credits a verified Stripe payment: the purchase it
// names must exist, be a STRIPE purchase of that workspace, and the amount
// and currency paid must be exactly the package's price. Then it is
// handled as every confirmation (see ConfirmPayment): stored, and credited
// once with the key "stripe:<payment id>".
//
// A mismatch is refused with the payment not recorded, so nothing is ever
// credited for it, and logged as an error for the operator (a refund or a
// manual adjustment is a human decision).
func (a *App) ConfirmStripePayment(ctx context.Context, sp StripePayment) (Payment, error) {
	if !validKey(sp.PaymentID) || len(sp.PaymentID) > 200 {
		return Payment{}, refusal(CodeInvalidArgument, "the payment id is not usable")
	}
	if !ident.Valid(sp.Workspace) || !ident.Valid(sp.PurchaseID) {
		return Payment{}, refusal(CodeUnknownPurchase, "metadata %s and %s must name a purchase", StripeMetadataWorkspace, StripeMetadataPurchase)
	}
	pur, err := a.store.GetPurchase(ctx, sp.Workspace, sp.PurchaseID)
	if errors.Is(err, errNoRows) {
		return Payment{}, refusal(CodeUnknownPurchase, "purchase %q not found", sp.PurchaseID)
	}
	if err != nil {
		return Payment{}, consumer.Internal(err)
	}
	if pur.Method != MethodStripe {
		return Payment{}, refusal(CodePaymentMismatch, "purchase %q is not paid by card through Stripe", pur.ID)
	}
	pkg, err := a.ledger.GetPackage(ctx, &pb.GetPackageRequest{Workspace: pur.Workspace, PackageId: pur.PackageID})
	if err != nil {
		le := fromLedger(err)
		if le.Kind == consumer.KindUnavailable {
			return Payment{}, le
		}
		return Payment{}, refusal(CodePaymentMismatch, "the package %q of the purchase cannot be read: %s", pur.PackageID, le.Code)
	}
	price := pkg.GetCreditPackage().GetPrice()
	want, err := stripeAmount(price)
	if err != nil || !strings.EqualFold(sp.Currency, price.GetCurrencyCode()) || sp.Amount != want {
		a.Log.Error("stripe payment does not match the package's price; not credited",
			zap.String("payment_key_sha256", fingerprint(PaymentKey("stripe", sp.PaymentID))), zap.String("purchase_id", pur.ID),
			zap.String("package_id", pur.PackageID), zap.Int64("paid_amount", sp.Amount), zap.String("paid_currency", sp.Currency),
			zap.Int64("price_amount", want), zap.String("price_currency", price.GetCurrencyCode()), zap.NamedError("price_error", err))
		return Payment{}, refusal(CodePaymentMismatch, "the amount or currency paid is not the package's price")
	}
	return a.confirm(ctx, Payment{
		Provider: "stripe", PaymentID: sp.PaymentID, Workspace: pur.Workspace, Account: pur.Account,
		PackageID: pur.PackageID, PurchaseID: pur.ID,
	})
}

// zeroDecimal and threeDecimal are the currencies Stripe counts in whole
// units and in thousandths; every other currency is counted in
// hundredths (https://docs.stripe.com/currencies#zero-decimal).
var (
	zeroDecimal  = []string{"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}
	threeDecimal = []string{"BHD", "JOD", "KWD", "OMR", "TND"}
)

// stripeAmount is a price in Stripe's smallest unit of its currency. A
// price finer than that unit cannot have been paid exactly: an error.
func stripeAmount(m *money.Money) (int64, error) {
	if m == nil || m.GetUnits() < 0 || m.GetNanos() < 0 {
		return 0, errors.New("the package has no positive price")
	}
	code := strings.ToUpper(m.GetCurrencyCode())
	digits := 2
	switch {
	case slices.Contains(zeroDecimal, code):
		digits = 0
	case slices.Contains(threeDecimal, code):
		digits = 3
	}
	scale, step := int64(1), int64(1_000_000_000)
	for range digits {
		scale *= 10
		step /= 10
	}
	if int64(m.GetNanos())%step != 0 {
		return 0, fmt.Errorf("%s price %d.%09d is finer than its smallest unit", code, m.GetUnits(), m.GetNanos())
	}
	if m.GetUnits() > (math.MaxInt64-int64(m.GetNanos())/step)/scale {
		return 0, errors.New("the price overflows")
	}
	return m.GetUnits()*scale + int64(m.GetNanos())/step, nil
}

// StripeConfig configures the Stripe payment provider.
type StripeConfig struct {
	// SecretKey is the Stripe account's secret key (sk_test_…, sk_live_…)
	// or a restricted key (rk_test_…, rk_live_…) that may write Checkout
	// Sessions.
	SecretKey string
	// APIURL is the base URL of Stripe's API; empty is Stripe's own
	// (https://api.stripe.com). Development and tests point it at a
	// local stand-in (cmd/stripe-dev). A live key is only ever sent to
	// Stripe's own.
	APIURL string
	// HTTPClient sends the requests; nil: a client that gives up on one
	// request after RequestTimeout.
	HTTPClient *http.Client
	// RequestTimeout bounds one request when HTTPClient is nil (default
	// 10s).
	RequestTimeout time.Duration
	// MaxNetworkRetries is how often stripe-go repeats a request that got
	// no answer (a timeout, a broken connection) or Stripe's lock timeout,
	// with the same idempotency key, before StartPayment returns (default
	// 2; negative: none). An error Stripe answered is not repeated.
	MaxNetworkRetries int
}

// stripeKeyPrefixes are the kinds of key that may create sessions.
var stripeKeyPrefixes = []string{"sk_test_", "sk_live_", "rk_test_", "rk_live_"}

// StripeLiveKey says whether key is a live-mode key (real payments).
func StripeLiveKey(key string) bool {
	return strings.HasPrefix(key, "sk_live_") || strings.HasPrefix(key, "rk_live_")
}

// Stripe is the card payment provider: a Stripe Checkout Session per
// purchase, through the official stripe-go client.
type Stripe struct {
	client *stripe.Client
}

// NewStripe returns the Stripe provider of cfg.
func NewStripe(cfg StripeConfig) (*Stripe, error) {
	if !slices.ContainsFunc(stripeKeyPrefixes, func(p string) bool { return strings.HasPrefix(cfg.SecretKey, p) && len(cfg.SecretKey) > len(p) }) {
		return nil, errors.New("stripe: the secret key must be a secret (sk_test_…, sk_live_…) or restricted (rk_test_…, rk_live_…) key")
	}
	bc := &stripe.BackendConfig{LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull}}
	if cfg.APIURL != "" {
		u, err := url.Parse(cfg.APIURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("stripe: API URL %q: want http(s)://host[:port]", cfg.APIURL)
		}
		if StripeLiveKey(cfg.SecretKey) && strings.TrimSuffix(cfg.APIURL, "/") != stripe.APIURL {
			return nil, fmt.Errorf("stripe: a live key is only sent to Stripe's API (%s), not to %s", stripe.APIURL, cfg.APIURL)
		}
		bc.URL = stripe.String(strings.TrimSuffix(cfg.APIURL, "/"))
	}
	bc.HTTPClient = cfg.HTTPClient
	if bc.HTTPClient == nil {
		timeout := cfg.RequestTimeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		bc.HTTPClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: timeout}
	}
	retries := int64(stripe.DefaultMaxNetworkRetries)
	if cfg.MaxNetworkRetries != 0 {
		retries = max(int64(cfg.MaxNetworkRetries), 0)
	}
	bc.MaxNetworkRetries = stripe.Int64(retries)
	return &Stripe{client: stripe.NewClient(cfg.SecretKey, stripe.WithBackends(stripe.NewBackendsWithConfig(bc)))}, nil
}

// StartPayment creates the Checkout Session of a STRIPE purchase: one
// line item of the package's price (in the currency's smallest unit) named
// after the package, the metadata workspace and purchase_id on the session
// and on its PaymentIntent (the webhook finds the purchase by them), and
// the idempotency key PaymentStartKey.
func (s *Stripe) StartPayment(ctx context.Context, p Purchase, pkg CreditPackage, urls ReturnURLs) (string, string, error) {
	amount, err := stripeAmount(pkg.Price.Proto())
	if err != nil {
		return "", "", &consumer.Error{
			Kind: consumer.KindRefused, Code: CodeProviderRefused, Message: "the package's price cannot be paid through Stripe: " + err.Error(),
			Metadata: map[string]string{"package_id": pkg.ID, "price": pkg.Price.String()},
		}
	}
	name := pkg.Name
	if name == "" {
		name = pkg.ID
	}
	md := func() map[string]string {
		return map[string]string{StripeMetadataWorkspace: p.Workspace, StripeMetadataPurchase: p.ID}
	}
	params := &stripe.CheckoutSessionCreateParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModePayment)),
		ClientReferenceID: stripe.String(p.ID),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{
			PriceData: &stripe.CheckoutSessionCreateLineItemPriceDataParams{
				Currency:   stripe.String(strings.ToLower(pkg.Price.CurrencyCode)),
				UnitAmount: stripe.Int64(amount),
				ProductData: &stripe.CheckoutSessionCreateLineItemPriceDataProductDataParams{
					Name:        stripe.String(name),
					Description: stripe.String(fmt.Sprintf("%d credits", pkg.Credits)),
				},
			},
			Quantity: stripe.Int64(1),
		}},
		Metadata:          md(),
		PaymentIntentData: &stripe.CheckoutSessionCreatePaymentIntentDataParams{Metadata: md()},
	}
	if urls.SuccessURL != "" {
		params.SuccessURL = stripe.String(urls.SuccessURL)
	}
	if urls.CancelURL != "" {
		params.CancelURL = stripe.String(urls.CancelURL)
	}
	params.SetIdempotencyKey(PaymentStartKey(p.ID, p.PaymentAttempt))
	sess, err := s.client.V1CheckoutSessions.Create(ctx, params)
	if err != nil {
		return "", "", stripeError(err)
	}
	if sess.URL == "" || sess.ID == "" {
		return "", "", &consumer.Error{
			Kind: consumer.KindBadGateway, Code: CodeProviderRefused, Message: "Stripe created a checkout session without a URL",
			Cause: &ProviderError{Provider: "stripe", Answered: true, Status: http.StatusOK, Err: errors.New("no session url or id")},
		}
	}
	return sess.URL, sess.ID, nil
}

// stripeError is the checkout's error for a failed Stripe request. Stripe's
// own message stays in the log (it may quote a masked key); the answer
// carries its error code and request id.
func stripeError(err error) *consumer.Error {
	var se *stripe.Error
	if !errors.As(err, &se) || se.HTTPStatusCode == 0 {
		return &consumer.Error{
			Kind: consumer.KindUnavailable, Code: CodeProviderUnavailable,
			Message: "Stripe did not answer; the purchase waits: the same call with the same Idempotency-Key tries again",
			Cause:   &ProviderError{Provider: "stripe", Err: err},
		}
	}
	st := se.HTTPStatusCode
	pe := &ProviderError{
		Provider: "stripe", Answered: st != http.StatusConflict, Status: st, Code: string(se.Code), RequestID: se.RequestID, Err: err,
	}
	md := map[string]string{"provider_status": fmt.Sprint(st)}
	if se.Code != "" {
		md["provider_code"] = string(se.Code)
	}
	if se.RequestID != "" {
		md["provider_request_id"] = se.RequestID
	}
	if st == http.StatusConflict || st == http.StatusTooManyRequests || st >= 500 {
		return &consumer.Error{
			Kind: consumer.KindUnavailable, Code: CodeProviderUnavailable, Metadata: md, Cause: pe,
			Message: fmt.Sprintf("Stripe failed (HTTP %d); the purchase waits: the same call with the same Idempotency-Key tries again", st),
		}
	}
	what := string(se.Type)
	if se.Code != "" {
		what = string(se.Code)
	}
	return &consumer.Error{
		Kind: consumer.KindBadGateway, Code: CodeProviderRefused, Metadata: md, Cause: pe,
		Message: fmt.Sprintf("Stripe refused to create the checkout session (HTTP %d, %s); the checkout's log has Stripe's message", st, what),
	}
}
