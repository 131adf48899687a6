package ledger

import "strconv"

// Bounds on the pending credit requests of one account. The cap keeps a
// client from flooding its agency's queue, and bounds the pending credits
// GetBalance adds up (see MaxAmount).
const (
	DefaultMaxPendingRequests = 20
	MaxPendingRequestsLimit   = 1000
)

// WithMaxPendingRequests caps the PENDING requests of one account: a
// SubmitRequest beyond it is refused with TOO_MANY_PENDING_REQUESTS until
// one is decided. n ≤ 0 keeps DefaultMaxPendingRequests; n is at most
// MaxPendingRequestsLimit.
func WithMaxPendingRequests(n int) Option {
	return func(s *Service) {
		if n > 0 {
			s.maxPending = min(n, MaxPendingRequestsLimit)
		}
	}
}

// pendingCount is the account's PENDING requests as the batch's op sees
// them: the store's count, read under the batch's lock on it, and the
// batch's earlier submits and decisions.
func (b *batchState) pendingCount(account string) int {
	return b.snap.Pending[account] + b.pendingDelta[account]
}

// pendingMoved records that an earlier op of the batch added (+1) or
// decided (-1) a PENDING request of account.
func (b *batchState) pendingMoved(account string, delta int) {
	if b.pendingDelta == nil {
		b.pendingDelta = map[string]int{}
	}
	b.pendingDelta[account] += delta
}

func errTooManyPending(account string, limit int) error {
	n := strconv.Itoa(limit)
	return newErr(CodeFailedPrecondition, ReasonTooManyPendingRequests,
		"the account already has "+n+" pending credit requests, the most allowed; wait until one is decided",
		map[string]string{"account": account, "limit": n})
}
