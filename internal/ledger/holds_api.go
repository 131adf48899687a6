package ledger

import (
	"context"
	"time"
)

// Holds, reversals, expiry and statements (SPEC §9): the inputs and
// results of the Service's methods.

// Bounds of holds and expiry.
const (
	// MaxHoldTTL bounds a hold's life.
	MaxHoldTTL = 30 * 24 * time.Hour
	// DefaultHoldTTL is a hold's life when neither expire time nor TTL is given.
	DefaultHoldTTL = 15 * time.Minute
	// MaxValidity bounds how far ahead credits may expire.
	MaxValidity = 10 * 366 * 24 * time.Hour
)

// CreateHoldInput reserves credits of an account.
type CreateHoldInput struct {
	Workspace      string
	Account        string
	Amount         int64
	Kind           Kind // SERVICE_PURCHASE (default), INVOICE_PAYMENT, ADJUSTMENT
	Reference      string
	ExpireTime     time.Time     // or TTL; neither: DefaultHoldTTL
	TTL            time.Duration // at most MaxHoldTTL
	IdempotencyKey string
	Metadata       map[string]string
}

// CaptureHoldInput spends a hold: Amount (0: all of it) as one OUT entry.
type CaptureHoldInput struct {
	Workspace      string
	HoldID         string
	Amount         int64
	IdempotencyKey string
}

// VoidHoldInput releases a hold.
type VoidHoldInput struct {
	Workspace      string
	HoldID         string
	IdempotencyKey string
}

// HoldResult is the outcome of CreateHold, CaptureHold or VoidHold.
type HoldResult struct {
	Hold Hold
	// Available is the account's available credits after the operation.
	Available int64
	// Transaction is the entry a capture posted.
	Transaction *Transaction
	Replayed    bool
}

// ListHoldsInput selects a page of an account's holds, newest first.
type ListHoldsInput struct {
	Workspace string
	Account   string
	Status    HoldStatus
	PageSize  int32
	PageToken string
}

// HoldPage is a page of holds.
type HoldPage struct {
	Holds         []Hold
	NextPageToken string
}

// ReverseInput reverses an entry, in whole (Amount 0) or in part.
type ReverseInput struct {
	Workspace      string
	TransactionID  string
	Amount         int64
	Reason         string
	Reference      string // "" : the reason, cut to MaxReferenceLength
	IdempotencyKey string
	Metadata       map[string]string
}

// ReverseResult carries the REVERSAL entry and the reversed one.
type ReverseResult struct {
	Transaction Transaction
	Original    Transaction // with its ReversedAmount after this reversal
	Balance     int64
	Version     int64
	Replayed    bool
}

// ExpiryReport says what one sweep released or expired.
type ExpiryReport struct {
	Holds  int // holds expired
	Grants int // grants whose remainder was posted as EXPIRY
	// Deferred counts due grants left for a later sweep because active
	// holds still reserve part of them.
	Deferred int
}

// ExpiryService is the part of the Service the server's expiry loop needs.
type ExpiryService interface {
	ExpireDue(ctx context.Context) (ExpiryReport, error)
}
