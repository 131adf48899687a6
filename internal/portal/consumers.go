package portal

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"time"
)

// checkout's and invoicing's REST APIs (README.md, "checkout routes" and
// "invoicing routes"): snake_case JSON, numbers as numbers.

// Service is an entry of the agency's catalog.
type Service struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	Price          Money  `json:"price"`
	CreditEligible bool   `json:"credit_eligible"`
}

// CreditOption says whether Buy with Credit / Pay with Credit is offered.
type CreditOption struct {
	Offered               bool   `json:"offered"`
	Reason                string `json:"reason"`
	CreditsRequired       int64  `json:"credits_required"`
	Balance               int64  `json:"balance"`
	CreditPaymentsEnabled bool   `json:"credit_payments_enabled"`
}

// Order is a service bought with credits.
type Order struct {
	ID             string     `json:"id"`
	ServiceID      string     `json:"service_id"`
	ServiceName    string     `json:"service_name"`
	Price          Money      `json:"price"`
	Credits        int64      `json:"credits"`
	Status         string     `json:"status"`
	FailureReason  string     `json:"failure_reason"`
	HoldExpireTime *time.Time `json:"hold_expire_time"`
	CreateTime     time.Time  `json:"create_time"`
}

// Purchase is a credit package being bought.
type Purchase struct {
	ID               string `json:"id"`
	PackageID        string `json:"package_id"`
	Method           string `json:"payment_method"`
	Status           string `json:"status"`
	PaymentReference string `json:"payment_reference"`
	Credits          int64  `json:"credits"`
	RequestID        string `json:"request_id"`
	FailureReason    string `json:"failure_reason"`
	// CheckoutURL is where the browser pays a card purchase (the Stripe
	// Checkout Session's page), when checkout is configured for Stripe.
	CheckoutURL     string `json:"checkout_url"`
	StripeSessionID string `json:"stripe_session_id"`
}

// Invoice is an amount the client owes the agency.
type Invoice struct {
	ID          string     `json:"id"`
	Account     string     `json:"account"`
	Number      string     `json:"number"`
	Description string     `json:"description"`
	Amount      Money      `json:"amount"`
	Status      string     `json:"status"`
	Credits     int64      `json:"credits"`
	LastFailure string     `json:"last_failure"`
	PaidTime    *time.Time `json:"paid_time"`
}

type checkoutAPI struct{ api }

func (c *checkoutAPI) Services(ctx context.Context, tok, ws string) ([]Service, error) {
	var out struct {
		Services []Service `json:"services"`
	}
	err := c.call(ctx, tok, http.MethodGet, wsPath(ws)+"/services", nil, &out)
	return out.Services, err
}

func (c *checkoutAPI) Options(ctx context.Context, tok, ws, acct, service string) (CreditOption, error) {
	var out struct {
		BuyWithCredit CreditOption `json:"buy_with_credit"`
	}
	err := c.call(ctx, tok, http.MethodGet, acctPath(ws, acct)+"/services/"+pathEsc(service)+"/checkout-options", nil, &out)
	return out.BuyWithCredit, err
}

func (c *checkoutAPI) Orders(ctx context.Context, tok, ws, acct string) ([]Order, error) {
	var out struct {
		Orders []Order `json:"orders"`
	}
	err := c.call(ctx, tok, http.MethodGet, acctPath(ws, acct)+"/orders", nil, &out)
	return out.Orders, err
}

// Buy places an order paid with credits: a hold until it is confirmed.
// key makes a resubmitted form the same order.
func (c *checkoutAPI) Buy(ctx context.Context, tok, ws, acct, service, key string) (Order, error) {
	var out Order
	err := c.call(ctx, tok, http.MethodPost, acctPath(ws, acct)+"/orders", map[string]any{"service_id": service}, &out, "Idempotency-Key", key)
	return out, err
}

// OrderAction is confirm (capture the hold) or cancel (void it).
func (c *checkoutAPI) OrderAction(ctx context.Context, tok, ws, id, verb string) (Order, error) {
	var out Order
	err := c.call(ctx, tok, http.MethodPost, wsPath(ws)+"/orders/"+pathEsc(id)+":"+verb, nil, &out)
	return out, err
}

// PaymentMethods the workspace offers: STRIPE, PAYPAL, BANK_TRANSFER, CRYPTO.
func (c *checkoutAPI) PaymentMethods(ctx context.Context, tok, ws string) ([]string, error) {
	var out struct {
		Methods []string `json:"payment_methods"`
	}
	err := c.call(ctx, tok, http.MethodGet, wsPath(ws)+"/payment-methods", nil, &out)
	return out.Methods, err
}

// PurchaseInput starts buying a package.
type PurchaseInput struct {
	PackageID        string `json:"package_id"`
	Method           string `json:"payment_method"`
	PaymentReference string `json:"payment_reference,omitempty"`
	Note             string `json:"note,omitempty"`
	SuccessURL       string `json:"success_url,omitempty"`
	CancelURL        string `json:"cancel_url,omitempty"`
}

func (c *checkoutAPI) StartPurchase(ctx context.Context, tok, ws, acct string, in PurchaseInput, key string) (Purchase, error) {
	var out Purchase
	err := c.call(ctx, tok, http.MethodPost, acctPath(ws, acct)+"/credit-purchases", in, &out, "Idempotency-Key", key)
	return out, err
}

func (c *checkoutAPI) Purchase(ctx context.Context, tok, ws, id string) (Purchase, error) {
	var out Purchase
	err := c.call(ctx, tok, http.MethodGet, wsPath(ws)+"/credit-purchases/"+pathEsc(id), nil, &out)
	return out, err
}

type invoicingAPI struct{ api }

// Invoices lists an account's invoices, newest first.
func (i *invoicingAPI) Invoices(ctx context.Context, tok, ws, acct string) ([]Invoice, error) {
	q := url.Values{}
	if acct != "" {
		q.Set("account", acct)
	}
	var out struct {
		Invoices []Invoice `json:"invoices"`
	}
	err := i.call(ctx, tok, http.MethodGet, wsPath(ws)+"/invoices?"+q.Encode(), nil, &out)
	return out.Invoices, err
}

func (i *invoicingAPI) Options(ctx context.Context, tok, ws, id string) (CreditOption, error) {
	var out struct {
		PayWithCredit CreditOption `json:"pay_with_credit"`
	}
	err := i.call(ctx, tok, http.MethodGet, wsPath(ws)+"/invoices/"+pathEsc(id)+"/payment-options", nil, &out)
	return out.PayWithCredit, err
}

func (i *invoicingAPI) Pay(ctx context.Context, tok, ws, id string) (Invoice, error) {
	var out Invoice
	err := i.call(ctx, tok, http.MethodPost, wsPath(ws)+"/invoices/"+pathEsc(id)+"/pay-with-credit", nil, &out)
	return out, err
}

func readLimited(r io.Reader) ([]byte, error) { return io.ReadAll(io.LimitReader(r, maxResponse)) }
