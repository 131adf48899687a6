package grpcserver

import (
	"context"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledger"
)

// Holds, reversals, single entries and statements (SPEC §9). Like the other
// handlers these only convert; ExportTransactions is in export.go.

// CreateHold reserves credits of an account.
func (s *LedgerServer) CreateHold(ctx context.Context, r *pb.CreateHoldRequest) (*pb.CreateHoldResponse, error) {
	in, err := fromProtoCreateHold(r)
	if err != nil {
		return nil, err
	}
	res, err := s.svc.CreateHold(ctx, in)
	if err != nil {
		return nil, err
	}
	return &pb.CreateHoldResponse{Hold: toProtoHold(res.Hold), Available: res.Available, Replayed: res.Replayed}, nil
}

// CaptureHold spends a hold as one OUT entry.
func (s *LedgerServer) CaptureHold(ctx context.Context, r *pb.CaptureHoldRequest) (*pb.CaptureHoldResponse, error) {
	res, err := s.svc.CaptureHold(ctx, ledger.CaptureHoldInput{
		Workspace: r.GetWorkspace(), HoldID: r.GetHoldId(), Amount: r.GetAmount(), IdempotencyKey: r.GetIdempotencyKey(),
	})
	if err != nil {
		return nil, err
	}
	out := &pb.CaptureHoldResponse{Hold: toProtoHold(res.Hold), Replayed: res.Replayed}
	if res.Transaction != nil {
		out.Transaction = toProtoTransaction(*res.Transaction)
	}
	return out, nil
}

// VoidHold releases a hold.
func (s *LedgerServer) VoidHold(ctx context.Context, r *pb.VoidHoldRequest) (*pb.VoidHoldResponse, error) {
	res, err := s.svc.VoidHold(ctx, ledger.VoidHoldInput{
		Workspace: r.GetWorkspace(), HoldID: r.GetHoldId(), IdempotencyKey: r.GetIdempotencyKey(),
	})
	if err != nil {
		return nil, err
	}
	return &pb.VoidHoldResponse{Hold: toProtoHold(res.Hold), Replayed: res.Replayed}, nil
}

// GetHold returns one hold.
func (s *LedgerServer) GetHold(ctx context.Context, r *pb.GetHoldRequest) (*pb.GetHoldResponse, error) {
	h, err := s.svc.GetHold(ctx, r.GetWorkspace(), r.GetHoldId())
	if err != nil {
		return nil, err
	}
	// The request names no account: a client token's is checked on the
	// answer, and another client's hold is as absent as an unknown one.
	if acct := clientAccount(ctx); acct != "" && h.Account != acct {
		return nil, ledger.NotFoundError("hold", r.GetHoldId())
	}
	return &pb.GetHoldResponse{Hold: toProtoHold(h)}, nil
}

// ListHolds returns a page of an account's holds.
func (s *LedgerServer) ListHolds(ctx context.Context, r *pb.ListHoldsRequest) (*pb.ListHoldsResponse, error) {
	in, err := fromProtoListHolds(r)
	if err != nil {
		return nil, err
	}
	page, err := s.svc.ListHolds(ctx, in)
	if err != nil {
		return nil, err
	}
	out := &pb.ListHoldsResponse{Holds: make([]*pb.Hold, len(page.Holds)), NextPageToken: page.NextPageToken}
	for i, h := range page.Holds {
		out.Holds[i] = toProtoHold(h)
	}
	return out, nil
}

// ReverseTransaction posts the opposite of an entry.
func (s *LedgerServer) ReverseTransaction(ctx context.Context, r *pb.ReverseTransactionRequest) (*pb.ReverseTransactionResponse, error) {
	res, err := s.svc.ReverseTransaction(ctx, fromProtoReverse(r))
	if err != nil {
		return nil, err
	}
	return &pb.ReverseTransactionResponse{
		Transaction: toProtoTransaction(res.Transaction),
		Original:    toProtoTransaction(res.Original),
		Balance:     res.Balance,
		Version:     res.Version,
		Replayed:    res.Replayed,
	}, nil
}

// GetTransaction returns one entry.
func (s *LedgerServer) GetTransaction(ctx context.Context, r *pb.GetTransactionRequest) (*pb.GetTransactionResponse, error) {
	t, err := s.svc.GetTransaction(ctx, r.GetWorkspace(), r.GetTransactionId())
	if err != nil {
		return nil, err
	}
	if acct := clientAccount(ctx); acct != "" && t.Account != acct {
		return nil, ledger.NotFoundError("transaction", r.GetTransactionId())
	}
	return &pb.GetTransactionResponse{Transaction: toProtoTransaction(t)}, nil
}

// GetStatement sums an account's entries over a period.
func (s *LedgerServer) GetStatement(ctx context.Context, r *pb.GetStatementRequest) (*pb.GetStatementResponse, error) {
	start, end, err := fromProtoPeriod(r.GetStartTime(), r.GetEndTime())
	if err != nil {
		return nil, err
	}
	st, err := s.svc.GetStatement(ctx, r.GetWorkspace(), r.GetAccount(), start, end, ledger.MinVersion(r.GetMinVersion()))
	if err != nil {
		return nil, err
	}
	return &pb.GetStatementResponse{Statement: toProtoStatement(st)}, nil
}
