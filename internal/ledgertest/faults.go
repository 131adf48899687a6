package ledgertest

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Fault is an injected failure of one call.
type Fault struct {
	// Code and Reason (an ErrorInfo reason, optional) of the status the
	// caller gets; codes.OK with a Delay only delays the call.
	Code   codes.Code
	Reason string
	// After applies the call first and then fails it: the effect is
	// committed, the answer is lost (a timeout, or a connection broken
	// after COMMIT). The call is applied in full even if its caller gives
	// up meanwhile, and the next calls of the method wait until it was:
	// a retry finds it committed, as after a real lost answer.
	After bool
	// Delay waits this long before the call is applied (after it was,
	// with After), or until the caller gives up.
	Delay time.Duration
}

// Call is one call the server received, as its caller made it.
type Call struct {
	// Method is the RPC's short name: "Debit".
	Method         string
	IdempotencyKey string
	// Authorization is the call's "authorization" metadata, as sent.
	Authorization string
	// Code is what the caller got (OK while a call is in flight). A
	// stream keeps OK once it answered, and takes the code it ended with
	// when it ended without answering (refused).
	Code codes.Code
	// Request is a copy of the request (nil for a stream refused before
	// its request arrived).
	Request proto.Message
}

// InjectFault queues faults for the next calls of method (short name,
// "Debit"), one per call, in order. A stream's fault refuses it before
// it starts (Code), or delays its start; After does not apply.
func (s *Server) InjectFault(method string, faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[method] = append(s.faults[method], faults...)
}

// Calls returns the calls received for method (short name; "" for all),
// in the order they arrived (a stream's, when its request did). Setup
// through the Server's own methods (Fund, SetEnabled…) is not among them.
func (s *Server) Calls(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// BreakWatches ends every open WatchEvents stream with UNAVAILABLE, as a
// restarted ledger or a lost connection would; the events stay, and new
// watches open as usual.
func (s *Server) BreakWatches() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := range s.watches {
		w.broken = true
		w.cancel()
		delete(s.watches, w)
	}
}

// nextFault takes the fault queued for method, if any.
func (s *Server) nextFault(method string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.faults[method]
	if len(q) == 0 {
		return nil
	}
	s.faults[method] = q[1:]
	return &q[0]
}

// record appends a call and returns its index.
func (s *Server) record(c Call) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
	return len(s.calls) - 1
}

func newCall(ctx context.Context, fullMethod string) Call {
	c := Call{Method: fullMethod[strings.LastIndex(fullMethod, "/")+1:]}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			c.Authorization = v[0]
		}
	}
	return c
}

func (c *Call) setRequest(req any) {
	if m, ok := req.(proto.Message); ok {
		c.Request = proto.Clone(m)
	}
	if k, ok := req.(interface{ GetIdempotencyKey() string }); ok {
		c.IdempotencyKey = k.GetIdempotencyKey()
	}
}

// intercept records unary calls and applies their faults, outside the
// server's own chain: what it returns is what the caller gets, and the
// server's logs and metrics see the call as it ran.
func (s *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	call := newCall(ctx, info.FullMethod)
	call.setRequest(req)
	i := s.record(call)
	res, err := s.serve(ctx, req, handler, call.Method)
	s.mu.Lock()
	s.calls[i].Code = status.Code(err)
	s.mu.Unlock()
	return res, err
}

func (s *Server) serve(ctx context.Context, req any, handler grpc.UnaryHandler, method string) (any, error) {
	if err := s.waitApplied(ctx, method); err != nil {
		return nil, err
	}
	f := s.nextFault(method)
	if f == nil {
		return handler(ctx, req)
	}
	if !f.After {
		if err := f.wait(ctx); err != nil {
			return nil, err
		}
		if f.Code != codes.OK {
			return nil, f.err("injected fault")
		}
		return handler(ctx, req)
	}
	res, err := s.apply(ctx, req, handler, method)
	if werr := f.wait(ctx); werr != nil {
		return nil, werr
	}
	if f.Code != codes.OK {
		return nil, f.err("injected fault after the call took effect")
	}
	return res, err
}

