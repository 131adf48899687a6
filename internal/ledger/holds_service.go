package ledger

import (
	"context"
	"time"
)

// errUnbuilt answers the operations of SPEC §9 while they are built.
func errUnbuilt(what string) error {
	return newErr(CodeInternal, ReasonInternal, what+" is not available yet", nil)
}

// CreateHold reserves credits: available (balance − held) must cover the
// amount, and credit payments must be on.
func (s *Service) CreateHold(ctx context.Context, in CreateHoldInput) (HoldResult, error) {
	return HoldResult{}, errUnbuilt("CreateHold")
}

// CaptureHold spends an Active hold (in whole or in part) as one OUT entry
// of its kind and releases the rest; it never fails for lack of credits.
func (s *Service) CaptureHold(ctx context.Context, in CaptureHoldInput) (HoldResult, error) {
	return HoldResult{}, errUnbuilt("CaptureHold")
}

// VoidHold releases an Active hold.
func (s *Service) VoidHold(ctx context.Context, in VoidHoldInput) (HoldResult, error) {
	return HoldResult{}, errUnbuilt("VoidHold")
}

// GetHold returns one hold of the workspace.
func (s *Service) GetHold(ctx context.Context, workspace, id string) (Hold, error) {
	return Hold{}, errUnbuilt("GetHold")
}

// ListHolds returns a page of an account's holds, newest first.
func (s *Service) ListHolds(ctx context.Context, in ListHoldsInput) (HoldPage, error) {
	return HoldPage{}, errUnbuilt("ListHolds")
}

// ReverseTransaction posts the opposite of an entry (in whole or in part)
// as a REVERSAL entry linked to it.
func (s *Service) ReverseTransaction(ctx context.Context, in ReverseInput) (ReverseResult, error) {
	return ReverseResult{}, errUnbuilt("ReverseTransaction")
}

// GetTransaction returns one entry of the workspace, with its ReversedAmount.
func (s *Service) GetTransaction(ctx context.Context, workspace, id string) (Transaction, error) {
	return Transaction{}, errUnbuilt("GetTransaction")
}

// GetStatement sums an account's entries over [start, end).
func (s *Service) GetStatement(ctx context.Context, workspace, account string, start, end time.Time) (Statement, error) {
	return Statement{}, errUnbuilt("GetStatement")
}

// ExportTransactions calls fn for each of the account's entries created in
// [start, end) (zero: unbounded), oldest first, reading the history in
// pages so that a long export holds no transaction open.
func (s *Service) ExportTransactions(ctx context.Context, workspace, account string, start, end time.Time, fn func(Transaction) error) error {
	return errUnbuilt("ExportTransactions")
}

// ExpireDue releases every due hold and expires every due grant of every
// workspace, through the batched write path: with several replicas
// sweeping at once, each hold and grant still ends exactly once.
func (s *Service) ExpireDue(ctx context.Context) (ExpiryReport, error) {
	return ExpiryReport{}, errUnbuilt("ExpireDue")
}
