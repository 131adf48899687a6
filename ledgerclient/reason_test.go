package ledgerclient

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/grpcserver"
)

func TestReasonNamesRoundTrip(t *testing.T) {
	t.Parallel()
	for v := range pb.ErrorReason_name {
		r := pb.ErrorReason(v)
		name := ReasonName(r)
		if r == pb.ErrorReason_ERROR_REASON_UNSPECIFIED {
			if name != "" || ParseReason("") != r {
				t.Errorf("UNSPECIFIED: name %q", name)
			}
			continue
		}
		if name == "" || strings.HasPrefix(name, "ERROR_REASON_") {
			t.Errorf("ReasonName(%v) = %q", r, name)
		}
		if got := ParseReason(name); got != r {
			t.Errorf("ParseReason(%q) = %v, want %v", name, got, r)
		}
		// The server writes the same string for the same value.
		if got := grpcserver.WireReason(r); got != name {
			t.Errorf("server sends %q for %v, client reads %q", got, r, name)
		}
	}
	if got := ParseReason("SOMETHING_NEW"); got != pb.ErrorReason_ERROR_REASON_UNSPECIFIED {
		t.Errorf("unknown reason parsed as %v", got)
	}
}

func TestReasonConstantsAreErrorReasons(t *testing.T) {
	t.Parallel()
	for _, c := range []string{
		ReasonInvalidArgument, ReasonIdempotencyKeyReused, ReasonInsufficientCredits, ReasonCreditPaymentsDisabled,
		ReasonRequestAlreadyDecided, ReasonPackageInactive, ReasonNoConversionRate, ReasonPaymentMethodNotOffered,
		ReasonVersionMismatch, ReasonIdempotencyKeyInUse, ReasonNotFound, ReasonAlreadyExists,
		ReasonHoldNotActive, ReasonReversalExceedsOriginal, ReasonNotReversible,
	} {
		if r := ParseReason(c); r == pb.ErrorReason_ERROR_REASON_UNSPECIFIED || ReasonName(r) != c {
			t.Errorf("%q is not an ErrorReason (parsed as %v)", c, r)
		}
	}
	for _, s := range []*Error{
		ErrInsufficientCredits, ErrCreditPaymentsDisabled, ErrRequestAlreadyDecided, ErrPackageInactive,
		ErrNoConversionRate, ErrPaymentMethodNotOffered, ErrVersionMismatch, ErrIdempotencyKeyInUse,
		ErrIdempotencyKeyReused, ErrHoldNotActive, ErrReversalExceedsOriginal, ErrNotReversible,
	} {
		if s.ErrorReason == pb.ErrorReason_ERROR_REASON_UNSPECIFIED || ReasonName(s.ErrorReason) != s.Reason {
			t.Errorf("sentinel %v: ErrorReason %v, Reason %q", s, s.ErrorReason, s.Reason)
		}
	}
}

