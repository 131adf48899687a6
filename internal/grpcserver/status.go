package grpcserver

import (
	"context"
	"errors"

	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/creditledger/creditledger/internal/ledger"
)

// ErrorDomain is google.rpc.ErrorInfo.domain of every error the server returns.
const ErrorDomain = "creditledger"

// genericInternalMessage is all a caller learns about an unexpected failure;
// the cause goes to the log.
const genericInternalMessage = "internal error"

// toStatus is the one place where an error becomes a gRPC status.
//
//   - *ledger.Error: its code maps to the gRPC code, its safe Message is the
//     status message, and the details are a google.rpc.ErrorInfo (domain
//     "creditledger", the machine reason as the API's ErrorReason names it,
//     the metadata) plus a
//     google.rpc.BadRequest when there are field violations, and a
//     google.rpc.RetryInfo when it says when to retry (a rate limit). The
//     Cause is never shown to the caller.
//   - context.Canceled / context.DeadlineExceeded: CANCELED /
//     DEADLINE_EXCEEDED.
//   - an error that already is a gRPC status (raised by grpc itself) passes.
//   - anything else, and *ledger.Error with CodeInternal: INTERNAL with a
//     generic message, and exactly one error log line carrying the cause.
//
// Store unavailability is logged once at WARN with its cause: the caller
// only learns "retry", the operator needs to know why.
func toStatus(ctx context.Context, log *zap.Logger, method string, err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	var le *ledger.Error
	isLedger := errors.As(err, &le)
	if isLedger && le.Code != ledger.CodeInternal {
		if code, ok := grpcCode(le.Code); ok {
			if le.Code == ledger.CodeUnavailable {
				log.Warn("store unavailable", zap.String("method", method),
					zap.String("request_id", RequestIDFromContext(ctx)), zap.Error(err))
			}
			return withDetails(code, le)
		}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return withDetails(codes.Canceled, &ledger.Error{Reason: reasonCanceled, Message: "the request was canceled"})
	case errors.Is(err, context.DeadlineExceeded):
		return withDetails(codes.DeadlineExceeded, &ledger.Error{Reason: reasonDeadlineExceeded, Message: "the request deadline was exceeded"})
	}
	if !isLedger {
		var se interface{ GRPCStatus() *status.Status }
		if errors.As(err, &se) {
			return se.GRPCStatus()
		}
	}
	fields := []zap.Field{
		zap.String("method", method),
		zap.String("request_id", RequestIDFromContext(ctx)),
		zap.Error(err),
	}
	var pe *panicError
	if errors.As(err, &pe) {
		fields = append(fields, zap.ByteString("stack", pe.stack))
	}
	log.Error("internal error", fields...)
	return withDetails(codes.Internal, &ledger.Error{Reason: ledger.ReasonInternal, Message: genericInternalMessage})
}

// grpcCode maps a domain code to its gRPC code; false for codes the
// transport does not know (treated as internal).
func grpcCode(c ledger.Code) (codes.Code, bool) {
	switch c {
	case ledger.CodeInvalid:
		return codes.InvalidArgument, true
	case ledger.CodeNotFound:
		return codes.NotFound, true
	case ledger.CodeAlreadyExists:
		return codes.AlreadyExists, true
	case ledger.CodeFailedPrecondition:
		return codes.FailedPrecondition, true
	case ledger.CodeAborted:
		return codes.Aborted, true
	case ledger.CodeUnavailable:
		return codes.Unavailable, true
	case ledger.CodeUnauthenticated:
		return codes.Unauthenticated, true
	case ledger.CodePermissionDenied:
		return codes.PermissionDenied, true
	case ledger.CodeResourceExhausted:
		return codes.ResourceExhausted, true
	default:
		return codes.Internal, false
	}
}

// withDetails builds the status from the safe parts of e only.
func withDetails(code codes.Code, e *ledger.Error) *status.Status {
	msg := e.Message
	if msg == "" {
		msg = e.Reason
	}
	st := status.New(code, msg)
	info := &errdetails.ErrorInfo{Domain: ErrorDomain, Reason: errorInfoReason(e.Reason)}
	if len(e.Metadata) > 0 {
		info.Metadata = make(map[string]string, len(e.Metadata))
		for k, v := range e.Metadata {
			info.Metadata[k] = v
		}
	}
	details := []protoadapt.MessageV1{info}
	if len(e.Violations) > 0 {
		br := &errdetails.BadRequest{}
		for _, v := range e.Violations {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
				Field: v.Field, Description: v.Description,
			})
		}
		details = append(details, br)
	}
	if e.RetryAfter > 0 {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryAfter)})
	}
	withD, err := st.WithDetails(details...)
	if err != nil {
		// Only fails for a nil or unmarshalable detail, which ours never are.
		return st
	}
	return withD
}
