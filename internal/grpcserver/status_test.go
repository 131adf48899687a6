package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/creditledger/creditledger/internal/ledger"
)

func TestToStatus(t *testing.T) {
	t.Parallel()
	secret := errors.New("pq: password authentication failed for user \"ledger\" at 10.0.0.7")
	info := func(reason string, md map[string]string) *errdetails.ErrorInfo {
		return &errdetails.ErrorInfo{Domain: "creditledger", Reason: reason, Metadata: md}
	}
	tests := []struct {
		name     string
		err      error
		code     codes.Code
		msg      string
		details  []proto.Message
		errLogs  int // ERROR lines
		warnLogs int // WARN lines
	}{
		{
			name: "insufficient credits keeps reason and metadata",
			err: fmt.Errorf("debit: %w", &ledger.Error{
				Code: ledger.CodeFailedPrecondition, Reason: ledger.ReasonInsufficientCredits,
				Message: "the balance of 5 credits does not cover 9", Metadata: map[string]string{"balance": "5", "required": "9"},
			}),
			code:    codes.FailedPrecondition,
			msg:     "the balance of 5 credits does not cover 9",
			details: []proto.Message{info("INSUFFICIENT_CREDITS", map[string]string{"balance": "5", "required": "9"})},
		},
		{
			name: "invalid with field violations adds BadRequest",
			err: &ledger.Error{
				Code: ledger.CodeInvalid, Reason: ledger.ReasonInvalidArgument, Message: "invalid request: amount: must be greater than 0",
				Violations: []ledger.FieldViolation{{Field: "amount", Description: "must be greater than 0"}, {Field: "idempotency_key", Description: "is required"}},
			},
			code: codes.InvalidArgument,
			msg:  "invalid request: amount: must be greater than 0",
			details: []proto.Message{
				info("INVALID_ARGUMENT", nil),
				&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
					{Field: "amount", Description: "must be greater than 0"},
					{Field: "idempotency_key", Description: "is required"},
				}},
			},
		},
		{
			name:    "idempotency key reused is INVALID_ARGUMENT",
			err:     &ledger.Error{Code: ledger.CodeInvalid, Reason: ledger.ReasonIdempotencyKeyReused, Message: "reused", Metadata: map[string]string{"original_operation": "credit"}},
			code:    codes.InvalidArgument,
			msg:     "reused",
			details: []proto.Message{info("IDEMPOTENCY_KEY_REUSED", map[string]string{"original_operation": "credit"})},
		},
		{
			name:    "not found",
			err:     ledger.NotFoundError("request", "r1"),
			code:    codes.NotFound,
			msg:     `request "r1" not found`,
			details: []proto.Message{info("NOT_FOUND", map[string]string{"resource": "request", "id": "r1"})},
		},
		{
			name:    "already exists",
			err:     &ledger.Error{Code: ledger.CodeAlreadyExists, Reason: ledger.ReasonAlreadyExists, Message: "exists"},
			code:    codes.AlreadyExists,
			msg:     "exists",
			details: []proto.Message{info("ALREADY_EXISTS", nil)},
		},
		{
			name: "payment method not offered is FAILED_PRECONDITION",
			err: &ledger.Error{
				Code: ledger.CodeFailedPrecondition, Reason: ledger.ReasonPaymentMethodNotOffered,
				Message: "the workspace does not offer BANK_TRANSFER as a payment method", Metadata: map[string]string{"payment_method": "BANK_TRANSFER"},
			},
			code:    codes.FailedPrecondition,
			msg:     "the workspace does not offer BANK_TRANSFER as a payment method",
			details: []proto.Message{info("PAYMENT_METHOD_NOT_OFFERED", map[string]string{"payment_method": "BANK_TRANSFER"})},
		},
		{
			name: "a cancelled request is already decided",
			err: &ledger.Error{
				Code: ledger.CodeFailedPrecondition, Reason: ledger.ReasonRequestAlreadyDecided,
				Message: "the request was already cancelled", Metadata: map[string]string{"request_id": "r1", "status": "CANCELLED"},
			},
			code:    codes.FailedPrecondition,
			msg:     "the request was already cancelled",
			details: []proto.Message{info("REQUEST_ALREADY_DECIDED", map[string]string{"request_id": "r1", "status": "CANCELLED"})},
		},
		{
			name:    "version mismatch is ABORTED",
			err:     &ledger.Error{Code: ledger.CodeAborted, Reason: ledger.ReasonVersionMismatch, Message: "v", Metadata: map[string]string{"current_version": "3"}},
			code:    codes.Aborted,
			msg:     "v",
			details: []proto.Message{info("VERSION_MISMATCH", map[string]string{"current_version": "3"})},
		},
		{
			name:     "unavailable hides the cause from the caller, warns once",
			err:      ledger.UnavailableError(secret),
			code:     codes.Unavailable,
			msg:      "store unavailable; retry with the same idempotency key",
			details:  []proto.Message{info("STORE_UNAVAILABLE", nil)},
			warnLogs: 1,
		},
		{
			name:    "unauthenticated",
			err:     unauthenticated("missing bearer token"),
			code:    codes.Unauthenticated,
			msg:     "missing bearer token",
			details: []proto.Message{info("UNAUTHENTICATED", nil)},
		},
		{
			name:    "permission denied",
			err:     permissionDenied("no", map[string]string{"required_scope": "ledger:write"}),
			code:    codes.PermissionDenied,
			msg:     "no",
			details: []proto.Message{info("PERMISSION_DENIED", map[string]string{"required_scope": "ledger:write"})},
		},
		{
			name: "balance limit exceeded is FAILED_PRECONDITION",
			err: &ledger.Error{
				Code: ledger.CodeFailedPrecondition, Reason: ledger.ReasonBalanceLimitExceeded, Message: "over",
				Metadata: map[string]string{"limit": "1000000000000000"},
			},
			code:    codes.FailedPrecondition,
			msg:     "over",
			details: []proto.Message{info("BALANCE_LIMIT_EXCEEDED", map[string]string{"limit": "1000000000000000"})},
		},
		{
			name: "too many pending requests is FAILED_PRECONDITION",
			err: &ledger.Error{
				Code: ledger.CodeFailedPrecondition, Reason: ledger.ReasonTooManyPendingRequests, Message: "wait",
				Metadata: map[string]string{"limit": "20"},
			},
			code:    codes.FailedPrecondition,
			msg:     "wait",
			details: []proto.Message{info("TOO_MANY_PENDING_REQUESTS", map[string]string{"limit": "20"})},
		},
		{
			name: "rate limited is RESOURCE_EXHAUSTED with RetryInfo",
			err:  rateLimited("subject", 1500*time.Millisecond),
			code: codes.ResourceExhausted,
			msg:  "too many requests (subject limit); retry in 2 s",
			details: []proto.Message{
				info("RATE_LIMITED", map[string]string{"limit": "subject", "retry_after_seconds": "2"}),
				&errdetails.RetryInfo{RetryDelay: durationpb.New(1500 * time.Millisecond)},
			},
		},
		{
			name:    "empty message falls back to the reason",
			err:     &ledger.Error{Code: ledger.CodeFailedPrecondition, Reason: ledger.ReasonCreditPaymentsDisabled},
			code:    codes.FailedPrecondition,
			msg:     "CREDIT_PAYMENTS_DISABLED",
			details: []proto.Message{info("CREDIT_PAYMENTS_DISABLED", nil)},
		},
		{
			name:    "context canceled",
			err:     fmt.Errorf("view: %w", context.Canceled),
			code:    codes.Canceled,
			msg:     "the request was canceled",
			details: []proto.Message{info("CANCELED", nil)},
		},
		{
			name:    "deadline exceeded",
			err:     context.DeadlineExceeded,
			code:    codes.DeadlineExceeded,
			msg:     "the request deadline was exceeded",
			details: []proto.Message{info("DEADLINE_EXCEEDED", nil)},
		},
		{
			name:    "internal ledger error wrapping a canceled context is CANCELED",
			err:     ledger.InternalError(context.Canceled),
			code:    codes.Canceled,
			msg:     "the request was canceled",
			details: []proto.Message{info("CANCELED", nil)},
		},
		{
			name:    "unknown error is INTERNAL with a generic message and one log line",
			err:     fmt.Errorf("scan row: %w", secret),
			code:    codes.Internal,
			msg:     "internal error",
			details: []proto.Message{info("INTERNAL", nil)},
			errLogs: 1,
		},
		{
			name:    "internal ledger error never shows its message or cause",
			err:     &ledger.Error{Code: ledger.CodeInternal, Reason: "SOMETHING", Message: "SELECT * FROM secrets", Cause: secret},
			code:    codes.Internal,
			msg:     "internal error",
			details: []proto.Message{info("INTERNAL", nil)},
			errLogs: 1,
		},
		{
			name:    "unknown domain code is INTERNAL",
			err:     &ledger.Error{Code: ledger.Code(99), Reason: "NEW", Message: "new"},
			code:    codes.Internal,
			msg:     "internal error",
			details: []proto.Message{info("INTERNAL", nil)},
			errLogs: 1,
		},
		{
			name:    "panic is INTERNAL",
			err:     ledger.InternalError(&panicError{value: "boom", stack: []byte("goroutine 1")}),
			code:    codes.Internal,
			msg:     "internal error",
			details: []proto.Message{info("INTERNAL", nil)},
			errLogs: 1,
		},
		{
			name: "an existing gRPC status passes unchanged",
			err:  status.Error(codes.ResourceExhausted, "grpc: received message larger than max"),
			code: codes.ResourceExhausted,
			msg:  "grpc: received message larger than max",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			core, logs := observer.New(zapcore.DebugLevel)
			st := toStatus(context.Background(), zap.New(core), "/creditledger.v1.CreditLedger/Debit", tt.err)
			if st.Code() != tt.code || st.Message() != tt.msg {
				t.Errorf("status = %v %q, want %v %q", st.Code(), st.Message(), tt.code, tt.msg)
			}
			var got []proto.Message
			for _, d := range st.Details() {
				m, ok := d.(proto.Message)
				if !ok {
					t.Fatalf("detail %T is not a proto message (%v)", d, d)
				}
				got = append(got, m)
			}
			if diff := cmp.Diff(tt.details, got, protocmp.Transform()); diff != "" {
				t.Errorf("details (-want +got):\n%s", diff)
			}
			errLines := logs.FilterLevelExact(zapcore.ErrorLevel).All()
			warnLines := logs.FilterLevelExact(zapcore.WarnLevel).All()
			if len(errLines) != tt.errLogs || len(warnLines) != tt.warnLogs {
				t.Fatalf("logged %d error and %d warn lines, want %d and %d: %v", len(errLines), len(warnLines), tt.errLogs, tt.warnLogs, logs.All())
			}
			for _, l := range append(errLines, warnLines...) {
				// The full cause is in the log line, with the method.
				if l.ContextMap()["error"] != tt.err.Error() || l.ContextMap()["method"] == "" {
					t.Errorf("log line %v lacks the full cause %q", l.ContextMap(), tt.err.Error())
				}
			}
		})
	}
}

func TestToStatusNil(t *testing.T) {
	t.Parallel()
	if st := toStatus(context.Background(), zap.NewNop(), "m", nil); st.Code() != codes.OK {
		t.Fatalf("nil error → %v", st.Code())
	}
}
