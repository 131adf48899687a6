package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/ledgerclient"
)

// write is one credit or debit under its idempotency key.
type write struct {
	account string
	key     string
	amount  int64
	credit  bool
	kind    pb.TransactionKind // default: PURCHASE for a credit, SERVICE_PURCHASE for a debit
}

// tally adds up the writes the ledger acknowledged, each once.
type tally struct {
	credited, debited int64
	unknown           int64 // writes whose outcome stayed unknown
}

func (t *tally) count(w write) {
	if w.credit {
		t.credited += w.amount
	} else {
		t.debited += w.amount
	}
}

func (t *tally) add(o tally) {
	t.credited += o.credited
	t.debited += o.debited
	t.unknown += o.unknown
}

// errUnknownOutcome: every attempt at a write left its outcome unknown.
var errUnknownOutcome = errors.New("outcome unknown")

// Retries of a write whose outcome is unknown: at most maxAttempts
// attempts, with a doubling pause between them.
const (
	maxAttempts  = 10
	firstBackoff = 20 * time.Millisecond
	maxBackoff   = time.Second
)

// send posts w. While an attempt's outcome is unknown (see inconclusive)
// it sends the very same request again, under the same idempotency key:
// the ledger posts a key at most once and answers a repeat with the
// original transaction, so the final answer says exactly whether w took
// effect. posted is false, with no error, when the first attempt was
// already a replay: the key had posted before this run (a reused
// -workspace), not because of it. retries counts the inconclusive attempts
// by gRPC code.
func (c client) send(ctx context.Context, w write, retries map[string]int) (posted bool, err error) {
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		replayed, err := c.attempt(ctx, w)
		switch {
		case err == nil:
			return !replayed || attempt > 1, nil
		case ctx.Err() != nil:
			return false, ctx.Err()
		case !inconclusive(err):
			return false, err
		}
		retries[codeOf(err)]++
		if attempt == maxAttempts {
			return false, fmt.Errorf("%w after %d attempts: %w", errUnknownOutcome, attempt, err)
		}
		if err := c.pause(ctx, backoff); err != nil {
			return false, err
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// pause waits d, or less if ctx ends first.
func (c client) pause(ctx context.Context, d time.Duration) error {
	if c.wait != nil {
		return c.wait(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// attempt sends w once.
func (c client) attempt(ctx context.Context, w write) (replayed bool, err error) {
	cctx, cancel := c.ctx(ctx)
	defer cancel()
	if w.credit {
		kind := w.kind
		if kind == pb.TransactionKind_TRANSACTION_KIND_UNSPECIFIED {
			kind = pb.TransactionKind_TRANSACTION_KIND_PURCHASE
		}
		resp, err := c.ledger.Credit(cctx, &pb.CreditRequest{
			Workspace: c.cfg.workspace, Account: w.account, Amount: w.amount, IdempotencyKey: w.key,
			Kind: kind, Reference: "bench",
		})
		return resp.GetReplayed(), err
	}
	kind := w.kind
	if kind == pb.TransactionKind_TRANSACTION_KIND_UNSPECIFIED {
		kind = pb.TransactionKind_TRANSACTION_KIND_SERVICE_PURCHASE
	}
	resp, err := c.ledger.Debit(cctx, &pb.DebitRequest{
		Workspace: c.cfg.workspace, Account: w.account, Amount: w.amount, IdempotencyKey: w.key,
		Kind: kind, Reference: "bench",
	})
	return resp.GetReplayed(), err
}

// inconclusive reports whether a failed write may nonetheless have posted,
// so that only sending it again under its key can tell: the statuses
// ledgerclient.IsTransient names (the transport gave up, the server
// failed or could not finish) and IDEMPOTENCY_KEY_IN_USE (an earlier
// attempt is still in flight). Everything else is a definite refusal.
func inconclusive(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Internal, codes.Unknown, codes.ResourceExhausted:
		return true
	case codes.Aborted:
		return reasonOf(err) == ledgerclient.ReasonIdempotencyKeyInUse
	default:
		return false
	}
}

// reasonOf is the google.rpc.ErrorInfo reason of a gRPC error.
func reasonOf(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// codeOf names err's gRPC code for the report.
func codeOf(err error) string { return status.Code(err).String() }
