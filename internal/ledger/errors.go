package ledger

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Code classifies an error the way callers must react to it. Transports map
// it to their own status codes.
type Code int

// Error codes.
const (
	CodeInternal           Code = iota // a bug or an unexpected failure
	CodeInvalid                        // malformed input; retrying will not help
	CodeNotFound                       // no such resource in this workspace
	CodeAlreadyExists                  // the resource already exists
	CodeFailedPrecondition             // the request is valid but the state refuses it
	CodeAborted                        // a concurrency conflict; retry (re-read first)
	CodeUnavailable                    // the store is unreachable; retry with the same key
	CodeUnauthenticated                // no valid credentials
	CodePermissionDenied               // credentials lack the needed scope
	CodeResourceExhausted              // a rate limit; retry after Error.RetryAfter
)

// String names the code for logs.
func (c Code) String() string {
	switch c {
	case CodeInvalid:
		return "invalid"
	case CodeNotFound:
		return "not_found"
	case CodeAlreadyExists:
		return "already_exists"
	case CodeFailedPrecondition:
		return "failed_precondition"
	case CodeAborted:
		return "aborted"
	case CodeUnavailable:
		return "unavailable"
	case CodeUnauthenticated:
		return "unauthenticated"
	case CodePermissionDenied:
		return "permission_denied"
	case CodeResourceExhausted:
		return "resource_exhausted"
	default:
		return "internal"
	}
}

// Stable machine-readable reasons (google.rpc.ErrorInfo.reason).
const (
	ReasonInvalidArgument        = "INVALID_ARGUMENT"
	ReasonIdempotencyKeyReused   = "IDEMPOTENCY_KEY_REUSED"
	ReasonInsufficientCredits    = "INSUFFICIENT_CREDITS"
	ReasonCreditPaymentsDisabled = "CREDIT_PAYMENTS_DISABLED"
	ReasonRequestAlreadyDecided  = "REQUEST_ALREADY_DECIDED"
	ReasonApproverIsSubmitter    = "APPROVER_IS_SUBMITTER"
	ReasonPackageInactive        = "PACKAGE_INACTIVE"
	ReasonNoConversionRate       = "NO_CONVERSION_RATE"
	ReasonVersionMismatch        = "VERSION_MISMATCH"
	ReasonIdempotencyKeyInUse    = "IDEMPOTENCY_KEY_IN_USE"
	ReasonNotFound               = "NOT_FOUND"
	ReasonAlreadyExists          = "ALREADY_EXISTS"
	ReasonStoreUnavailable       = "STORE_UNAVAILABLE"
	ReasonInternal               = "INTERNAL"
	ReasonUnauthenticated        = "UNAUTHENTICATED"
	ReasonPermissionDenied       = "PERMISSION_DENIED"
	ReasonAmountOverflow         = "AMOUNT_OVERFLOW"
	ReasonBalanceLimitExceeded   = "BALANCE_LIMIT_EXCEEDED"
	ReasonHoldNotActive          = "HOLD_NOT_ACTIVE"
	ReasonReversalExceeds        = "REVERSAL_EXCEEDS_ORIGINAL"
	ReasonNotReversible          = "NOT_REVERSIBLE"
	ReasonTooManyPendingRequests = "TOO_MANY_PENDING_REQUESTS"
	ReasonRateLimited            = "RATE_LIMITED"
	// ReasonPaymentMethodNotOffered: the workspace does not offer the
	// payment method (Settings.PaymentMethods).
	ReasonPaymentMethodNotOffered = "PAYMENT_METHOD_NOT_OFFERED"
)

// FieldViolation describes one invalid request field.
type FieldViolation struct {
	Field       string // request field path, snake_case (e.g. "metadata", "price.currency_code")
	Description string
}

