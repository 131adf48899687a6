package grpcserver

import (
	"context"
	"sync"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Stream interceptors: the same chain as the unary one (request id →
// metrics → log line → error to status → panic recovery → UTF-8 → auth →
// rate limits → handler), for streaming RPCs (ExportTransactions, health
// Watch, reflection).
//
// A stream's request is not known when the interceptors run: the handler
// receives it. So the checks that need the request (UTF-8, authorization,
// rate limits) run on the stream's first received message, inside
// RecvMsg, before the handler sees it; a refusal is returned by RecvMsg
// and, as the generated handlers return it unchanged, ends the call with
// that error like a unary refusal. Until a message has passed those checks
// the handler can send nothing: SendMsg refuses, so that no stream answers
// before it is authorized.

// checkedStream runs a check on the first message a handler receives and
// may give the handler a context of its own.
type checkedStream struct {
	grpc.ServerStream
	ctx context.Context // nil: the wrapped stream's
	// check runs on the first message received; it may replace ctx.
	check func(s *checkedStream, m any) error
	// gate: SendMsg is refused until the first message passed check.
	gate bool

	mu      sync.Mutex
	checked bool // the first message was received and check returned
	passed  bool // check accepted it
}

func (s *checkedStream) Context() context.Context {
	if s.ctx != nil {
		return s.ctx
	}
	return s.ServerStream.Context()
}

func (s *checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.checked {
		return nil
	}
	s.checked = true
	if s.check != nil {
		if err := s.check(s, m); err != nil {
			return err
		}
	}
	s.passed = true
	return nil
}

func (s *checkedStream) SendMsg(m any) error {
	if s.gate {
		s.mu.Lock()
		passed := s.passed
		s.mu.Unlock()
		if !passed {
			return permissionDenied("a stream answers only a received, authorized request", nil)
		}
	}
	return s.ServerStream.SendMsg(m)
}

// streamRequestID is requestIDInterceptor for streams.
func streamRequestID(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &checkedStream{ServerStream: ss, ctx: withRequestID(ss.Context())})
}

// streamLogging is loggingInterceptor for streams: one line when the call
// ends, naming the request's workspace and account once it was received.
func streamLogging(log *zap.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		ci := &callInfo{}
		var req any
		ctx := context.WithValue(ss.Context(), callInfoKey{}, ci)
		err := handler(srv, &checkedStream{ServerStream: ss, ctx: ctx, check: func(_ *checkedStream, m any) error {
			req = m
			return nil
		}})
		logCall(ss.Context(), log, info.FullMethod, req, ci, start, err)
		return err
	}
}

// streamStatus is statusInterceptor for streams.
func streamStatus(log *zap.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		err := handler(srv, ss)
		if err == nil {
			return nil
		}
		return statusError(ss.Context(), log, info.FullMethod, err)
	}
}

// streamRecovery is recoveryInterceptor for streams.
func streamRecovery() grpc.StreamServerInterceptor {
	return recovery.StreamServerInterceptor(recovery.WithRecoveryHandlerContext(recoverPanic))
}

// streamUTF8 is utf8Interceptor for streams.
func streamUTF8(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &checkedStream{ServerStream: ss, check: func(_ *checkedStream, m any) error {
		return checkUTF8(m)
	}})
}

// streamAuth is authInterceptor for streams: the first message is
// authorized before the handler sees it, and the handler's context then
// carries the caller's Principal. Nothing can be sent before.
func streamAuth(a Authorizer) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &checkedStream{ServerStream: ss, gate: true, check: func(s *checkedStream, m any) error {
			ctx, err := authorize(ss.Context(), a, info.FullMethod, m)
			if err != nil {
				return err
			}
			s.ctx = ctx
			return nil
		}})
	}
}

// streamRateLimit is rateLimitInterceptor for streams.
func streamRateLimit(rl *rateLimiter) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &checkedStream{ServerStream: ss, gate: true, check: func(s *checkedStream, m any) error {
			return rl.check(s.Context(), info.FullMethod, m)
		}})
	}
}
