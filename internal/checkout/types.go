package checkout

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/type/money"

	"github.com/creditledger/creditledger/ledgerclient"
)

// Money is a price: google.type.Money in snake_case JSON.
// {"currency_code": "USD", "units": 3, "nanos": 510000000} is USD 3.51.
type Money struct {
	CurrencyCode string `json:"currency_code"`
	Units        int64  `json:"units"`
	Nanos        int32  `json:"nanos"`
}

func (m Money) proto() *money.Money {
	return &money.Money{CurrencyCode: m.CurrencyCode, Units: m.Units, Nanos: m.Nanos}
}

// String renders "USD 3.51".
func (m Money) String() string { return ledgerclient.FormatMoney(m.proto()) }

// validatePrice checks a positive price with an ISO 4217 code.
func validatePrice(field string, m Money) error {
	if len(m.CurrencyCode) != 3 || strings.ToUpper(m.CurrencyCode) != m.CurrencyCode || strings.ContainsFunc(m.CurrencyCode, func(r rune) bool { return r < 'A' || r > 'Z' }) {
		return invalidf(field+".currency_code", "must be a three-letter upper-case ISO 4217 code")
	}
	if m.Units < 0 || m.Nanos < 0 || m.Nanos > 999_999_999 {
		return invalidf(field, "must be non-negative with nanos in [0, 999999999]")
	}
	if m.Units == 0 && m.Nanos == 0 {
		return invalidf(field, "must be greater than zero")
	}
	return nil
}

// Service is a catalog entry: something the agency sells.
type Service struct {
	Workspace string `json:"workspace"`
	ID        string `json:"id"`
	Name      string `json:"name"`
	Price     Money  `json:"price"`
	// CreditEligible says whether the service may be bought with credits.
	CreditEligible bool      `json:"credit_eligible"`
	CreateTime     time.Time `json:"create_time"`
	UpdateTime     time.Time `json:"update_time"`
}

// OrderStatus is the life cycle of an order paid with credits.
type OrderStatus string

// Order statuses. PENDING until the ledger placed the hold (HELD) or
// refused it (FAILED). A HELD order is confirmed (the hold captured:
// CONFIRMED), cancelled (the hold voided: CANCELLED), or its hold expires
// first (EXPIRED). A confirmed order may be refused back, in part
// (PARTIALLY_REFUNDED) or in full (REFUNDED).
const (
	OrderPending           OrderStatus = "PENDING"
	OrderHeld              OrderStatus = "HELD"
	OrderConfirmed         OrderStatus = "CONFIRMED"
	OrderCancelled         OrderStatus = "CANCELLED"
	OrderExpired           OrderStatus = "EXPIRED"
	OrderFailed            OrderStatus = "FAILED"
	OrderPartiallyRefunded OrderStatus = "PARTIALLY_REFUNDED"
	OrderRefunded          OrderStatus = "REFUNDED"
)

// OrderAction is what was asked of a HELD order and may still be in
// flight: its hold's capture or void. It is recorded before the ledger is
// called, so that reconciliation finishes it after a crash or a timeout.
type OrderAction string

// Order actions.
const (
	ActionNone    OrderAction = ""
	ActionConfirm OrderAction = "CONFIRM"
	ActionCancel  OrderAction = "CANCEL"
)

// How an order spends the credits (Order.Method).
const (
	// MethodHold: a hold when the order is placed, captured on confirm.
	MethodHold = "HOLD"
	// MethodDebit: one debit, for orders placed by an earlier version; a
	// PENDING one is finished by replaying its debit.
	MethodDebit = "DEBIT"
)

// Order is a service bought with credits.
type Order struct {
	ID          string      `json:"id"`
	Workspace   string      `json:"workspace"`
	Account     string      `json:"account"`
	ServiceID   string      `json:"service_id"`
	ServiceName string      `json:"service_name"`
	Price       Money       `json:"price"`
	Credits     int64       `json:"credits"`
	Status      OrderStatus `json:"status"`
	// Action is the confirm or cancel asked of a HELD order and not yet
	// finished (the ledger did not answer): reconciliation finishes it.
	Action OrderAction `json:"pending_action,omitempty"`
	// FailureReason is the ledger's reason when FAILED (INSUFFICIENT_CREDITS, …).
	FailureReason string `json:"failure_reason,omitempty"`
	// IdempotencyKey is the ledger key of the hold, "checkout-order:<id>";
	// its capture takes "<key>:capture" and its void "<key>:void".
	IdempotencyKey string `json:"idempotency_key"`
	// HoldID and HoldExpireTime are the ledger's hold, once HELD.
	HoldID         string     `json:"hold_id,omitempty"`
	HoldExpireTime *time.Time `json:"hold_expire_time,omitempty"`
	// HoldTTL is the life asked for the hold (kept so that a replay asks
	// for the same).
	HoldTTL time.Duration `json:"-"`
	// TransactionID is the ledger's OUT entry (the capture), once CONFIRMED.
	TransactionID string `json:"transaction_id,omitempty"`
	// RefundedCredits is the sum of the order's refunds posted.
	RefundedCredits int64     `json:"refunded_credits,omitempty"`
	Method          string    `json:"-"`
	ClientKey       string    `json:"-"`
	CreateTime      time.Time `json:"create_time"`
	UpdateTime      time.Time `json:"update_time"`
}

