package ledgerclient

import (
	"context"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
)

// intercept applies the call policy to every unary call on the connection:
// the call deadline, one deadline per attempt, retries of what is safe, and
// the translation of failures into *Error.
func (c *Client) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, callOpts ...grpc.CallOption) error {
	if _, ok := ctx.Deadline(); !ok && c.opts.callTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.callTimeout)
		defer cancel()
	}
	maxAttempts := 1
	if retryable(method, req) {
		maxAttempts = c.opts.maxAttempts
	}
	ambiguous := false // an earlier attempt may have taken effect
	for attempt := 1; ; attempt++ {
		err := c.attempt(ctx, method, req, reply, cc, invoker, callOpts)
		if err == nil {
			return nil
		}
		e := fromError(err, ctx.Err())
		if ctx.Err() != nil {
			// The caller's deadline (or the call budget) ended the call:
			// report it as such, whatever the last attempt saw.
			return e
		}
		if ambiguous && method == pb.CreditSettings_CreatePackage_FullMethodName && e.Code == codes.AlreadyExists {
			if c.recoverCreatePackage(ctx, req, reply) {
				return nil
			}
		}
		if attempt >= maxAttempts || !retryableError(e) {
			return e
		}
		ambiguous = ambiguous || e.Code == codes.DeadlineExceeded || e.Code == codes.Unavailable
		wait := c.backoff(attempt)
		if c.opts.onRetry != nil {
			c.opts.onRetry(RetryEvent{Method: method, Attempt: attempt, Err: e, Wait: wait})
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			e.cause = ctx.Err()
			return e
		case <-t.C:
		}
	}
}

// attempt makes one try under the per-attempt deadline.
func (c *Client) attempt(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, callOpts []grpc.CallOption) error {
	if c.opts.attemptTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.attemptTimeout)
		defer cancel()
	}
	return invoker(ctx, method, req, reply, cc, callOpts...)
}

// backoff is the wait after the given failed attempt: initial·2^(attempt-1),
// capped, drawn uniformly from [d/2, d].
func (c *Client) backoff(attempt int) time.Duration {
	d := c.opts.initialBackoff
	for i := 1; i < attempt && d < c.opts.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.opts.maxBackoff)
	half := d / 2
	return half + rand.N(d-half+1) //nolint:gosec // jitter, not security
}

// retryableError: only failures after which repeating the very same request
// cannot do harm, and may help.
func retryableError(e *Error) bool {
	switch e.Code {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	case codes.Aborted:
		return e.reason() == pb.ErrorReason_ERROR_REASON_IDEMPOTENCY_KEY_IN_USE
	default:
		return false
	}
}

// keyed is implemented by the requests of the idempotent writes.
type keyed interface{ GetIdempotencyKey() string }

// retryable says whether a call may be repeated at all:
//
//   - reads: always;
//   - Credit, Debit, SubmitRequest, DecideRequest, CancelRequest,
//     CreateHold, CaptureHold, VoidHold, ReverseTransaction: when they carry an
//     idempotency key (the server posts once per key; without a key the
//     server refuses the call anyway);
//   - UpdateSettings, UpdatePackage, ArchivePackage, SetConversionRate:
//     they set a state, so doing them twice leaves the same state
//     (SetConversionRate may record the same rate twice in the history);
//   - CreatePackage: only with a caller-chosen package_id, and an
//     ALREADY_EXISTS after an ambiguous attempt is resolved by reading the
//     package back. With a server-generated id a retry could create two.
//
// Unknown methods are not retried.
func retryable(method string, req any) bool {
	switch method {
	case pb.CreditLedger_GetBalance_FullMethodName,
		pb.CreditLedger_ListTransactions_FullMethodName,
		pb.CreditLedger_GetRequest_FullMethodName,
		pb.CreditLedger_ListRequests_FullMethodName,
		pb.CreditLedger_CheckCreditPayment_FullMethodName,
		pb.CreditLedger_ListAccounts_FullMethodName,
		pb.CreditLedger_GetHold_FullMethodName,
		pb.CreditLedger_ListHolds_FullMethodName,
		pb.CreditLedger_GetTransaction_FullMethodName,
		pb.CreditLedger_GetStatement_FullMethodName,
		pb.CreditLedger_ListEvents_FullMethodName,
		pb.CreditSettings_GetSettings_FullMethodName,
		pb.CreditSettings_ListPackages_FullMethodName,
		pb.CreditSettings_GetPackage_FullMethodName,
		pb.CreditSettings_ListConversionRates_FullMethodName,
		pb.CreditSettings_Quote_FullMethodName,
		pb.CreditSettings_UpdateSettings_FullMethodName,
		pb.CreditSettings_UpdatePackage_FullMethodName,
		pb.CreditSettings_ArchivePackage_FullMethodName,
		pb.CreditSettings_SetConversionRate_FullMethodName:
		return true
	case pb.CreditLedger_Credit_FullMethodName,
		pb.CreditLedger_Debit_FullMethodName,
		pb.CreditLedger_SubmitRequest_FullMethodName,
		pb.CreditLedger_DecideRequest_FullMethodName,
		pb.CreditLedger_CancelRequest_FullMethodName,
		pb.CreditLedger_CreateHold_FullMethodName,
		pb.CreditLedger_CaptureHold_FullMethodName,
		pb.CreditLedger_VoidHold_FullMethodName,
		pb.CreditLedger_ReverseTransaction_FullMethodName:
		k, ok := req.(keyed)
		return ok && k.GetIdempotencyKey() != ""
	case pb.CreditSettings_CreatePackage_FullMethodName:
		r, ok := req.(*pb.CreatePackageRequest)
		return ok && r.GetPackageId() != ""
	default:
		return false
	}
}

// recoverCreatePackage resolves "ALREADY_EXISTS after an attempt that may
// have created the package": when the existing package is the one asked
// for, the earlier attempt succeeded and its result is returned.
func (c *Client) recoverCreatePackage(ctx context.Context, req, reply any) bool {
	in, ok1 := req.(*pb.CreatePackageRequest)
	out, ok2 := reply.(*pb.CreatePackageResponse)
	if !ok1 || !ok2 {
		return false
	}
	got, err := c.settings.GetPackage(ctx, &pb.GetPackageRequest{Workspace: in.GetWorkspace(), PackageId: in.GetPackageId()})
	if err != nil {
		return false
	}
	p, want := got.GetCreditPackage(), in.GetCreditPackage()
	if p.GetDisplayName() != want.GetDisplayName() || p.GetCredits() != want.GetCredits() ||
		!proto.Equal(p.GetPrice(), want.GetPrice()) || !p.GetActive() {
		return false
	}
	out.CreditPackage = p
	return true
}
