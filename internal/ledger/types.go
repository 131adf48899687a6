// Package ledger is the CreditLedger domain: accounts, transactions, credit
// requests, packages, conversion rates and settings, the rules that govern
// them, validation, idempotency, optimistic versioning, and the Store
// interface the rules need. It knows nothing of gRPC, HTTP or SQL.
package ledger

import (
	"slices"
	"time"
)

// TxType says whether a transaction added (In) or removed (Out) credits.
type TxType int

// Transaction types. The zero value means "unspecified".
const (
	TypeUnspecified TxType = iota
	TypeIn
	TypeOut
)

// String returns the stored name of the type.
func (t TxType) String() string {
	switch t {
	case TypeIn:
		return "IN"
	case TypeOut:
		return "OUT"
	default:
		return "UNSPECIFIED"
	}
}

// ParseTxType parses a stored type name.
func ParseTxType(s string) (TxType, bool) {
	switch s {
	case "IN":
		return TypeIn, true
	case "OUT":
		return TypeOut, true
	}
	return TypeUnspecified, false
}

// Kind says why a transaction was posted.
type Kind int

// Transaction kinds. The zero value means "unspecified".
const (
	KindUnspecified Kind = iota
	KindPurchase
	KindRequestApproved
	KindServicePurchase
	KindInvoicePayment
	KindRefund
	KindAdjustment
	// KindReversal is the opposite of an earlier entry (ReverseTransaction).
	KindReversal
	// KindExpiry is the unspent remainder of a grant at its expiry, posted
	// by the server.
	KindExpiry
)

var kindNames = [...]string{"UNSPECIFIED", "PURCHASE", "REQUEST_APPROVED", "SERVICE_PURCHASE", "INVOICE_PAYMENT", "REFUND", "ADJUSTMENT", "REVERSAL", "EXPIRY"}

// String returns the stored name of the kind.
func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return "UNSPECIFIED"
	}
	return kindNames[k]
}

// ParseKind parses a stored kind name.
func ParseKind(s string) (Kind, bool) {
	for i, n := range kindNames {
		if i > 0 && n == s {
			return Kind(i), true
		}
	}
	return KindUnspecified, false
}

// Transaction is one immutable ledger entry on one account.
type Transaction struct {
	ID             string
	Workspace      string
	Account        string
	Type           TxType
	Kind           Kind
	Amount         int64
	BalanceAfter   int64
	AccountVersion int64
	Reference      string
	IdempotencyKey string
	Metadata       map[string]string
	PackageID      string
	RequestID      string
	CreateTime     time.Time
	// ReversesTransactionID links a REVERSAL entry to the entry it reverses.
	ReversesTransactionID string
	// HoldID links an entry posted by a capture to its hold.
	HoldID string
	// ExpireTime is when the unspent credits of an IN entry expire (zero:
	// never); the entry is then a grant (see Grant).
	ExpireTime time.Time
	// ReversedAmount is what the REVERSAL entries of this entry sum to.
	// Stores compute it when they read an entry; it is not written.
	ReversedAmount int64
}

// Account is the stored state of one client's wallet.
type Account struct {
	Workspace  string
	ID         string
	Balance    int64
	Version    int64
	UpdateTime time.Time // zero before the first transaction
	// Held is the sum of the account's ACTIVE holds; 0 ≤ Held ≤ Balance.
	// It changes with the account's moves but does not version them: a
	// hold posts no entry.
	Held int64
}

// Available is what the account can spend or hold now.
func (a Account) Available() int64 { return a.Balance - a.Held }

// Balance is an account's state as shown to callers.
type Balance struct {
	Account
	CreditPaymentsEnabled bool
	PendingRequestCredits int64
	// NextExpireTime is when the next grant of the account expires (zero:
	// none will); NextExpiringCredits what of it is still unspent.
	NextExpireTime      time.Time
	NextExpiringCredits int64
}

// Settings are a workspace's credit settings.
type Settings struct {
	Workspace             string
	CreditPaymentsEnabled bool
	// RequireDistinctApprover: the submitter of a request cannot decide it.
	RequireDistinctApprover bool
	// PaymentMethodsSet says the agency chose PaymentMethods. A workspace
	// that never chose offers every method (see Offers): the zero value
	// of Settings is the default.
	PaymentMethodsSet bool
	// PaymentMethods are the methods offered when PaymentMethodsSet, in
	// PaymentMethod order, each once; empty offers none.
	PaymentMethods []PaymentMethod
	// LowBalanceThreshold is the balance below which an account's balance
	// is low (see LowBalance); 0 turns it off. 0 ≤ it ≤ MaxBalance.
	LowBalanceThreshold int64
	UpdateTime          time.Time // zero while the defaults apply
}

// Offers reports whether the workspace offers payment method m.
func (s Settings) Offers(m PaymentMethod) bool {
	if !s.PaymentMethodsSet {
		return m.Valid()
	}
	return slices.Contains(s.PaymentMethods, m)
}

// OfferedPaymentMethods returns the methods the workspace offers, in
// PaymentMethod order: every method while the agency never chose.
func (s Settings) OfferedPaymentMethods() []PaymentMethod {
	if !s.PaymentMethodsSet {
		return AllPaymentMethods()
	}
	return slices.Clone(s.PaymentMethods)
}

// LowBalance reports whether balance is below the workspace's low-balance
// threshold (never, while the threshold is 0).
func (s Settings) LowBalance(balance int64) bool {
	return s.LowBalanceThreshold > 0 && balance < s.LowBalanceThreshold
}

