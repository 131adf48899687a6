package grpcserver

import (
	"strings"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledger"
)

// reasonPrefix starts every ErrorReason name; google.rpc.ErrorInfo.reason
// carries the name without it ("INSUFFICIENT_CREDITS"), as it always has.
const reasonPrefix = "ERROR_REASON_"

// reasons maps every reason the domain and this transport put in an
// ErrorInfo to the API's ErrorReason. A domain reason missing here is
// caught by TestReasonsCoverTheDomain.
var reasons = map[string]pb.ErrorReason{
	ledger.ReasonInvalidArgument:         pb.ErrorReason_ERROR_REASON_INVALID_ARGUMENT,
	ledger.ReasonIdempotencyKeyReused:    pb.ErrorReason_ERROR_REASON_IDEMPOTENCY_KEY_REUSED,
	ledger.ReasonAmountOverflow:          pb.ErrorReason_ERROR_REASON_AMOUNT_OVERFLOW,
	ledger.ReasonInsufficientCredits:     pb.ErrorReason_ERROR_REASON_INSUFFICIENT_CREDITS,
	ledger.ReasonCreditPaymentsDisabled:  pb.ErrorReason_ERROR_REASON_CREDIT_PAYMENTS_DISABLED,
	ledger.ReasonRequestAlreadyDecided:   pb.ErrorReason_ERROR_REASON_REQUEST_ALREADY_DECIDED,
	ledger.ReasonApproverIsSubmitter:     pb.ErrorReason_ERROR_REASON_APPROVER_IS_SUBMITTER,
	ledger.ReasonPackageInactive:         pb.ErrorReason_ERROR_REASON_PACKAGE_INACTIVE,
	ledger.ReasonNoConversionRate:        pb.ErrorReason_ERROR_REASON_NO_CONVERSION_RATE,
	ledger.ReasonBalanceLimitExceeded:    pb.ErrorReason_ERROR_REASON_BALANCE_LIMIT_EXCEEDED,
	ledger.ReasonHoldNotActive:           pb.ErrorReason_ERROR_REASON_HOLD_NOT_ACTIVE,
	ledger.ReasonReversalExceeds:         pb.ErrorReason_ERROR_REASON_REVERSAL_EXCEEDS_ORIGINAL,
	ledger.ReasonNotReversible:           pb.ErrorReason_ERROR_REASON_NOT_REVERSIBLE,
	ledger.ReasonTooManyPendingRequests:  pb.ErrorReason_ERROR_REASON_TOO_MANY_PENDING_REQUESTS,
	ledger.ReasonPaymentMethodNotOffered: pb.ErrorReason_ERROR_REASON_PAYMENT_METHOD_NOT_OFFERED,
	ledger.ReasonVersionMismatch:         pb.ErrorReason_ERROR_REASON_VERSION_MISMATCH,
	ledger.ReasonIdempotencyKeyInUse:     pb.ErrorReason_ERROR_REASON_IDEMPOTENCY_KEY_IN_USE,
	ledger.ErrConflict.Reason:            pb.ErrorReason_ERROR_REASON_CONFLICT,
	ledger.ReasonNotFound:                pb.ErrorReason_ERROR_REASON_NOT_FOUND,
	ledger.ReasonAlreadyExists:           pb.ErrorReason_ERROR_REASON_ALREADY_EXISTS,
	ledger.ReasonUnauthenticated:         pb.ErrorReason_ERROR_REASON_UNAUTHENTICATED,
	ledger.ReasonPermissionDenied:        pb.ErrorReason_ERROR_REASON_PERMISSION_DENIED,
	ledger.ReasonRateLimited:             pb.ErrorReason_ERROR_REASON_RATE_LIMITED,
	ledger.ReasonStoreUnavailable:        pb.ErrorReason_ERROR_REASON_STORE_UNAVAILABLE,
	ledger.ReasonInternal:                pb.ErrorReason_ERROR_REASON_INTERNAL,
	// Raised by the transport, not the domain.
	reasonCanceled:         pb.ErrorReason_ERROR_REASON_CANCELED,
	reasonDeadlineExceeded: pb.ErrorReason_ERROR_REASON_DEADLINE_EXCEEDED,
	reasonRequestTooLarge:  pb.ErrorReason_ERROR_REASON_REQUEST_TOO_LARGE,
}

// Reasons the transport raises itself (a canceled or late call, a body
// the REST gateway refuses to read).
var (
	reasonCanceled         = WireReason(pb.ErrorReason_ERROR_REASON_CANCELED)
	reasonDeadlineExceeded = WireReason(pb.ErrorReason_ERROR_REASON_DEADLINE_EXCEEDED)
	reasonRequestTooLarge  = WireReason(pb.ErrorReason_ERROR_REASON_REQUEST_TOO_LARGE)
)

// toProtoReason is the ErrorReason of a domain reason, UNSPECIFIED for one
// the API does not declare.
func toProtoReason(reason string) pb.ErrorReason {
	return reasons[reason]
}

// WireReason is google.rpc.ErrorInfo.reason for r: its name without the
// ERROR_REASON_ prefix ("INSUFFICIENT_CREDITS"); "" for UNSPECIFIED.
func WireReason(r pb.ErrorReason) string {
	if r == pb.ErrorReason_ERROR_REASON_UNSPECIFIED {
		return ""
	}
	return strings.TrimPrefix(r.String(), reasonPrefix)
}

// errorInfoReason is what withDetails sends for a domain reason: the wire
// name of its ErrorReason. A reason the enum lacks (which the tests
// forbid) is sent as it is rather than dropped, so that a caller still
// sees the refusal's reason.
func errorInfoReason(reason string) string {
	if r := toProtoReason(reason); r != pb.ErrorReason_ERROR_REASON_UNSPECIFIED {
		return WireReason(r)
	}
	return reason
}
