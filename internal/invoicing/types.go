package invoicing

import (
	"time"

	"github.com/creditledger/creditledger/internal/consumer"
)

// Money is an amount: google.type.Money in snake_case JSON (see
// consumer.Money).
type Money = consumer.Money

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

// Codes of the service's answers: the kit's it names in its own API, and
// its own.
const (
	CodeNotFound          = consumer.CodeNotFound
	CodeAlreadyExists     = "ALREADY_EXISTS"
	CodeInvoiceNotOpen    = "INVOICE_NOT_OPEN"
	CodeHoldExpired       = "HOLD_EXPIRED"
	CodeHoldVoided        = "HOLD_VOIDED"
	CodeLedgerUnavailable = consumer.CodeLedgerUnavailable
	CodeUnauthenticated   = consumer.CodeUnauthenticated
	CodePermissionDenied  = consumer.CodePermissionDenied
)

// fromLedger maps a ledger failure (see consumer.FromLedger). A resource
// the ledger does not know refuses the payment (422): the invoice itself
// exists.
func fromLedger(err error) *consumer.Error {
	e := consumer.FromLedger(err, "the ledger did not confirm the payment; it stays PAYING and is retried with the same idempotency key")
	if e.Kind == consumer.KindNotFound {
		e.Kind = consumer.KindRefused
	}
	return e
}