// RefundStatus is the life cycle of a refund.
type RefundStatus string

// Refund statuses: PENDING until the ledger posted the reversal (REFUNDED)
// or refused it (FAILED).
const (
	RefundPending  RefundStatus = "PENDING"
	RefundRefunded RefundStatus = "REFUNDED"
	RefundFailed   RefundStatus = "FAILED"
)

// Refund gives credits of a confirmed order back: a REVERSAL entry of
// the order's OUT entry, for Credits of it.
type Refund struct {
	ID        string       `json:"id"`
	Workspace string       `json:"workspace"`
	OrderID   string       `json:"order_id"`
	Credits   int64        `json:"credits"`
	Status    RefundStatus `json:"status"`
	// IdempotencyKey is the ledger key of the reversal: "checkout-refund:<id>".
	IdempotencyKey string `json:"idempotency_key"`
	// TransactionID is the ledger's REVERSAL entry, once REFUNDED.
	TransactionID string    `json:"transaction_id,omitempty"`
	FailureReason string    `json:"failure_reason,omitempty"`
	ClientKey     string    `json:"-"`
	CreateTime    time.Time `json:"create_time"`
	UpdateTime    time.Time `json:"update_time"`
}

// PaymentMethod is how credits are bought.
type PaymentMethod string

// Payment methods: STRIPE and PAYPAL are instant (confirmed by the
// provider's webhook); BANK_TRANSFER and CRYPTO become a credit request the
// agency approves.
const (
	MethodStripe       PaymentMethod = "STRIPE"
	MethodPayPal       PaymentMethod = "PAYPAL"
	MethodBankTransfer PaymentMethod = "BANK_TRANSFER"
	MethodCrypto       PaymentMethod = "CRYPTO"
)

func (m PaymentMethod) instant() bool { return m == MethodStripe || m == MethodPayPal }

// PurchaseStatus is the life cycle of a credit purchase.
type PurchaseStatus string

// Purchase statuses.
const (
	// PurchaseAwaitingPayment: card/PayPal purchase waiting for the provider's confirmation.
	PurchaseAwaitingPayment PurchaseStatus = "AWAITING_PAYMENT"
	// PurchaseSubmitting: manual purchase recorded, its credit request not yet acknowledged by the ledger.
	PurchaseSubmitting PurchaseStatus = "SUBMITTING"
	// PurchasePendingApproval: the credit request waits for the agency.
	PurchasePendingApproval PurchaseStatus = "PENDING_APPROVAL"
	// PurchaseCredited: the credits are posted.
	PurchaseCredited PurchaseStatus = "CREDITED"
	// PurchaseRejected: the agency rejected the request; nothing was posted.
	PurchaseRejected PurchaseStatus = "REJECTED"
	// PurchaseFailed: the ledger refused the purchase (payments disabled, package inactive, …).
	PurchaseFailed PurchaseStatus = "FAILED"
	// PurchaseCancelled: the client withdrew the request before the agency
	// decided it; nothing was posted.
	PurchaseCancelled PurchaseStatus = "CANCELLED"
)