// statusErr is what the gRPC stack returns for a refusal of the ledger.
func statusErr(t *testing.T, code codes.Code, reason string, md map[string]string) error {
	t.Helper()
	st, err := status.New(code, "refused").WithDetails(&errdetails.ErrorInfo{Domain: ErrorDomain, Reason: reason, Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

func TestErrorsCarryTheEnum(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		err       error
		want      pb.ErrorReason
		reason    string
		sentinel  error
		refused   bool
		transient bool
	}{
		{
			name:     "insufficient credits",
			err:      statusErr(t, codes.FailedPrecondition, "INSUFFICIENT_CREDITS", map[string]string{"balance": "5", "required": "9"}),
			want:     pb.ErrorReason_ERROR_REASON_INSUFFICIENT_CREDITS,
			reason:   "INSUFFICIENT_CREDITS",
			sentinel: ErrInsufficientCredits,
			refused:  true,
		},
		{
			name:      "key in use is retried",
			err:       statusErr(t, codes.Aborted, "IDEMPOTENCY_KEY_IN_USE", nil),
			want:      pb.ErrorReason_ERROR_REASON_IDEMPOTENCY_KEY_IN_USE,
			reason:    "IDEMPOTENCY_KEY_IN_USE",
			sentinel:  ErrIdempotencyKeyInUse,
			transient: true,
		},
		{
			name:     "key reused is neither refused nor transient",
			err:      statusErr(t, codes.InvalidArgument, "IDEMPOTENCY_KEY_REUSED", nil),
			want:     pb.ErrorReason_ERROR_REASON_IDEMPOTENCY_KEY_REUSED,
			reason:   "IDEMPOTENCY_KEY_REUSED",
			sentinel: ErrIdempotencyKeyReused,
		},
		{
			name:     "a reason without a sentinel still has its enum",
			err:      statusErr(t, codes.FailedPrecondition, "TOO_MANY_PENDING_REQUESTS", nil),
			want:     pb.ErrorReason_ERROR_REASON_TOO_MANY_PENDING_REQUESTS,
			reason:   "TOO_MANY_PENDING_REQUESTS",
			sentinel: &Error{ErrorReason: pb.ErrorReason_ERROR_REASON_TOO_MANY_PENDING_REQUESTS},
			refused:  true,
		},
		{
			name:     "a newer server's reason keeps its string and is judged by its code",
			err:      statusErr(t, codes.FailedPrecondition, "SOMETHING_NEW", nil),
			want:     pb.ErrorReason_ERROR_REASON_UNSPECIFIED,
			reason:   "SOMETHING_NEW",
			sentinel: &Error{Reason: "SOMETHING_NEW"},
			refused:  true,
		},
		{
			name:      "no ErrorInfo",
			err:       status.Error(codes.Unavailable, "connection refused"),
			want:      pb.ErrorReason_ERROR_REASON_UNSPECIFIED,
			sentinel:  ErrUnavailable,
			transient: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := fmt.Errorf("pay order: %w", fromError(tt.err, nil))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%v is not an *Error", err)
			}
			if e.ErrorReason != tt.want || e.Reason != tt.reason {
				t.Errorf("ErrorReason %v, Reason %q; want %v, %q", e.ErrorReason, e.Reason, tt.want, tt.reason)
			}
			if got := ErrorReasonOf(err); got != tt.want {
				t.Errorf("ErrorReasonOf = %v", got)
			}
			if !errors.Is(err, tt.sentinel) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.sentinel)
			}
			if IsRefused(err) != tt.refused || IsTransient(err) != tt.transient {
				t.Errorf("IsRefused %v, IsTransient %v; want %v, %v", IsRefused(err), IsTransient(err), tt.refused, tt.transient)
			}
		})
	}
}

func TestSentinelsMatchByEnumOrString(t *testing.T) {
	t.Parallel()
	// A test double may build the error with the string only, or the enum only.
	byString := &Error{Code: codes.FailedPrecondition, Reason: ReasonInsufficientCredits}
	byEnum := &Error{Code: codes.FailedPrecondition, ErrorReason: pb.ErrorReason_ERROR_REASON_INSUFFICIENT_CREDITS}
	for _, e := range []*Error{byString, byEnum} {
		if !errors.Is(e, ErrInsufficientCredits) {
			t.Errorf("%#v does not match ErrInsufficientCredits", e)
		}
		if errors.Is(e, ErrCreditPaymentsDisabled) {
			t.Errorf("%#v matches ErrCreditPaymentsDisabled", e)
		}
		if ErrorReasonOf(e) != pb.ErrorReason_ERROR_REASON_INSUFFICIENT_CREDITS {
			t.Errorf("ErrorReasonOf(%#v) = %v", e, ErrorReasonOf(e))
		}
		if got := e.Error(); got != "ledger: FAILED_PRECONDITION INSUFFICIENT_CREDITS" {
			t.Errorf("Error() = %q", got)
		}
	}
	if errors.Is(&Error{Code: codes.FailedPrecondition}, ErrInsufficientCredits) {
		t.Error("an error without a reason matches a reason's sentinel")
	}
	keyReused := &Error{Code: codes.InvalidArgument, Reason: ReasonIdempotencyKeyReused}
	if IsRefused(keyReused) {
		t.Error("IDEMPOTENCY_KEY_REUSED built from its string counts as refused")
	}
}