// LowBalanceCrossed reports whether a move from balance before to balance
// after crosses below the threshold: it was not low, and now is.
func (s Settings) LowBalanceCrossed(before, after int64) bool {
	return !s.LowBalance(before) && s.LowBalance(after)
}

// PaymentMethod is how a client pays for credits: BANK_TRANSFER and
// CRYPTO by a credit request the agency decides, STRIPE and PAYPAL
// instantly (the provider confirms, a service credits).
type PaymentMethod int

// Payment methods, numbered as in the API.
const (
	MethodUnspecified PaymentMethod = iota
	MethodBankTransfer
	MethodCrypto
	MethodStripe
	MethodPayPal
)

var methodNames = [...]string{"UNSPECIFIED", "BANK_TRANSFER", "CRYPTO", "STRIPE", "PAYPAL"}

// AllPaymentMethods returns every payment method, in order: what a
// workspace offers until its agency chooses.
func AllPaymentMethods() []PaymentMethod {
	return []PaymentMethod{MethodBankTransfer, MethodCrypto, MethodStripe, MethodPayPal}
}

// Valid reports whether m is a payment method (not unspecified or unknown).
func (m PaymentMethod) Valid() bool { return m > MethodUnspecified && int(m) < len(methodNames) }

// Manual reports whether m is paid by a credit request the agency decides.
func (m PaymentMethod) Manual() bool { return m == MethodBankTransfer || m == MethodCrypto }

// String returns the stored name of the method.
func (m PaymentMethod) String() string {
	if !m.Valid() {
		return "UNSPECIFIED"
	}
	return methodNames[m]
}

// ParsePaymentMethod parses a stored method name.
func ParsePaymentMethod(s string) (PaymentMethod, bool) {
	for i, n := range methodNames {
		if i > 0 && n == s {
			return PaymentMethod(i), true
		}
	}
	return MethodUnspecified, false
}

// RequestStatus is the life cycle of a credit request: PENDING, then
// exactly once ACCEPTED, REJECTED or CANCELLED.
type RequestStatus int

// Request statuses.
const (
	StatusUnspecified RequestStatus = iota
	StatusPending
	StatusAccepted
	StatusRejected
	// StatusCancelled: withdrawn by the client (or for it) before a
	// decision; nothing was posted.
	StatusCancelled
)

var statusNames = [...]string{"UNSPECIFIED", "PENDING", "ACCEPTED", "REJECTED", "CANCELLED"}

// String returns the stored name of the status.
func (s RequestStatus) String() string {
	if s < 0 || int(s) >= len(statusNames) {
		return "UNSPECIFIED"
	}
	return statusNames[s]
}

// ParseRequestStatus parses a stored status name.
func ParseRequestStatus(s string) (RequestStatus, bool) {
	for i, n := range statusNames {
		if i > 0 && n == s {
			return RequestStatus(i), true
		}
	}
	return StatusUnspecified, false
}

// Decision is the agency's verdict on a request.
type Decision int

// Decisions.
const (
	DecisionUnspecified Decision = iota
	DecisionAccept
	DecisionReject
)

// String names the decision.
func (d Decision) String() string {
	switch d {
	case DecisionAccept:
		return "ACCEPT"
	case DecisionReject:
		return "REJECT"
	default:
		return "UNSPECIFIED"
	}
}

// CreditRequest is a manual credit purchase waiting for, or decided by, the agency.
type CreditRequest struct {
	ID               string
	Workspace        string
	Account          string
	Amount           int64
	PackageID        string
	PaymentMethod    PaymentMethod
	PaymentReference string
	Note             string
	Status           RequestStatus
	DecisionReason   string
	DecidedBy        string
	DecideTime       time.Time
	TransactionID    string
	Metadata         map[string]string
	IdempotencyKey   string
	CreateTime       time.Time
	// SubmittedBy is the authenticated subject that submitted the request.
	SubmittedBy string
	// Validity is the package's validity when the request was submitted:
	// the credits of the accepted request expire this long after the
	// decision (zero: never).
	Validity time.Duration
	// Seq is the request's place in the workspace's request sequence,
	// assigned when its batch commits: the queue's commit order.
	Seq int64
}

// Package is a bundle of credits clients can buy.
type Package struct {
	Workspace   string
	ID          string
	DisplayName string
	Credits     int64
	Price       Money
	Active      bool
	CreateTime  time.Time
	UpdateTime  time.Time
	// Validity is how long credits bought from the package last (zero:
	// forever).
	Validity time.Duration
}

// ConversionRate is how many credits one unit of a currency buys.
type ConversionRate struct {
	Workspace  string
	Currency   string
	Rate       Decimal
	Active     bool
	CreateTime time.Time
}

// Operation names an idempotent operation; it is part of the fingerprint.
type Operation string

// Idempotent operations.
const (
	OpCredit        Operation = "credit"
	OpDebit         Operation = "debit"
	OpSubmitRequest Operation = "submit_request"
	OpDecideRequest Operation = "decide_request"
	OpCancelRequest Operation = "cancel_request"
	OpCreateHold    Operation = "create_hold"
	OpCaptureHold   Operation = "capture_hold"
	OpVoidHold      Operation = "void_hold"
	OpReverse       Operation = "reverse"
)

// IdempotencyRecord remembers a posted outcome under its key.
type IdempotencyRecord struct {
	Workspace     string
	Key           string
	Operation     Operation
	Fingerprint   []byte // sha-256 of the request's meaning
	TransactionID string // the posted transaction (credit, debit, accepted decision, capture, reversal)
	RequestID     string // the credit request (submit, decide, cancel)
	HoldID        string // the hold (create, capture, void)
	CreateTime    time.Time
}
