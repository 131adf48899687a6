package grpcserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/creditledger/creditledger/internal/ledger"
)

// RequestIDHeader is the metadata key (and HTTP header) carrying the request id.
const RequestIDHeader = "x-request-id"

const maxRequestIDLength = 128

type requestIDKey struct{}

// RequestIDFromContext returns the request id the interceptor assigned ("" outside a request).
func RequestIDFromContext(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// ValidRequestID reports whether a caller's request id is acceptable: short
// and made of characters that are safe in logs and headers. Otherwise a
// fresh one is used.
func ValidRequestID(s string) bool {
	if s == "" || len(s) > maxRequestIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// requestIDInterceptor takes the caller's x-request-id (or makes one), puts
// it in the context for the log lines, and returns it as a response header.
func requestIDInterceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return handler(withRequestID(ctx), req)
}

// withRequestID is requestIDInterceptor's work, for unary calls and streams.
func withRequestID(ctx context.Context) context.Context {
	var id string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(RequestIDHeader); len(v) > 0 && ValidRequestID(v[0]) {
			id = v[0]
		}
	}
	if id == "" {
		id = uuid.NewString()
	}
	// The header is sent with the response or the error status; a failure
	// here only means the stream is already gone.
	_ = grpc.SetHeader(ctx, metadata.Pairs(RequestIDHeader, id))
	return context.WithValue(ctx, requestIDKey{}, id)
}

// callInfo is filled by inner interceptors for the request's log line.
type callInfo struct {
	subject string // authenticated caller
	reason  string // ErrorInfo reason of a failed call
	// authError says why a bearer token was refused: for the operator's
	// log only, never for the caller.
	authError string
}

type callInfoKey struct{}

func callInfoFrom(ctx context.Context) *callInfo {
	ci, _ := ctx.Value(callInfoKey{}).(*callInfo)
	if ci == nil {
		return &callInfo{}
	}
	return ci
}

// loggingInterceptor writes one JSON line per request. It never logs
// request bodies: only the method, the workspace and account, the outcome,
// the duration, the request id, the caller's subject and a short hash of the
// idempotency key (enough to correlate retries, useless to replay them).
func loggingInterceptor(log *zap.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		ci := &callInfo{}
		resp, err := handler(context.WithValue(ctx, callInfoKey{}, ci), req)
		logCall(ctx, log, info.FullMethod, req, ci, start, err)
		return resp, err
	}
}

// logCall writes a call's line: the request's names (req may be nil for a
// stream that never received one), the outcome and what inner
// interceptors noted in ci.
func logCall(ctx context.Context, log *zap.Logger, method string, req any, ci *callInfo, start time.Time, err error) {
	code := status.Code(err)
	lvl := levelFor(code)
	if code == codes.OK && strings.HasPrefix(method, "/grpc.health.v1.Health/") {
		lvl = zapcore.DebugLevel // probes every few seconds would drown the log
	}
	// Nothing is built (the key's hash included) for a line the level drops.
	ce := log.Check(lvl, "request")
	if ce == nil {
		return
	}
	fields := make([]zap.Field, 0, 10)
	fields = append(fields,
		zap.String("method", method),
		zap.String("code", code.String()),
		zap.Float64("duration_seconds", time.Since(start).Seconds()),
		zap.String("request_id", RequestIDFromContext(ctx)),
	)
	if r, ok := req.(interface{ GetWorkspace() string }); ok {
		fields = append(fields, zap.String("workspace", logName(r.GetWorkspace())))
	}
	if r, ok := req.(interface{ GetAccount() string }); ok && r.GetAccount() != "" {
		fields = append(fields, zap.String("account", logName(r.GetAccount())))
	}
	if r, ok := req.(interface{ GetIdempotencyKey() string }); ok && r.GetIdempotencyKey() != "" {
		fields = append(fields, zap.String("idempotency_key_sha256", keyHash(r.GetIdempotencyKey())))
	}
	if ci.subject != "" {
		fields = append(fields, zap.String("subject", ci.subject))
	}
	if id, ok := PeerServiceIdentity(ctx); ok {
		// The mTLS identity of the connection: which service (or the
		// REST gateway) the call came through.
		fields = append(fields, zap.String("peer_service", cut(id, maxLogName)))
	}
	if ci.reason != "" {
		fields = append(fields, zap.String("reason", ci.reason))
	}
	if ci.authError != "" {
		fields = append(fields, zap.String("auth_error", cut(ci.authError, maxLogAuthError)))
	}
	ce.Write(fields...)
}

// maxLogName bounds a workspace or account name in a log line. The line is
// written whatever the request's validity, before a refusal: a valid name
// has at most ledger.MaxIDLength characters, an invalid one is cut.
const maxLogName = ledger.MaxIDLength

// maxLogAuthError bounds the reason a token was refused in a log line:
// it may quote the token's own (attacker-chosen) claim names.
const maxLogAuthError = 256

// logName returns s cut to maxLogName bytes (on a rune boundary), marked
// with "…" when cut.
func logName(s string) string { return cut(s, maxLogName) }

// cut returns s cut to at most n bytes (on a rune boundary), marked with
// "…" when cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// keyHash is a short, stable digest of an idempotency key for logs.
func keyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:6])
}

// levelFor logs server-side failures at WARN (their cause has its own line)
// and everything a client caused at INFO.
func levelFor(c codes.Code) zapcore.Level {
	switch c {
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unavailable, codes.Unimplemented:
		return zapcore.WarnLevel
	default:
		return zapcore.InfoLevel
	}
}

// statusInterceptor turns whatever the inner chain returned into a gRPC
// status through toStatus, and notes the reason for the log line.
func statusInterceptor(log *zap.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if err == nil {
			return resp, nil
		}
		return nil, statusError(ctx, log, info.FullMethod, err)
	}
}

// statusError is statusInterceptor's work, for unary calls and streams.
func statusError(ctx context.Context, log *zap.Logger, method string, err error) error {
	st := toStatus(ctx, log, method, err)
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			callInfoFrom(ctx).reason = ei.GetReason()
		}
	}
	return st.Err()
}

// panicError carries a recovered panic to toStatus, which logs it (with the
// stack) as the request's one internal-error line.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

// recoveryInterceptor turns a handler panic into INTERNAL instead of a
// crashed process.
func recoveryInterceptor() grpc.UnaryServerInterceptor {
	return recovery.UnaryServerInterceptor(recovery.WithRecoveryHandlerContext(recoverPanic))
}

func recoverPanic(_ context.Context, p any) error {
	stack := make([]byte, 16<<10)
	stack = stack[:runtime.Stack(stack, false)]
	return ledger.InternalError(&panicError{value: p, stack: stack})
}