// Purchase is a client buying a credit package.
type Purchase struct {
	ID               string         `json:"id"`
	Workspace        string         `json:"workspace"`
	Account          string         `json:"account"`
	PackageID        string         `json:"package_id"`
	Method           PaymentMethod  `json:"payment_method"`
	Status           PurchaseStatus `json:"status"`
	PaymentReference string         `json:"payment_reference,omitempty"`
	Note             string         `json:"note,omitempty"`
	Credits          int64          `json:"credits,omitempty"`
	// RequestID is the ledger's credit request (manual methods).
	RequestID string `json:"request_id,omitempty"`
	// TransactionID is the ledger's IN transaction, once CREDITED.
	TransactionID string `json:"transaction_id,omitempty"`
	// ProviderPaymentID is the provider's payment that credited it (instant methods).
	ProviderPaymentID string `json:"provider_payment_id,omitempty"`
	// CheckoutURL is the provider's payment page for the buyer (instant
	// methods): the browser goes there to pay. Empty until the provider
	// created it (see StartPurchase).
	CheckoutURL string `json:"checkout_url,omitempty"`
	// StripeSessionID is the Stripe Checkout Session behind CheckoutURL
	// (cs_…), for STRIPE purchases.
	StripeSessionID string `json:"stripe_session_id,omitempty"`
	// SuccessURL and CancelURL are where the provider sends the buyer back
	// after paying or giving up, as the purchase was started with.
	SuccessURL    string `json:"success_url,omitempty"`
	CancelURL     string `json:"cancel_url,omitempty"`
	FailureReason string `json:"failure_reason,omitempty"`
	// ProviderRef is the provider's reference of the payment page (for
	// STRIPE, also StripeSessionID).
	ProviderRef string `json:"-"`
	// PaymentAttempt numbers the requests made to the provider to create
	// the payment page; it moves on only after the provider answered one
	// with an error, so that a request whose answer was lost is repeated
	// with the same idempotency key (see PaymentStartKey).
	PaymentAttempt int       `json:"-"`
	ClientKey      string    `json:"-"`
	CreateTime     time.Time `json:"create_time"`
	UpdateTime     time.Time `json:"update_time"`
}

// PaymentStatus is the life cycle of a provider payment confirmation.
type PaymentStatus string

// Payment statuses.
const (
	PaymentReceived PaymentStatus = "RECEIVED"
	PaymentCredited PaymentStatus = "CREDITED"
	PaymentFailed   PaymentStatus = "FAILED"
)

// Payment is a provider's payment confirmation (webhook), stored on first
// delivery.
type Payment struct {
	Provider      string        `json:"provider"`
	PaymentID     string        `json:"payment_id"`
	Workspace     string        `json:"workspace"`
	Account       string        `json:"account"`
	PackageID     string        `json:"package_id"`
	PurchaseID    string        `json:"purchase_id,omitempty"`
	Status        PaymentStatus `json:"status"`
	Credits       int64         `json:"credits,omitempty"`
	TransactionID string        `json:"transaction_id,omitempty"`
	FailureReason string        `json:"failure_reason,omitempty"`
	Deliveries    int           `json:"deliveries"`
	CreateTime    time.Time     `json:"create_time"`
	UpdateTime    time.Time     `json:"update_time"`
}

// Kind classifies an Error for the HTTP status.
type Kind int

// Error kinds.
const (
	KindInternal         Kind = iota // 500
	KindInvalid                      // 400: malformed input
	KindNotFound                     // 404
	KindConflict                     // 409: an idempotency key or payment id reused for something else
	KindRefused                      // 422: a business rule refused (INSUFFICIENT_CREDITS, SERVICE_NOT_ELIGIBLE, …)
	KindUnavailable                  // 503: the ledger did not answer; safe to retry
	KindUnauthenticated              // 401: no valid bearer token
	KindPermissionDenied             // 403: the token's role or scopes do not allow the call
	KindBadGateway                   // 502: the payment provider refused the checkout's request
)

// Error is the checkout's error: a kind, a stable machine code (the
// ledger's reason when the ledger refused), a safe message and metadata.
type Error struct {
	Kind     Kind
	Code     string
	Message  string
	Metadata map[string]string
	cause    error
}

