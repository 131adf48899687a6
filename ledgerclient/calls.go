package ledgerclient

import (
	"context"
	"iter"

	"google.golang.org/grpc"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
)

// The typed methods below are the generated RPCs with the client's policy
// (see the package comment). Writes that take an idempotency_key are
// retried only when it is set; set it to something derived from the
// caller's own durable record (an order id, a provider payment id), never
// to a fresh random value per attempt.

// Credit adds credits (instant purchase, refund, adjustment).
func (c *Client) Credit(ctx context.Context, req *pb.CreditRequest) (*pb.CreditResponse, error) {
	return c.ledger.Credit(ctx, req)
}

// Debit deducts credits (service purchase, invoice payment).
func (c *Client) Debit(ctx context.Context, req *pb.DebitRequest) (*pb.DebitResponse, error) {
	return c.ledger.Debit(ctx, req)
}

// GetBalance returns an account's balance.
func (c *Client) GetBalance(ctx context.Context, req *pb.GetBalanceRequest) (*pb.GetBalanceResponse, error) {
	return c.ledger.GetBalance(ctx, req)
}

// Balance is GetBalance for one account, returning the Balance itself.
func (c *Client) Balance(ctx context.Context, workspace, account string) (*pb.Balance, error) {
	res, err := c.ledger.GetBalance(ctx, &pb.GetBalanceRequest{Workspace: workspace, Account: account})
	if err != nil {
		return nil, err
	}
	return res.GetBalance(), nil
}

// ListTransactions returns one page of an account's history, newest first.
func (c *Client) ListTransactions(ctx context.Context, req *pb.ListTransactionsRequest) (*pb.ListTransactionsResponse, error) {
	return c.ledger.ListTransactions(ctx, req)
}

// Transactions iterates over every page of an account's history, newest
// first, from req (whose page_token is ignored). It stops at the first error,
// which it yields.
func (c *Client) Transactions(ctx context.Context, req *pb.ListTransactionsRequest) iter.Seq2[*pb.Transaction, error] {
	return func(yield func(*pb.Transaction, error) bool) {
		page := &pb.ListTransactionsRequest{
			Workspace: req.GetWorkspace(), Account: req.GetAccount(), PageSize: req.GetPageSize(),
			Type: req.GetType(), Kind: req.GetKind(), StartTime: req.GetStartTime(), EndTime: req.GetEndTime(),
		}
		for {
			res, err := c.ledger.ListTransactions(ctx, page)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, t := range res.GetTransactions() {
				if !yield(t, nil) {
					return
				}
			}
			if res.GetNextPageToken() == "" {
				return
			}
			page.PageToken = res.GetNextPageToken()
		}
	}
}

// SubmitRequest records a manual credit purchase (bank transfer, crypto).
func (c *Client) SubmitRequest(ctx context.Context, req *pb.SubmitRequestRequest) (*pb.SubmitRequestResponse, error) {
	return c.ledger.SubmitRequest(ctx, req)
}

// DecideRequest accepts or rejects a pending credit request.
func (c *Client) DecideRequest(ctx context.Context, req *pb.DecideRequestRequest) (*pb.DecideRequestResponse, error) {
	return c.ledger.DecideRequest(ctx, req)
}

// CancelRequest withdraws a pending credit request (a client its own,
// the agency any). A request no longer pending is ErrRequestAlreadyDecided.
// Retried with the same request, so the same idempotency key.
func (c *Client) CancelRequest(ctx context.Context, req *pb.CancelRequestRequest) (*pb.CancelRequestResponse, error) {
	return c.ledger.CancelRequest(ctx, req)
}

// GetRequest returns one credit request.
func (c *Client) GetRequest(ctx context.Context, req *pb.GetRequestRequest) (*pb.GetRequestResponse, error) {
	return c.ledger.GetRequest(ctx, req)
}

// ListRequests returns one page of credit requests.
func (c *Client) ListRequests(ctx context.Context, req *pb.ListRequestsRequest) (*pb.ListRequestsResponse, error) {
	return c.ledger.ListRequests(ctx, req)
}

// CheckCreditPayment says whether an account may pay a price or an amount
// of credits with credits, and why not.
func (c *Client) CheckCreditPayment(ctx context.Context, req *pb.CheckCreditPaymentRequest) (*pb.CheckCreditPaymentResponse, error) {
	return c.ledger.CheckCreditPayment(ctx, req)
}

// ListAccounts returns one page of a workspace's accounts with balances.
func (c *Client) ListAccounts(ctx context.Context, req *pb.ListAccountsRequest) (*pb.ListAccountsResponse, error) {
	return c.ledger.ListAccounts(ctx, req)
}

// CreateHold reserves credits of an account (available = balance − held
// must cover them) until they are captured, voided or expire. Retried with
// the same request, so the same idempotency key, like Debit.
func (c *Client) CreateHold(ctx context.Context, req *pb.CreateHoldRequest) (*pb.CreateHoldResponse, error) {
	return c.ledger.CreateHold(ctx, req)
}

// CaptureHold spends an ACTIVE hold (in whole or in part) as one OUT entry.
// A second capture with another key, or of a hold voided or expired, is
// ErrHoldNotActive; the same key replays the first capture.
func (c *Client) CaptureHold(ctx context.Context, req *pb.CaptureHoldRequest) (*pb.CaptureHoldResponse, error) {
	return c.ledger.CaptureHold(ctx, req)
}

