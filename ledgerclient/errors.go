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

	"github.com/creditledger/creditledger/internal/ledger"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of the ledger's errors.
const ErrorDomain = "creditledger"

// Machine-readable reasons the ledger puts in google.rpc.ErrorInfo.reason:
// the domain's own constants, so that client and server cannot drift.
const (
	ReasonInvalidArgument        = ledger.ReasonInvalidArgument
	ReasonIdempotencyKeyReused   = ledger.ReasonIdempotencyKeyReused
	ReasonInsufficientCredits    = ledger.ReasonInsufficientCredits
	ReasonCreditPaymentsDisabled = ledger.ReasonCreditPaymentsDisabled
	ReasonRequestAlreadyDecided  = ledger.ReasonRequestAlreadyDecided
	ReasonPackageInactive        = ledger.ReasonPackageInactive
	ReasonNoConversionRate       = ledger.ReasonNoConversionRate
	// ReasonPaymentMethodNotOffered: the workspace does not offer the
	// payment method (Settings.payment_methods).
	ReasonPaymentMethodNotOffered = ledger.ReasonPaymentMethodNotOffered
	ReasonVersionMismatch         = ledger.ReasonVersionMismatch
	ReasonIdempotencyKeyInUse     = ledger.ReasonIdempotencyKeyInUse
	ReasonNotFound                = ledger.ReasonNotFound
	ReasonAlreadyExists           = ledger.ReasonAlreadyExists
	// Holds and reversals (SPEC §9).
	ReasonHoldNotActive           = ledger.ReasonHoldNotActive
	ReasonReversalExceedsOriginal = ledger.ReasonReversalExceeds
	ReasonNotReversible           = ledger.ReasonNotReversible
)

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
	Code       codes.Code
	Reason     string // "" when the server sent no ErrorInfo (e.g. a transport failure)
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
	if e.Reason != "" && e.Reason != codeName(e.Code) {
		b.WriteString(" ")
		b.WriteString(e.Reason)
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
	if t.Reason != "" {
		return t.Reason == e.Reason
	}
	return t.Code == e.Code
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
	ErrInsufficientCredits    = &Error{Code: codes.FailedPrecondition, Reason: ReasonInsufficientCredits}
	ErrCreditPaymentsDisabled = &Error{Code: codes.FailedPrecondition, Reason: ReasonCreditPaymentsDisabled}
	ErrRequestAlreadyDecided  = &Error{Code: codes.FailedPrecondition, Reason: ReasonRequestAlreadyDecided}
	ErrPackageInactive        = &Error{Code: codes.FailedPrecondition, Reason: ReasonPackageInactive}
	ErrNoConversionRate       = &Error{Code: codes.FailedPrecondition, Reason: ReasonNoConversionRate}
	// ErrPaymentMethodNotOffered: SubmitRequest with a method the workspace
	// does not offer.
	ErrPaymentMethodNotOffered = &Error{Code: codes.FailedPrecondition, Reason: ReasonPaymentMethodNotOffered}
	ErrVersionMismatch         = &Error{Code: codes.Aborted, Reason: ReasonVersionMismatch}
	ErrIdempotencyKeyInUse     = &Error{Code: codes.Aborted, Reason: ReasonIdempotencyKeyInUse}
	ErrIdempotencyKeyReused    = &Error{Code: codes.InvalidArgument, Reason: ReasonIdempotencyKeyReused}
	// ErrHoldNotActive: the hold was already captured, voided or expired
	// (GetHold says which).
	ErrHoldNotActive           = &Error{Code: codes.FailedPrecondition, Reason: ReasonHoldNotActive}
	ErrReversalExceedsOriginal = &Error{Code: codes.FailedPrecondition, Reason: ReasonReversalExceedsOriginal}
	ErrNotReversible           = &Error{Code: codes.FailedPrecondition, Reason: ReasonNotReversible}

	ErrNotFound         = &Error{Code: codes.NotFound}
	ErrAlreadyExists    = &Error{Code: codes.AlreadyExists}
	ErrInvalidArgument  = &Error{Code: codes.InvalidArgument}
	ErrUnavailable      = &Error{Code: codes.Unavailable}
	ErrDeadlineExceeded = &Error{Code: codes.DeadlineExceeded}
	ErrUnauthenticated  = &Error{Code: codes.Unauthenticated}
	ErrPermissionDenied = &Error{Code: codes.PermissionDenied}
)

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
		return e.Reason != ReasonIdempotencyKeyReused
	case codes.Aborted:
		return e.Reason == ReasonVersionMismatch
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
		return e.Reason == ReasonIdempotencyKeyInUse
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
