package grpcserver

import (
	"context"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledger"
)

// LedgerServer implements creditledger.v1.CreditLedger over a ledger.Service.
//
// Handlers only convert: request → domain input, domain result → response.
// They return domain errors unchanged; the interceptor chain built by
// NewServer turns every error into a gRPC status in one place (toStatus).
type LedgerServer struct {
	pb.UnimplementedCreditLedgerServer
	svc *ledger.Service
}

// NewLedgerServer returns the CreditLedger service over svc.
func NewLedgerServer(svc *ledger.Service) *LedgerServer { return &LedgerServer{svc: svc} }

// Credit adds credits to an account.
func (s *LedgerServer) Credit(ctx context.Context, r *pb.CreditRequest) (*pb.CreditResponse, error) {
	in, err := fromProtoCredit(r)
	if err != nil {
		return nil, err
	}
	res, err := s.svc.Credit(ctx, in)
	if err != nil {
		return nil, err
	}
	return &pb.CreditResponse{
		Transaction: toProtoTransaction(res.Transaction),
		Balance:     res.Balance,
		Version:     res.Version,
		Replayed:    res.Replayed,
	}, nil
}

// Debit deducts credits from an account.
func (s *LedgerServer) Debit(ctx context.Context, r *pb.DebitRequest) (*pb.DebitResponse, error) {
	in, err := fromProtoDebit(r)
	if err != nil {
		return nil, err
	}
	res, err := s.svc.Debit(ctx, in)
	if err != nil {
		return nil, err
	}
	return &pb.DebitResponse{
		Transaction: toProtoTransaction(res.Transaction),
		Balance:     res.Balance,
		Version:     res.Version,
		Replayed:    res.Replayed,
	}, nil
}

// GetBalance returns an account's balance and version.
func (s *LedgerServer) GetBalance(ctx context.Context, r *pb.GetBalanceRequest) (*pb.GetBalanceResponse, error) {
	b, err := s.svc.GetBalance(ctx, r.GetWorkspace(), r.GetAccount(), ledger.MinVersion(r.GetMinVersion()))
	if err != nil {
		return nil, err
	}
	return &pb.GetBalanceResponse{Balance: toProtoBalance(b)}, nil
}

// ListTransactions returns a page of an account's history, newest first.
func (s *LedgerServer) ListTransactions(ctx context.Context, r *pb.ListTransactionsRequest) (*pb.ListTransactionsResponse, error) {
	in, err := fromProtoListTransactions(r)
	if err != nil {
		return nil, err
	}
	page, err := s.svc.ListTransactions(ctx, in)
	if err != nil {
		return nil, err
	}
	return &pb.ListTransactionsResponse{
		Transactions:  toProtoTransactions(page.Transactions),
		NextPageToken: page.NextPageToken,
	}, nil
}

// SubmitRequest records a manual credit purchase as PENDING.
func (s *LedgerServer) SubmitRequest(ctx context.Context, r *pb.SubmitRequestRequest) (*pb.SubmitRequestResponse, error) {
	in, err := fromProtoSubmit(r)
	if err != nil {
		return nil, err
	}
	in.SubmittedBy = actor(ctx, "")
	res, err := s.svc.SubmitRequest(ctx, in)
	if err != nil {
		return nil, err
	}
	return &pb.SubmitRequestResponse{Request: toProtoCreditRequest(res.Request), Replayed: res.Replayed}, nil
}

// DecideRequest accepts or rejects a pending request.
func (s *LedgerServer) DecideRequest(ctx context.Context, r *pb.DecideRequestRequest) (*pb.DecideRequestResponse, error) {
	in, err := fromProtoDecide(r)
	if err != nil {
		return nil, err
	}
	in.DecidedBy = actor(ctx, r.GetDecidedBy())
	res, err := s.svc.DecideRequest(ctx, in)
	if err != nil {
		return nil, err
	}
	out := &pb.DecideRequestResponse{Request: toProtoCreditRequest(res.Request), Replayed: res.Replayed}
	if res.Transaction != nil {
		out.Transaction = toProtoTransaction(*res.Transaction)
	}
	return out, nil
}

// CancelRequest withdraws a pending request. A client's token cancels its
// own account's requests only: the domain finds another's as absent, in
// the same batch that cancels it.
func (s *LedgerServer) CancelRequest(ctx context.Context, r *pb.CancelRequestRequest) (*pb.CancelRequestResponse, error) {
	in := fromProtoCancel(r)
	in.Account, in.CancelledBy = clientAccount(ctx), actor(ctx, "")
	res, err := s.svc.CancelRequest(ctx, in)
	if err != nil {
		return nil, err
	}
	return &pb.CancelRequestResponse{Request: toProtoCreditRequest(res.Request), Replayed: res.Replayed}, nil
}

// GetRequest returns one credit request.
func (s *LedgerServer) GetRequest(ctx context.Context, r *pb.GetRequestRequest) (*pb.GetRequestResponse, error) {
	req, err := s.svc.GetRequest(ctx, r.GetWorkspace(), r.GetRequestId())
	if err != nil {
		return nil, err
	}
	// A client reads its own requests; another client's is as absent as
	// an unknown one.
	if acct := clientAccount(ctx); acct != "" && req.Account != acct {
		return nil, ledger.NotFoundError("credit request", r.GetRequestId())
	}
	return &pb.GetRequestResponse{Request: toProtoCreditRequest(req)}, nil
}

// ListRequests returns a page of credit requests.
func (s *LedgerServer) ListRequests(ctx context.Context, r *pb.ListRequestsRequest) (*pb.ListRequestsResponse, error) {
	in, err := fromProtoListRequests(r)
	if err != nil {
		return nil, err
	}
	page, err := s.svc.ListRequests(ctx, in)
	if err != nil {
		return nil, err
	}
	out := &pb.ListRequestsResponse{
		Requests:      make([]*pb.CreditPurchaseRequest, len(page.Requests)),
		NextPageToken: page.NextPageToken,
	}
	for i, req := range page.Requests {
		out.Requests[i] = toProtoCreditRequest(req)
	}
	return out, nil
}

// CheckCreditPayment says whether the account can pay with credits.
func (s *LedgerServer) CheckCreditPayment(ctx context.Context, r *pb.CheckCreditPaymentRequest) (*pb.CheckCreditPaymentResponse, error) {
	res, err := s.svc.CheckCreditPayment(ctx, fromProtoCheck(r))
	if err != nil {
		return nil, err
	}
	return &pb.CheckCreditPaymentResponse{
		Allowed:               res.Allowed,
		CreditsRequired:       res.CreditsRequired,
		Balance:               res.Balance,
		Version:               res.Version,
		CreditPaymentsEnabled: res.CreditPaymentsEnabled,
		Reason:                res.Reason,
	}, nil
}

// ListAccounts returns a page of the workspace's accounts with balances.
func (s *LedgerServer) ListAccounts(ctx context.Context, r *pb.ListAccountsRequest) (*pb.ListAccountsResponse, error) {
	page, err := s.svc.ListAccounts(ctx, ledger.ListAccountsInput{
		Workspace: r.GetWorkspace(), PageSize: r.GetPageSize(), PageToken: r.GetPageToken(),
	})
	if err != nil {
		return nil, err
	}
	out := &pb.ListAccountsResponse{
		Accounts:      make([]*pb.Balance, len(page.Accounts)),
		NextPageToken: page.NextPageToken,
	}
	for i, b := range page.Accounts {
		out.Accounts[i] = toProtoBalance(b)
	}
	return out, nil
}
