package ledgerclient

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of the ledger's errors.
const ErrorDomain = "creditledger"

// reasonPrefix starts every ErrorReason name; ErrorInfo.reason carries the
// name without it.
const reasonPrefix = "ERROR_REASON_"

// Machine-readable reasons the ledger puts in google.rpc.ErrorInfo.reason,
// as strings: each is the name of a creditledger.v1.ErrorReason value
// without its ERROR_REASON_ prefix. The enum is the complete, documented
// list (Error.ErrorReason); these constants serve callers that compare or
// pass on the string.
const (
	ReasonInvalidArgument        = "INVALID_ARGUMENT"
	ReasonIdempotencyKeyReused   = "IDEMPOTENCY_KEY_REUSED"
	ReasonInsufficientCredits    = "INSUFFICIENT_CREDITS"
	ReasonCreditPaymentsDisabled = "CREDIT_PAYMENTS_DISABLED"
	ReasonRequestAlreadyDecided  = "REQUEST_ALREADY_DECIDED"
	ReasonPackageInactive        = "PACKAGE_INACTIVE"
	ReasonNoConversionRate       = "NO_CONVERSION_RATE"
	// ReasonPaymentMethodNotOffered: the workspace does not offer the
	// payment method (Settings.payment_methods).
	ReasonPaymentMethodNotOffered = "PAYMENT_METHOD_NOT_OFFERED"
	ReasonVersionMismatch         = "VERSION_MISMATCH"
	ReasonIdempotencyKeyInUse     = "IDEMPOTENCY_KEY_IN_USE"
	ReasonNotFound                = "NOT_FOUND"
	ReasonAlreadyExists           = "ALREADY_EXISTS"
	// Holds and reversals (SPEC §9).
	ReasonHoldNotActive           = "HOLD_NOT_ACTIVE"
	ReasonReversalExceedsOriginal = "REVERSAL_EXCEEDS_ORIGINAL"
	ReasonNotReversible           = "NOT_REVERSIBLE"
)

// ReasonName is the ErrorInfo.reason string of r ("INSUFFICIENT_CREDITS"
// for ERROR_REASON_INSUFFICIENT_CREDITS); "" for UNSPECIFIED.
func ReasonName(r pb.ErrorReason) string {
	if r == pb.ErrorReason_ERROR_REASON_UNSPECIFIED {
		return ""
	}
	return strings.TrimPrefix(r.String(), reasonPrefix)
}

// ParseReason is the ErrorReason of an ErrorInfo.reason string;
// UNSPECIFIED for "" and for a reason this version of the client does not
// know (a newer server's).
func ParseReason(reason string) pb.ErrorReason {
	if reason == "" {
		return pb.ErrorReason_ERROR_REASON_UNSPECIFIED
	}
	return pb.ErrorReason(pb.ErrorReason_value[reasonPrefix+reason])
}

// FieldViolation is one invalid request field (google.rpc.BadRequest).
type FieldViolation struct {
	Field       string
	Description string
}

// Error is every failed call's error: the gRPC code, the ErrorInfo reason
// and metadata, and the field violations of a malformed request. Match it
// with errors.Is against the sentinels below or take it apart with
// errors.As. When the caller's context ended the call, errors.Is(err,
// context.Canceled / context.DeadlineExceeded) also holds.
type Error struct {
	Code codes.Code
	// ErrorReason is the ErrorInfo reason as the API's enum; UNSPECIFIED
	// when the server sent no ErrorInfo or a reason this client does not
	// know (Reason still has it: decide by Code then).
	ErrorReason pb.ErrorReason
	// Reason is the ErrorInfo reason as sent ("INSUFFICIENT_CREDITS");
	// "" when the server sent no ErrorInfo (e.g. a transport failure).
	Reason     string
	Message    string
	Metadata   map[string]string
	Violations []FieldViolation

	status *status.Status
	cause  error
}

// Error implements error: "FAILED_PRECONDITION INSUFFICIENT_CREDITS: message {balance=1 required=5}".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("ledger: ")
	b.WriteString(codeName(e.Code))
	reason := e.Reason
	if reason == "" {
		reason = ReasonName(e.ErrorReason)
	}
	if reason != "" && reason != codeName(e.Code) {
		b.WriteString(" ")
		b.WriteString(reason)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if len(e.Metadata) > 0 {
		keys := make([]string, 0, len(e.Metadata))
		for k := range e.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString(" {")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(" ")
			}
			fmt.Fprintf(&b, "%s=%s", k, e.Metadata[k])
		}
		b.WriteString("}")
	}
	return b.String()
}

