package ledgertest

import (
	"errors"
	"slices"
	"testing"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledger"
)

// Setup and inspection. Each method calls the server's own handlers in
// process: the ledger's rules apply (a Fund is a real Credit, with its
// transaction, version and event), but no token is needed and the call
// is not recorded among Calls. A refusal fails the test. Each first
// waits for the calls whose answer a fault loses to be applied, so that
// it sees, or follows, their effect.

// settle waits for the calls being applied under an After fault.
func (s *Server) settle(tb testing.TB) {
	tb.Helper()
	check(tb, "wait for the faulted calls", s.waitApplied(tb.Context(), ""))
}

// SetEnabled switches credit payments of a workspace on or off
// (UpdateSettings; settings.updated).
func (s *Server) SetEnabled(tb testing.TB, workspace string, enabled bool) {
	tb.Helper()
	s.settle(tb)
	s.updateSettings(tb, workspace, &pb.Settings{CreditPaymentsEnabled: enabled}, "credit_payments_enabled")
}

// SetPaymentMethods makes the workspace offer only methods
// (UpdateSettings; none for an empty list).
func (s *Server) SetPaymentMethods(tb testing.TB, workspace string, methods ...pb.PaymentMethod) {
	tb.Helper()
	s.settle(tb)
	s.updateSettings(tb, workspace, &pb.Settings{PaymentMethods: methods}, "payment_methods")
}

func (s *Server) updateSettings(tb testing.TB, workspace string, st *pb.Settings, path string) {
	tb.Helper()
	_, err := s.settings.UpdateSettings(tb.Context(), &pb.UpdateSettingsRequest{
		Workspace: workspace, Settings: st, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{path}},
	})
	check(tb, "UpdateSettings "+path, err)
}

// SetRate sets the workspace's conversion rate of a currency
// (SetConversionRate: "10", "9.5").
func (s *Server) SetRate(tb testing.TB, workspace, currency, rate string) {
	tb.Helper()
	s.settle(tb)
	_, err := s.settings.SetConversionRate(tb.Context(), &pb.SetConversionRateRequest{Workspace: workspace, CurrencyCode: currency, Rate: rate})
	check(tb, "SetConversionRate", err)
}

// Fund credits an account: a Credit of kind ADJUSTMENT, reference
// "ledgertest:fund". It returns the transaction.
func (s *Server) Fund(tb testing.TB, workspace, account string, credits int64) *pb.Transaction {
	tb.Helper()
	s.settle(tb)
	res, err := s.ledger.Credit(tb.Context(), &pb.CreditRequest{
		Workspace: workspace, Account: account, Amount: credits, Kind: pb.TransactionKind_TRANSACTION_KIND_ADJUSTMENT,
		Reference: "ledgertest:fund", IdempotencyKey: s.setupKey("fund"),
	})
	check(tb, "Fund", err)
	return res.GetTransaction()
}

// CancelRequest has a pending request withdrawn (request.cancelled). It
// reports false when the request is unknown or no longer pending.
func (s *Server) CancelRequest(tb testing.TB, workspace, requestID string) bool {
	tb.Helper()
	s.settle(tb)
	_, err := s.Service.CancelRequest(tb.Context(), ledger.CancelInput{
		Workspace: workspace, RequestID: requestID, CancelledBy: "ledgertest", IdempotencyKey: s.setupKey("cancel"),
	})
	var le *ledger.Error
	if errors.As(err, &le) && (le.Code == ledger.CodeNotFound || le.Reason == ledger.ReasonRequestAlreadyDecided) {
		return false
	}
	check(tb, "CancelRequest", err)
	return true
}

// Balance returns an account's balance and version (GetBalance).
func (s *Server) Balance(tb testing.TB, workspace, account string) (balance, version int64) {
	tb.Helper()
	s.settle(tb)
	res, err := s.ledger.GetBalance(tb.Context(), &pb.GetBalanceRequest{Workspace: workspace, Account: account})
	check(tb, "GetBalance", err)
	return res.GetBalance().GetBalance(), res.GetBalance().GetVersion()
}

// Transactions returns an account's whole history, oldest first
// (ListTransactions, every page).
func (s *Server) Transactions(tb testing.TB, workspace, account string) []*pb.Transaction {
	tb.Helper()
	s.settle(tb)
	var out []*pb.Transaction
	req := &pb.ListTransactionsRequest{Workspace: workspace, Account: account, PageSize: 500}
	for {
		res, err := s.ledger.ListTransactions(tb.Context(), req)
		check(tb, "ListTransactions", err)
		out = append(out, res.GetTransactions()...)
		if req.PageToken = res.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	slices.Reverse(out)
	return out
}

// Hold returns a hold, nil when there is none of that id (GetHold).
func (s *Server) Hold(tb testing.TB, workspace, id string) *pb.Hold {
	tb.Helper()
	s.settle(tb)
	res, err := s.ledger.GetHold(tb.Context(), &pb.GetHoldRequest{Workspace: workspace, HoldId: id})
	var le *ledger.Error
	if errors.As(err, &le) && le.Code == ledger.CodeNotFound {
		return nil
	}
	check(tb, "GetHold", err)
	return res.GetHold()
}

// Holds returns every hold of an account, oldest first (ListHolds, every
// page).
func (s *Server) Holds(tb testing.TB, workspace, account string) []*pb.Hold {
	tb.Helper()
	s.settle(tb)
	var out []*pb.Hold
	req := &pb.ListHoldsRequest{Workspace: workspace, Account: account, PageSize: 500}
	for {
		res, err := s.ledger.ListHolds(tb.Context(), req)
		check(tb, "ListHolds", err)
		out = append(out, res.GetHolds()...)
		if req.PageToken = res.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	slices.Reverse(out)
	return out
}

// Events returns every event of a workspace, in sequence order
// (ListEvents, every page).
func (s *Server) Events(tb testing.TB, workspace string) []*pb.Event {
	tb.Helper()
	s.settle(tb)
	var out []*pb.Event
	req := &pb.ListEventsRequest{Workspace: workspace, PageSize: ledger.MaxEventPage}
	for {
		res, err := s.ledger.ListEvents(tb.Context(), req)
		check(tb, "ListEvents", err)
		out = append(out, res.GetEvents()...)
		if len(res.GetEvents()) == 0 {
			return out
		}
		req.AfterSequence = res.GetLastSequence()
	}
}
