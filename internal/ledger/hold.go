package ledger

import "time"

// HoldStatus is where a hold is in its life: Active, then exactly one of
// the others, once.
type HoldStatus int

// Hold statuses. The zero value means "unspecified" (as a filter: any).
const (
	HoldUnspecified HoldStatus = iota
	HoldActive
	HoldCaptured
	HoldVoided
	HoldExpired
)

var holdStatusNames = [...]string{"UNSPECIFIED", "ACTIVE", "CAPTURED", "VOIDED", "EXPIRED"}

// String returns the stored name of the status.
func (h HoldStatus) String() string {
	if h < 0 || int(h) >= len(holdStatusNames) {
		return "UNSPECIFIED"
	}
	return holdStatusNames[h]
}

// ParseHoldStatus parses a stored status name.
func ParseHoldStatus(s string) (HoldStatus, bool) {
	for i, n := range holdStatusNames {
		if i > 0 && n == s {
			return HoldStatus(i), true
		}
	}
	return HoldUnspecified, false
}

// Hold reserves credits of an account: Account.Held counts every Active
// hold, and Available (balance − held) is what can be spent or held.
type Hold struct {
	ID         string
	Workspace  string
	Account    string
	Amount     int64
	Kind       Kind // the kind of the captured entry (a debit kind)
	Reference  string
	Metadata   map[string]string
	Status     HoldStatus
	ExpireTime time.Time
	// CapturedAmount and TransactionID are set by the capture.
	CapturedAmount int64
	TransactionID  string
	IdempotencyKey string
	CreateTime     time.Time
	UpdateTime     time.Time // when the hold left Active; zero while Active
}

// Grant is the unspent part of credits that expire: an IN entry with an
// ExpireTime. Spending draws from an account's grants soonest-expiring
// first (non-expiring credits last); at ExpireTime the remainder is posted
// as one EXPIRY entry, exactly once. An account's credits are its grants'
// remainders plus the non-expiring rest: Σ Remaining ≤ Balance.
//
// Holds reserve in the same order: an Active hold's credits are the first
// ones of the account in that order, so a grant whose credits are held
// expires only once its held part is spent or released (never later than
// the holds' own expiry).
type Grant struct {
	Workspace     string
	Account       string
	TransactionID string // the IN entry that granted the credits; the grant's ID
	Amount        int64  // granted
	Remaining     int64  // unspent, 0 ≤ Remaining ≤ Amount
	ExpireTime    time.Time
	// ExpiryTransactionID is the EXPIRY entry, once posted; the grant is
	// then closed (Remaining 0).
	ExpiryTransactionID string
}

// Statement sums an account's entries over [Start, End).
type Statement struct {
	Workspace      string
	Account        string
	Start, End     time.Time
	OpeningBalance int64 // balance after the last entry before Start
	ClosingBalance int64 // balance after the last entry before End
	TotalIn        int64
	TotalOut       int64
	Count          int64
	Lines          []StatementLine // by type, then kind
}

// StatementLine sums the entries of one type and kind.
type StatementLine struct {
	Type   TxType
	Kind   Kind
	Amount int64
	Count  int64
}