// Is matches a sentinel *Error: by reason when the sentinel has one, else by code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	if r := t.reason(); r != pb.ErrorReason_ERROR_REASON_UNSPECIFIED {
		return r == e.reason()
	}
	if t.Reason != "" {
		return t.Reason == e.Reason
	}
	return t.Code == e.Code
}

// reason is ErrorReason, or Reason parsed when only the string was set (an
// *Error built by hand, as in a test double).
func (e *Error) reason() pb.ErrorReason {
	if e.ErrorReason != pb.ErrorReason_ERROR_REASON_UNSPECIFIED {
		return e.ErrorReason
	}
	return ParseReason(e.Reason)
}

// Unwrap returns the caller's context error when it ended the call.
func (e *Error) Unwrap() error { return e.cause }

// GRPCStatus returns the original status, so that status.FromError and
// status.Code keep working on errors returned by this package.
func (e *Error) GRPCStatus() *status.Status {
	if e.status != nil {
		return e.status
	}
	return status.New(e.Code, e.Message)
}

// Sentinels for errors.Is. Those with a reason match by reason, the others
// by gRPC code.
var (
	ErrInsufficientCredits    = sentinel(codes.FailedPrecondition, pb.ErrorReason_ERROR_REASON_INSUFFICIENT_CREDITS)
	ErrCreditPaymentsDisabled = sentinel(codes.FailedPrecondition, pb.ErrorReason_ERROR_REASON_CREDIT_PAYMENTS_DISABLED)
	ErrRequestAlreadyDecided  = sentinel(codes.FailedPrecondition, pb.ErrorReason_ERROR_REASON_REQUEST_ALREADY_DECIDED)
	ErrPackageInactive        = sentinel(codes.FailedPrecondition, pb.ErrorReason_ERROR_REASON_PACKAGE_INACTIVE)
	ErrNoConversionRate       = sentinel(codes.FailedPrecondition, pb.ErrorReason_ERROR_REASON_NO_CONVERSION_RATE)
	// ErrPaymentMethodNotOffered: SubmitRequest with a method the workspace
	// does not offer.
	ErrPaymentMethodNotOffered = sentinel(codes.FailedPrecondition, pb.ErrorReason_ERROR_REASON_PAYMENT_METHOD_NOT_OFFERED)
	ErrVersionMismatch         = sentinel(codes.Aborted, pb.ErrorReason_ERROR_REASON_VERSION_MISMATCH)
	ErrIdempotencyKeyInUse     = sentinel(codes.Aborted, pb.ErrorReason_ERROR_REASON_IDEMPOTENCY_KEY_IN_USE)
	ErrIdempotencyKeyReused    = sentinel(codes.InvalidArgument, pb.ErrorReason_ERROR_REASON_IDEMPOTENCY_KEY_REUSED)
	// ErrHoldNotActive: the hold was already captured, voided or expired
	// (GetHold says which).
	ErrHoldNotActive           = sentinel(codes.FailedPrecondition, pb.ErrorReason_ERROR_REASON_HOLD_NOT_ACTIVE)
	ErrReversalExceedsOriginal = sentinel(codes.FailedPrecondition, pb.ErrorReason_ERROR_REASON_REVERSAL_EXCEEDS_ORIGINAL)
	ErrNotReversible           = sentinel(codes.FailedPrecondition, pb.ErrorReason_ERROR_REASON_NOT_REVERSIBLE)

	ErrNotFound         = &Error{Code: codes.NotFound}
	ErrAlreadyExists    = &Error{Code: codes.AlreadyExists}
	ErrInvalidArgument  = &Error{Code: codes.InvalidArgument}
	ErrUnavailable      = &Error{Code: codes.Unavailable}
	ErrDeadlineExceeded = &Error{Code: codes.DeadlineExceeded}
	ErrUnauthenticated  = &Error{Code: codes.Unauthenticated}
	ErrPermissionDenied = &Error{Code: codes.PermissionDenied}
)

func sentinel(code codes.Code, r pb.ErrorReason) *Error {
	return &Error{Code: code, ErrorReason: r, Reason: ReasonName(r)}
}