// Error is the one error type of the domain. Its Message is safe to show to
// callers; Cause is for logs only.
type Error struct {
	Code       Code
	Reason     string
	Message    string
	Metadata   map[string]string
	Violations []FieldViolation
	// RetryAfter, when positive, is how long the caller should wait
	// before trying again (CodeResourceExhausted).
	RetryAfter time.Duration
	Cause      error
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Reason)
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Cause != nil {
		b.WriteString(": ")
		b.WriteString(e.Cause.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// Is matches another *Error by code and reason, so that
// errors.Is(err, ledger.ErrInsufficientCredits) works.
func (e *Error) Is(target error) bool {
	var t *Error
	if !errors.As(target, &t) {
		return false
	}
	return t.Code == e.Code && t.Reason == e.Reason
}

// Sentinels for errors.Is; the returned errors carry metadata of their own.
var (
	ErrInsufficientCredits     = &Error{Code: CodeFailedPrecondition, Reason: ReasonInsufficientCredits}
	ErrCreditPaymentsDisabled  = &Error{Code: CodeFailedPrecondition, Reason: ReasonCreditPaymentsDisabled}
	ErrRequestAlreadyDecided   = &Error{Code: CodeFailedPrecondition, Reason: ReasonRequestAlreadyDecided}
	ErrPackageInactive         = &Error{Code: CodeFailedPrecondition, Reason: ReasonPackageInactive}
	ErrNoConversionRate        = &Error{Code: CodeFailedPrecondition, Reason: ReasonNoConversionRate}
	ErrBalanceLimitExceeded    = &Error{Code: CodeFailedPrecondition, Reason: ReasonBalanceLimitExceeded}
	ErrTooManyPendingRequests  = &Error{Code: CodeFailedPrecondition, Reason: ReasonTooManyPendingRequests}
	ErrPaymentMethodNotOffered = &Error{Code: CodeFailedPrecondition, Reason: ReasonPaymentMethodNotOffered}
	ErrRateLimited             = &Error{Code: CodeResourceExhausted, Reason: ReasonRateLimited}
	ErrVersionMismatch         = &Error{Code: CodeAborted, Reason: ReasonVersionMismatch}
	ErrIdempotencyKeyInUse     = &Error{Code: CodeAborted, Reason: ReasonIdempotencyKeyInUse}
	ErrIdempotencyKeyReused    = &Error{Code: CodeInvalid, Reason: ReasonIdempotencyKeyReused}
	ErrNotFound                = &Error{Code: CodeNotFound, Reason: ReasonNotFound}
	ErrAlreadyExists           = &Error{Code: CodeAlreadyExists, Reason: ReasonAlreadyExists}
	ErrUnavailable             = &Error{Code: CodeUnavailable, Reason: ReasonStoreUnavailable}
	// ErrConflict is returned by a store's Write when a concurrent
	// writer won (a serialization failure, a deadlock, a duplicate key):
	// nothing was committed, and the batch is decided again.
	ErrConflict = &Error{Code: CodeAborted, Reason: "CONFLICT", Message: "concurrent update"}
)

// ErrorOf returns the *Error in err's chain, or an internal error wrapping err.
func ErrorOf(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Reason: ReasonInternal, Message: "internal error", Cause: err}
}

// ReasonOf returns the machine reason of err ("" for nil).
func ReasonOf(err error) string {
	if err == nil {
		return ""
	}
	return ErrorOf(err).Reason
}

func newErr(code Code, reason, msg string, md map[string]string) *Error {
	return &Error{Code: code, Reason: reason, Message: msg, Metadata: md}
}

// NotFoundError says that a resource does not exist in the workspace. It
// deliberately does not distinguish "exists in another workspace".
func NotFoundError(what, id string) *Error {
	return newErr(CodeNotFound, ReasonNotFound, fmt.Sprintf("%s %q not found", what, id), map[string]string{"resource": what, "id": id})
}

// UnavailableError wraps a store failure that is safe to retry.
func UnavailableError(cause error) *Error {
	return &Error{Code: CodeUnavailable, Reason: ReasonStoreUnavailable, Message: "store unavailable; retry with the same idempotency key", Cause: cause}
}

// ConflictError is ErrConflict carrying the store's cause (errors.Is
// matches ErrConflict by code and reason); the Service retries on it.
func ConflictError(cause error) *Error {
	return &Error{Code: ErrConflict.Code, Reason: ErrConflict.Reason, Message: ErrConflict.Message, Cause: cause}
}

// AlreadyExistsError is ErrAlreadyExists for what, carrying the store's cause.
func AlreadyExistsError(what string, cause error) *Error {
	return &Error{Code: ErrAlreadyExists.Code, Reason: ErrAlreadyExists.Reason, Message: what + " already exists", Cause: cause}
}

// InternalError wraps an unexpected failure.
func InternalError(cause error) *Error {
	return &Error{Code: CodeInternal, Reason: ReasonInternal, Message: "internal error", Cause: cause}
}

// violations collects field errors and turns them into one INVALID error.
type violations []FieldViolation

func (v *violations) add(field, format string, args ...any) {
	*v = append(*v, FieldViolation{Field: field, Description: fmt.Sprintf(format, args...)})
}

func (v violations) err() error {
	if len(v) == 0 {
		return nil
	}
	sort.SliceStable(v, func(i, j int) bool { return v[i].Field < v[j].Field })
	msgs := make([]string, 0, len(v))
	for _, f := range v {
		msgs = append(msgs, f.Field+": "+f.Description)
	}
	return &Error{
		Code:       CodeInvalid,
		Reason:     ReasonInvalidArgument,
		Message:    "invalid request: " + strings.Join(msgs, "; "),
		Violations: v,
	}
}

// invalid returns an INVALID error with one field violation.
func invalid(field, format string, args ...any) error {
	var v violations
	v.add(field, format, args...)
	return v.err()
}
