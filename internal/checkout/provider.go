package checkout

import (
	"context"
	"fmt"
	"net/url"
	"strings"
)

// PaymentProvider takes the payment of an instant purchase (card through
// Stripe; PayPal next) on the provider's own hosted page: the checkout
// never sees a card. The provider later confirms the payment on the
// payment webhook, which credits the purchase exactly once.
//
// Stripe is the implementation (NewStripe: a Stripe Checkout Session).
// PayPal is the next adapter behind this same interface: StartPayment
// would create a PayPal order (Orders v2, intent CAPTURE, the package's
// price as its one purchase unit, custom_id/invoice_id carrying the
// purchase, PayPal-Request-Id derived from PaymentStartKey) and return its
// "payer-action" link and the order id; its webhook
// (PAYMENT.CAPTURE.COMPLETED, verified with PayPal's signature) would
// credit "paypal:<capture id>" through ConfirmPayment's path. Until then
// a PAYPAL purchase is refused with PAYMENT_PROVIDER_NOT_CONFIGURED.
type PaymentProvider interface {
	// StartPayment creates the provider's payment page for the purchase p
	// of pkg, sending the buyer back to urls afterwards, and returns the
	// page's address (checkoutURL) and the provider's reference of it
	// (for Stripe, the Checkout Session's id).
	//
	// It must be idempotent per (p.ID, p.PaymentAttempt): the request
	// carries the key PaymentStartKey(p.ID, p.PaymentAttempt), so that a
	// retry after a lost answer gets the same page, never a second one.
	//
	// Errors are *Error: CodeProviderUnavailable when the outcome is
	// unknown or the provider failed, CodeProviderRefused when it refused.
	// A *ProviderError cause says whether the provider answered (then the
	// next attempt takes a new key: a provider replays the answer of a key).
	StartPayment(ctx context.Context, p Purchase, pkg CreditPackage, urls ReturnURLs) (checkoutURL, providerRef string, err error)
}

// CreditPackage is what a purchase buys, as the ledger describes it.
type CreditPackage struct {
	ID      string
	Name    string
	Credits int64
	Price   Money
}

// ReturnURLs are where the provider sends the buyer back: SuccessURL
// after paying, CancelURL when giving up. Either may be empty (the
// provider then shows its own page). Stripe replaces the text
// {CHECKOUT_SESSION_ID} in SuccessURL with the session's id.
type ReturnURLs struct {
	SuccessURL string
	CancelURL  string
}

// ProviderError is a provider's failure, as the provider adapter saw it.
type ProviderError struct {
	Provider string
	// Answered: the provider answered the request (with an error status);
	// false when no answer came (a timeout, a broken connection), so the
	// request may have been carried out.
	Answered bool
	// Status is the provider's HTTP status, when it answered.
	Status int
	// Code is the provider's error code (Stripe's "amount_too_small", …).
	Code string
	// RequestID is the provider's id of the request, for its support.
	RequestID string
	Err       error
}

func (e *ProviderError) Error() string {
	if e.Answered {
		return fmt.Sprintf("%s answered HTTP %d %s (request %s): %v", e.Provider, e.Status, e.Code, e.RequestID, e.Err)
	}
	return fmt.Sprintf("%s did not answer: %v", e.Provider, e.Err)
}

func (e *ProviderError) Unwrap() error { return e.Err }

// PaymentStartKey is the idempotency key of the request that creates the
// payment page of a purchase at its provider, for the given attempt
// (1, 2, …): "checkout-purchase:<id>:payment:<attempt>".
func PaymentStartKey(purchaseID string, attempt int) string {
	return fmt.Sprintf("checkout-purchase:%s:payment:%d", purchaseID, attempt)
}

// maxReturnURL bounds success_url and cancel_url (Stripe takes 5000).
const maxReturnURL = 2048

// checkReturnURL accepts an absolute http(s) URL of printable ASCII with
// a host and no credentials; empty is accepted (no return address).
func checkReturnURL(field, s string) error {
	if s == "" {
		return nil
	}
	if len(s) > maxReturnURL || strings.ContainsFunc(s, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return invalidf(field, "must be at most %d printable ASCII characters, without spaces", maxReturnURL)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Opaque != "" {
		return invalidf(field, "must be an absolute http or https URL")
	}
	if u.User != nil {
		return invalidf(field, "must not carry credentials")
	}
	return nil
}

// providerNotConfigured refuses an instant purchase no provider can take.
func providerNotConfigured(m PaymentMethod) *Error {
	missing := "a PayPal adapter (none exists yet)"
	what := "PayPal payments are"
	if m == MethodStripe {
		missing, what = "CHECKOUT_STRIPE_SECRET_KEY", "card payments through Stripe are"
	}
	return &Error{
		Kind: KindRefused, Code: CodeProviderNotConfigured,
		Message:  what + " not configured on this checkout: it needs " + missing,
		Metadata: map[string]string{"payment_method": string(m), "missing": missing},
	}
}