// ErrorReasonOf returns the ErrorReason of err (UNSPECIFIED when there is
// none, or one this client does not know).
func ErrorReasonOf(err error) pb.ErrorReason {
	var e *Error
	if errors.As(err, &e) {
		return e.reason()
	}
	return pb.ErrorReason_ERROR_REASON_UNSPECIFIED
}

// ReasonOf returns the ErrorInfo reason of err ("" when there is none).
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// CodeOf returns the gRPC code of err (OK for nil, Unknown for foreign errors).
func CodeOf(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return status.Code(err)
}

// IsRefused reports whether the ledger evaluated the request and refused
// it, so that nothing is recorded under its idempotency key: a business
// refusal (FAILED_PRECONDITION: insufficient credits, payments disabled, …),
// VERSION_MISMATCH, NOT_FOUND, or malformed input. A caller that was
// waiting for the outcome of a keyed write may treat it as "not posted".
//
// It is false for everything that leaves the outcome unknown (UNAVAILABLE,
// DEADLINE_EXCEEDED, CANCELED, INTERNAL, IDEMPOTENCY_KEY_IN_USE), for
// IDEMPOTENCY_KEY_REUSED (the key did post, with a different request) and
// for UNAUTHENTICATED / PERMISSION_DENIED (the request was not evaluated at
// all: an earlier attempt may have posted).
func IsRefused(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case codes.FailedPrecondition, codes.NotFound:
		return true
	case codes.InvalidArgument:
		return e.reason() != pb.ErrorReason_ERROR_REASON_IDEMPOTENCY_KEY_REUSED
	case codes.Aborted:
		return e.reason() == pb.ErrorReason_ERROR_REASON_VERSION_MISMATCH
	default:
		return false
	}
}

// IsTransient reports whether err leaves the outcome unknown and the same
// call (same idempotency key) may be tried again later.
func IsTransient(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Internal, codes.Unknown, codes.ResourceExhausted:
		return true
	case codes.Aborted:
		return e.reason() == pb.ErrorReason_ERROR_REASON_IDEMPOTENCY_KEY_IN_USE
	default:
		return false
	}
}

// fromError turns what the gRPC stack returned into an *Error. ctxErr is
// the caller's context error, if it ended the call.
func fromError(err, ctxErr error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	st, ok := status.FromError(err)
	if !ok {
		switch {
		case errors.Is(err, context.Canceled):
			st = status.New(codes.Canceled, err.Error())
		case errors.Is(err, context.DeadlineExceeded):
			st = status.New(codes.DeadlineExceeded, err.Error())
		default:
			st = status.New(codes.Unknown, err.Error())
		}
	}
	e = &Error{Code: st.Code(), Message: st.Message(), status: st, cause: ctxErr}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			if e.Reason == "" {
				e.Reason = d.GetReason()
				e.ErrorReason = ParseReason(e.Reason)
				e.Metadata = d.GetMetadata()
			}
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				e.Violations = append(e.Violations, FieldViolation{Field: v.GetField(), Description: v.GetDescription()})
			}
		}
	}
	return e
}

// codeName is the canonical upper-case name of a gRPC code (INVALID_ARGUMENT).
func codeName(c codes.Code) string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return "CODE_" + fmt.Sprint(uint32(c))
}

var codeNames = map[codes.Code]string{
	codes.OK:                 "OK",
	codes.Canceled:           "CANCELLED",
	codes.Unknown:            "UNKNOWN",
	codes.InvalidArgument:    "INVALID_ARGUMENT",
	codes.DeadlineExceeded:   "DEADLINE_EXCEEDED",
	codes.NotFound:           "NOT_FOUND",
	codes.AlreadyExists:      "ALREADY_EXISTS",
	codes.PermissionDenied:   "PERMISSION_DENIED",
	codes.ResourceExhausted:  "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION",
	codes.Aborted:            "ABORTED",
	codes.OutOfRange:         "OUT_OF_RANGE",
	codes.Unimplemented:      "UNIMPLEMENTED",
	codes.Internal:           "INTERNAL",
	codes.Unavailable:        "UNAVAILABLE",
	codes.DataLoss:           "DATA_LOSS",
	codes.Unauthenticated:    "UNAUTHENTICATED",
}
