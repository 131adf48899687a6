package consumer

import (
	"context"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"go.uber.org/zap"
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

// CreditOption says whether paying with credits is offered (Buy with
// Credit, Pay with Credit), and why not.
type CreditOption struct {
	Offered bool `json:"offered"`
	// Reason when not offered: the service's own (SERVICE_NOT_ELIGIBLE,
	// INVOICE_NOT_OPEN) or the ledger's (CREDIT_PAYMENTS_DISABLED,
	// NO_CONVERSION_RATE, INSUFFICIENT_CREDITS), or LEDGER_UNAVAILABLE.
	Reason string `json:"reason,omitempty"`
	// CreditsRequired is the price converted with the workspace's rate.
	CreditsRequired       int64 `json:"credits_required"`
	Balance               int64 `json:"balance"`
	CreditPaymentsEnabled bool  `json:"credit_payments_enabled"`
}

// OfferCredit asks the ledger, with one CheckCreditPayment, whether
// account may pay price with credits. When the ledger does not answer,
// the option is not offered, with the reason LEDGER_UNAVAILABLE, and
// that is logged: a page of options still renders. Any other failure is
// returned as the ledger client gave it.
func OfferCredit(ctx context.Context, l SpendLedger, log *zap.Logger, workspace, account string, price Money) (CreditOption, error) {
	chk, err := l.CheckCreditPayment(ctx, &pb.CheckCreditPaymentRequest{
		Workspace: workspace, Account: account, Cost: &pb.CheckCreditPaymentRequest_Price{Price: price.Proto()},
	})
	if err != nil {
		if FromLedger(err, "").Kind != KindUnavailable {
			return CreditOption{}, err
		}
		log.Warn("credit option: the ledger did not answer", zap.String("workspace", workspace), zap.String("account", account), zap.Error(err))
		return CreditOption{Reason: CodeLedgerUnavailable}, nil
	}
	return CreditOption{
		Offered: chk.GetAllowed(), Reason: chk.GetReason(), CreditsRequired: chk.GetCreditsRequired(),
		Balance: chk.GetBalance(), CreditPaymentsEnabled: chk.GetCreditPaymentsEnabled(),
	}, nil
}