// apply runs a call whose answer will be lost to its end, whatever its
// caller does meanwhile; the method's next calls wait for it.
func (s *Server) apply(ctx context.Context, req any, handler grpc.UnaryHandler, method string) (any, error) {
	done := make(chan struct{})
	s.mu.Lock()
	s.applying[method] = append(s.applying[method], done)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.applying[method] = slices.DeleteFunc(s.applying[method], func(c chan struct{}) bool { return c == done })
		close(done)
	}()
	return handler(context.WithoutCancel(ctx), req)
}

// waitApplied waits until the calls of method ("" for every method)
// being applied under an After fault are, or until ctx ends.
func (s *Server) waitApplied(ctx context.Context, method string) error {
	s.mu.Lock()
	pending := slices.Clone(s.applying[method])
	if method == "" {
		for _, chans := range s.applying {
			pending = append(pending, chans...)
		}
	}
	s.mu.Unlock()
	for _, done := range pending {
		select {
		case <-done:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	return nil
}

// wait sleeps the fault's delay, or until the caller gives up.
func (f *Fault) wait(ctx context.Context) error {
	if f.Delay <= 0 {
		return nil
	}
	t := time.NewTimer(f.Delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	case <-t.C:
		return nil
	}
}

// err is the fault's status, with an ErrorInfo like the server's own.
func (f *Fault) err(msg string) error {
	st := status.New(f.Code, "ledgertest: "+msg)
	if f.Reason == "" {
		return st.Err()
	}
	withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Domain: "creditledger", Reason: f.Reason})
	if err != nil {
		return st.Err()
	}
	return withInfo.Err()
}

// watch is an open stream that BreakWatches can end.
type watch struct {
	cancel context.CancelFunc
	broken bool // guarded by Server.mu
}

// interceptStream records streams and applies their faults (see Call
// and InjectFault); every stream can be broken by BreakWatches.
func (s *Server) interceptStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	call := newCall(ss.Context(), info.FullMethod)
	if f := s.nextFault(call.Method); f != nil {
		if err := f.wait(ss.Context()); err != nil {
			call.Code = status.Code(err)
			s.record(call)
			return err
		}
		if f.Code != codes.OK {
			err := f.err("injected fault")
			call.Code = status.Code(err)
			s.record(call)
			return err
		}
	}
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	w := &watch{cancel: cancel}
	s.mu.Lock()
	s.watches[w] = struct{}{}
	s.mu.Unlock()
	rs := &recordingStream{ServerStream: ss, ctx: ctx, s: s, call: call, index: -1}
	err := handler(srv, rs)

	rs.mu.Lock()
	index, answered := rs.index, rs.answered
	rs.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.watches, w)
	if w.broken {
		err = status.Error(codes.Unavailable, "ledgertest: the watch was broken")
	}
	switch {
	case index < 0: // ended before its request arrived
		call.Code = status.Code(err)
		s.calls = append(s.calls, call)
	case !answered:
		s.calls[index].Code = status.Code(err)
	}
	return err
}

// recordingStream records its call when the request arrives, so that a
// test sees an open watch, and notes whether it answered.
type recordingStream struct {
	grpc.ServerStream
	ctx  context.Context
	s    *Server
	call Call

	mu       sync.Mutex
	index    int // in s.calls; -1 until the request arrived
	answered bool
}

func (r *recordingStream) Context() context.Context { return r.ctx }

func (r *recordingStream) RecvMsg(m any) error {
	err := r.ServerStream.RecvMsg(m)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil && r.index < 0 {
		c := r.call
		c.setRequest(m)
		r.index = r.s.record(c)
	}
	return err
}

func (r *recordingStream) SendMsg(m any) error {
	err := r.ServerStream.SendMsg(m)
	if err == nil {
		r.mu.Lock()
		r.answered = true
		r.mu.Unlock()
	}
	return err
}
