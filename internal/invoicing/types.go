package invoicing

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/genproto/googleapis/type/money"

	"github.com/creditledger/creditledger/ledgerclient"
)

// Money is an amount: google.type.Money in snake_case JSON.
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

func validateAmount(field string, m Money) error {
	if len(m.CurrencyCode) != 3 {
		return invalidf(field+".currency_code", "must be a three-letter upper-case ISO 4217 code")
	}
	for i := range 3 {
		if c := m.CurrencyCode[i]; c < 'A' || c > 'Z' {
			return invalidf(field+".currency_code", "must be a three-letter upper-case ISO 4217 code")
		}
	}
	if m.Units < 0 || m.Nanos < 0 || m.Nanos > 999_999_999 {
		return invalidf(field, "must be non-negative with nanos in [0, 999999999]")
	}
	if m.Units == 0 && m.Nanos == 0 {
		return invalidf(field, "must be greater than zero")
	}
	return nil
}

// Status is an invoice's life cycle.
type Status string

// Invoice statuses. PAYING is the recorded intent to pay with credits: the
// hold (then its capture) with the attempt's key may or may not be posted
// yet, and only the ledger's answer moves the invoice on (to PAID with the
// capture's transaction, or back to OPEN with the refusal, or when the
// hold expired or was voided).
const (
	StatusOpen   Status = "OPEN"
	StatusPaying Status = "PAYING"
	StatusPaid   Status = "PAID"
)

// Invoice is an amount a client owes the agency.
type Invoice struct {
	ID          string `json:"id"`
	Workspace   string `json:"workspace"`
	Account     string `json:"account"`
	Number      string `json:"number"`
	Description string `json:"description,omitempty"`
	Amount      Money  `json:"amount"`
	Status      Status `json:"status"`
	// Credits of the payment in progress or done (the converted amount).
	Credits int64 `json:"credits,omitempty"`
	// IdempotencyKey of the payment attempt, recorded with PAYING:
	// "invoice:<id>" for the first, "invoice:<id>:<n>" for the n-th. The
	// hold is created with it, captured with "<key>:capture" and voided
	// with "<key>:void".
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// HoldID is the ledger hold of the payment in progress (or done).
	HoldID string `json:"hold_id,omitempty"`
	// TransactionID is the ledger's INVOICE_PAYMENT entry once PAID.
	TransactionID string `json:"transaction_id,omitempty"`
	// Method is how the payment in progress spends the credits: HOLD
	// (hold, then capture), or DEBIT for a payment begun by an earlier
	// version, settled by replaying its one-step debit.
	Method string `json:"-"`
	// LastFailure is the reason of the last refused payment (INSUFFICIENT_CREDITS, …).
	LastFailure string     `json:"last_failure,omitempty"`
	CreateTime  time.Time  `json:"create_time"`
	UpdateTime  time.Time  `json:"update_time"`
	PaidTime    *time.Time `json:"paid_time,omitempty"`
}

// Reference is the ledger reference of the invoice's payment: "invoice:<number>".
func (i Invoice) Reference() string { return "invoice:" + i.Number }

// Key is the ledger idempotency key of an invoice's first payment
// attempt: "invoice:<id>".
func Key(invoiceID string) string { return "invoice:" + invoiceID }

// Ways of paying (Invoice.Method).
const (
	MethodHold  = "HOLD"
	MethodDebit = "DEBIT"
)

// HoldTTL is how long the credits of a payment stay reserved if the
// capture does not come (a crash the reconciliation does not finish in
// time). It is part of the hold's request, so that a replay after a restart
// asks for the same thing.
const HoldTTL = time.Hour

// Kind classifies an Error for the HTTP status.
type Kind int

// Error kinds.
const (
	KindInternal         Kind = iota // 500
	KindInvalid                      // 400
	KindNotFound                     // 404
	KindConflict                     // 409
	KindRefused                      // 422: a business rule refused (INSUFFICIENT_CREDITS, …)
	KindUnavailable                  // 503: the ledger did not confirm; the payment stays PAYING and is reconciled
	KindUnauthenticated              // 401: no valid bearer token
	KindPermissionDenied             // 403: the token's role or scopes do not allow the call
)

// Error is the invoicing service's error.
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
	default:
		return http.StatusInternalServerError
	}
}

// Codes of the service's own errors.
const (
	CodeInvalidArgument   = "INVALID_ARGUMENT"
	CodeNotFound          = "NOT_FOUND"
	CodeAlreadyExists     = "ALREADY_EXISTS"
	CodeInvoiceNotOpen    = "INVOICE_NOT_OPEN"
	CodeHoldExpired       = "HOLD_EXPIRED"
	CodeHoldVoided        = "HOLD_VOIDED"
	CodeLedgerUnavailable = "LEDGER_UNAVAILABLE"
	CodeInternal          = "INTERNAL"
	CodeUnauthenticated   = "UNAUTHENTICATED"
	CodePermissionDenied  = "PERMISSION_DENIED"
)

func invalidf(field, format string, args ...any) *Error {
	return &Error{
		Kind: KindInvalid, Code: CodeInvalidArgument, Message: field + ": " + fmt.Sprintf(format, args...),
		Metadata: map[string]string{"field": field},
	}
}

func internal(err error) *Error {
	return &Error{Kind: KindInternal, Code: CodeInternal, Message: "internal error", cause: err}
}

// fromLedger maps a ledger failure: refusals keep the ledger's reason;
// whatever leaves the outcome unknown is LEDGER_UNAVAILABLE.
func fromLedger(err error) *Error {
	var le *ledgerclient.Error
	if !errors.As(err, &le) {
		return internal(err)
	}
	switch {
	case errors.Is(err, ledgerclient.ErrIdempotencyKeyReused):
		return &Error{Kind: KindConflict, Code: le.Reason, Message: le.Message, Metadata: le.Metadata, cause: err}
	case errors.Is(err, ledgerclient.ErrInvalidArgument):
		return &Error{Kind: KindInvalid, Code: CodeInvalidArgument, Message: le.Message, Metadata: le.Metadata, cause: err}
	case ledgerclient.IsRefused(err):
		code := le.Reason
		if code == "" {
			code = CodeNotFound
		}
		return &Error{Kind: KindRefused, Code: code, Message: le.Message, Metadata: le.Metadata, cause: err}
	default:
		return &Error{
			Kind: KindUnavailable, Code: CodeLedgerUnavailable,
			Message: "the ledger did not confirm the payment; it stays PAYING and is retried with the same idempotency key", cause: err,
		}
	}
}

// validID: 1-64 characters of [A-Za-z0-9._-], starting with a letter or digit.
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