// VoidHold releases an ACTIVE hold; nothing is posted.
func (c *Client) VoidHold(ctx context.Context, req *pb.VoidHoldRequest) (*pb.VoidHoldResponse, error) {
	return c.ledger.VoidHold(ctx, req)
}

// GetHold returns one hold.
func (c *Client) GetHold(ctx context.Context, req *pb.GetHoldRequest) (*pb.GetHoldResponse, error) {
	return c.ledger.GetHold(ctx, req)
}

// Hold is GetHold returning the Hold itself.
func (c *Client) Hold(ctx context.Context, workspace, holdID string) (*pb.Hold, error) {
	res, err := c.ledger.GetHold(ctx, &pb.GetHoldRequest{Workspace: workspace, HoldId: holdID})
	if err != nil {
		return nil, err
	}
	return res.GetHold(), nil
}

// ListHolds returns one page of an account's holds, newest first.
func (c *Client) ListHolds(ctx context.Context, req *pb.ListHoldsRequest) (*pb.ListHoldsResponse, error) {
	return c.ledger.ListHolds(ctx, req)
}

// ReverseTransaction posts the opposite of an entry, in whole or in part,
// as a REVERSAL entry (a refund of a service bought with credits).
func (c *Client) ReverseTransaction(ctx context.Context, req *pb.ReverseTransactionRequest) (*pb.ReverseTransactionResponse, error) {
	return c.ledger.ReverseTransaction(ctx, req)
}

// GetTransaction returns one entry, with what of it was reversed.
func (c *Client) GetTransaction(ctx context.Context, req *pb.GetTransactionRequest) (*pb.GetTransactionResponse, error) {
	return c.ledger.GetTransaction(ctx, req)
}

// ListEvents returns one page of a workspace's events after a sequence, in
// sequence order.
func (c *Client) ListEvents(ctx context.Context, req *pb.ListEventsRequest) (*pb.ListEventsResponse, error) {
	return c.ledger.ListEvents(ctx, req)
}

// WatchEvents opens a stream of a workspace's events after a sequence. It
// has no deadline and is not retried: use Follow for a stream that
// resumes after a break.
func (c *Client) WatchEvents(ctx context.Context, req *pb.WatchEventsRequest) (grpc.ServerStreamingClient[pb.WatchEventsResponse], error) {
	return c.ledger.WatchEvents(ctx, req)
}

// GetSettings returns a workspace's settings.
func (c *Client) GetSettings(ctx context.Context, req *pb.GetSettingsRequest) (*pb.GetSettingsResponse, error) {
	return c.settings.GetSettings(ctx, req)
}

// UpdateSettings changes the settings named in the update mask.
func (c *Client) UpdateSettings(ctx context.Context, req *pb.UpdateSettingsRequest) (*pb.UpdateSettingsResponse, error) {
	return c.settings.UpdateSettings(ctx, req)
}

// SetCreditPaymentsEnabled switches credit payments of a workspace on or off.
func (c *Client) SetCreditPaymentsEnabled(ctx context.Context, workspace string, enabled bool) (*pb.Settings, error) {
	res, err := c.settings.UpdateSettings(ctx, &pb.UpdateSettingsRequest{
		Workspace:  workspace,
		Settings:   &pb.Settings{CreditPaymentsEnabled: enabled},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"credit_payments_enabled"}},
	})
	if err != nil {
		return nil, err
	}
	return res.GetSettings(), nil
}

// CreatePackage creates a credit package. Give it a package_id to make the
// call retryable.
func (c *Client) CreatePackage(ctx context.Context, req *pb.CreatePackageRequest) (*pb.CreatePackageResponse, error) {
	return c.settings.CreatePackage(ctx, req)
}

// ListPackages returns one page of packages.
func (c *Client) ListPackages(ctx context.Context, req *pb.ListPackagesRequest) (*pb.ListPackagesResponse, error) {
	return c.settings.ListPackages(ctx, req)
}

// GetPackage returns one package.
func (c *Client) GetPackage(ctx context.Context, req *pb.GetPackageRequest) (*pb.GetPackageResponse, error) {
	return c.settings.GetPackage(ctx, req)
}

// UpdatePackage changes the package fields named in the update mask.
func (c *Client) UpdatePackage(ctx context.Context, req *pb.UpdatePackageRequest) (*pb.UpdatePackageResponse, error) {
	return c.settings.UpdatePackage(ctx, req)
}

// ArchivePackage makes a package inactive.
func (c *Client) ArchivePackage(ctx context.Context, req *pb.ArchivePackageRequest) (*pb.ArchivePackageResponse, error) {
	return c.settings.ArchivePackage(ctx, req)
}

// SetConversionRate sets a currency's active rate.
func (c *Client) SetConversionRate(ctx context.Context, req *pb.SetConversionRateRequest) (*pb.SetConversionRateResponse, error) {
	return c.settings.SetConversionRate(ctx, req)
}

// ListConversionRates lists a workspace's rates.
func (c *Client) ListConversionRates(ctx context.Context, req *pb.ListConversionRatesRequest) (*pb.ListConversionRatesResponse, error) {
	return c.settings.ListConversionRates(ctx, req)
}

// Quote converts a price to credits with the workspace's active rate.
func (c *Client) Quote(ctx context.Context, req *pb.QuoteRequest) (*pb.QuoteResponse, error) {
	return c.settings.Quote(ctx, req)
}
