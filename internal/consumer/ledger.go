package consumer

import (
	"context"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
)

// SpendLedger is what a service that spends an account's credits needs of
// the ledger: whether the account may pay with credits, a hold on them,
// its capture or void, and the one-step debit that payments begun before
// holds existed are settled with. *ledgerclient.Client provides it.
type SpendLedger interface {
	CheckCreditPayment(ctx context.Context, req *pb.CheckCreditPaymentRequest) (*pb.CheckCreditPaymentResponse, error)
	CreateHold(ctx context.Context, req *pb.CreateHoldRequest) (*pb.CreateHoldResponse, error)
	CaptureHold(ctx context.Context, req *pb.CaptureHoldRequest) (*pb.CaptureHoldResponse, error)
	VoidHold(ctx context.Context, req *pb.VoidHoldRequest) (*pb.VoidHoldResponse, error)
	GetHold(ctx context.Context, req *pb.GetHoldRequest) (*pb.GetHoldResponse, error)
	Debit(ctx context.Context, req *pb.DebitRequest) (*pb.DebitResponse, error)
}