// Error implements error.
func (e *Error) Error() string {
	if e.cause != nil {
		return e.Code + ": " + e.Message + ": " + e.cause.Error()
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.cause }

// HTTPStatus is the status code the API answers with.
func (e *Error) HTTPStatus() int {
	switch e.Kind {
	case KindInvalid:
		return http.StatusBadRequest
	case KindNotFound:
		return http.StatusNotFound
	case KindConflict:
		return http.StatusConflict
	case KindRefused:
		return http.StatusUnprocessableEntity
	case KindUnavailable:
		return http.StatusServiceUnavailable
	case KindUnauthenticated:
		return http.StatusUnauthorized
	case KindPermissionDenied:
		return http.StatusForbidden
	case KindBadGateway:
		return http.StatusBadGateway
	default:
		return http.StatusInternalServerError
	}
}

// Codes of the checkout's own refusals.
const (
	CodeInvalidArgument    = "INVALID_ARGUMENT"
	CodeNotFound           = "NOT_FOUND"
	CodeServiceNotEligible = "SERVICE_NOT_ELIGIBLE"
	CodeLedgerUnavailable  = "LEDGER_UNAVAILABLE"
	CodeKeyReused          = "IDEMPOTENCY_KEY_REUSED"
	CodePaymentMismatch    = "PAYMENT_MISMATCH"
	CodeBadSignature       = "BAD_SIGNATURE"
	CodeUnauthenticated    = "UNAUTHENTICATED"
	CodePermissionDenied   = "PERMISSION_DENIED"
	CodeUnknownPurchase    = "UNKNOWN_PURCHASE"
	// CodePurchaseNotPending: cancel of a purchase that no longer waits
	// for the agency (metadata: status).
	CodePurchaseNotPending = "PURCHASE_NOT_PENDING"
	// CodeOrderNotHeld: confirm or cancel of an order that is not HELD
	// (metadata: status), or whose other action is in flight.
	CodeOrderNotHeld = "ORDER_NOT_HELD"
	// CodeOrderNotConfirmed: refund of an order not confirmed.
	CodeOrderNotConfirmed = "ORDER_NOT_CONFIRMED"
	// CodeRefundExceedsOrder: the refund is more than what remains of the
	// order (metadata: refundable).
	CodeRefundExceedsOrder = "REFUND_EXCEEDS_ORDER"
	// CodeHoldExpired / CodeHoldVoided: the order's hold ended before it
	// could be captured.
	CodeHoldExpired = "HOLD_EXPIRED"
	CodeHoldVoided  = "HOLD_VOIDED"
	CodeInternal    = "INTERNAL"
	// CodeProviderNotConfigured: an instant purchase (STRIPE, PAYPAL)
	// on a checkout that has no provider for the method (metadata:
	// payment_method, missing: the configuration to set).
	CodeProviderNotConfigured = "PAYMENT_PROVIDER_NOT_CONFIGURED"
	// CodeProviderUnavailable: the payment provider did not answer, or
	// failed (timeout, 5xx, rate limit); the purchase stays as it is and
	// the same call with the same Idempotency-Key tries again.
	CodeProviderUnavailable = "PAYMENT_PROVIDER_UNAVAILABLE"
	// CodeProviderRefused: the payment provider refused to create the
	// payment page (metadata: provider_code, provider_request_id), or the
	// price cannot be paid through it; retrying the same call asks again.
	CodeProviderRefused = "PAYMENT_PROVIDER_REFUSED"
)

func invalidf(field, format string, args ...any) *Error {
	return &Error{
		Kind: KindInvalid, Code: CodeInvalidArgument, Message: field + ": " + fmt.Sprintf(format, args...),
		Metadata: map[string]string{"field": field},
	}
}

func notFound(what, id string) *Error {
	return &Error{
		Kind: KindNotFound, Code: CodeNotFound, Message: fmt.Sprintf("%s %q not found", what, id),
		Metadata: map[string]string{"resource": what, "id": id},
	}
}

func internal(err error) *Error {
	return &Error{Kind: KindInternal, Code: CodeInternal, Message: "internal error", cause: err}
}

// fromLedger maps a ledger failure to the checkout's error: refusals keep
// the ledger's reason and metadata; anything that leaves the outcome
// unknown is LEDGER_UNAVAILABLE (the operation stays pending and is
// reconciled).
func fromLedger(err error) *Error {
	var le *ledgerclient.Error
	if !errors.As(err, &le) {
		return internal(err)
	}
	switch {
	case errors.Is(err, ledgerclient.ErrIdempotencyKeyReused):
		return &Error{Kind: KindConflict, Code: le.Reason, Message: le.Message, Metadata: le.Metadata, cause: err}
	case errors.Is(err, ledgerclient.ErrNotFound):
		return &Error{Kind: KindNotFound, Code: CodeNotFound, Message: le.Message, Metadata: le.Metadata, cause: err}
	case errors.Is(err, ledgerclient.ErrInvalidArgument):
		return &Error{Kind: KindInvalid, Code: CodeInvalidArgument, Message: le.Message, Metadata: le.Metadata, cause: err}
	case ledgerclient.IsRefused(err):
		return &Error{Kind: KindRefused, Code: le.Reason, Message: le.Message, Metadata: le.Metadata, cause: err}
	default:
		return &Error{
			Kind: KindUnavailable, Code: CodeLedgerUnavailable,
			Message: "the ledger did not confirm the operation; it stays pending and is retried with the same idempotency key", cause: err,
		}
	}
}

// validID: 1-64 characters of [A-Za-z0-9._-], starting with a letter or
// digit (the ledger's identifier syntax).
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

func checkIDs(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if !validID(pairs[i+1]) {
			return invalidf(pairs[i], "must be 1-64 characters of [A-Za-z0-9._-] starting with a letter or digit")
		}
	}
	return nil
}

// validKey: a client-supplied key, 1-128 printable ASCII characters.
func validKey(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
