package fakeledger

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledger"
)

// Events (SPEC §10), as the fake keeps them: every change appends its
// events to the workspace's list under the fake's mutex, numbered from 1
// without a gap, in the order of the real ledger within one change (the
// entry before the decision or the hold's end it belongs to). WatchEvents
// sends what follows its cursor and then waits for the next change;
// BreakWatches ends every open watch, as a lost connection would.
// Credits expiry and balance.low are not modelled.

// maxEventPage caps a page of events, like the real ledger.
const maxEventPage = ledger.MaxEventPage

// emit appends an event of workspace w and wakes the watches. data is the
// event's object (cloned): a transaction, request, hold, settings or
// package. Call it with s.mu held.
func (s *Server) emit(w *workspace, typ ledger.EventType, account string, data proto.Message) {
	e := &pb.Event{
		Workspace: w.id, Sequence: int64(len(w.events)) + 1, Type: string(typ), CreateTime: s.ts(), Account: account,
	}
	e.Id = ledger.EventID(w.id, e.GetSequence())
	switch d := proto.Clone(data).(type) {
	case *pb.Transaction:
		e.Data = &pb.Event_Transaction{Transaction: d}
	case *pb.CreditPurchaseRequest:
		e.Data = &pb.Event_Request{Request: d}
	case *pb.Hold:
		e.Data = &pb.Event_Hold{Hold: d}
	case *pb.Settings:
		e.Data = &pb.Event_Settings{Settings: d}
	case *pb.CreditPackage:
		e.Data = &pb.Event_CreditPackage{CreditPackage: d}
	}
	w.events = append(w.events, e)
	close(s.changed)
	s.changed = make(chan struct{})
}

// posted emits transaction.posted for an entry (once it is complete).
func (s *Server) posted(w *workspace, t *pb.Transaction) {
	s.emit(w, ledger.EventTransactionPosted, t.GetAccount(), w.view(t))
}

// Events returns copies of a workspace's events, in sequence order (test
// inspection).
func (s *Server) Events(workspace string) []*pb.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*pb.Event
	for _, e := range s.workspace(workspace).events {
		out = append(out, proto.CloneOf(e))
	}
	return out
}

// BreakWatches ends every open WatchEvents stream with UNAVAILABLE, as a
// restarted ledger or a lost connection would; the events stay.
func (s *Server) BreakWatches() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.broken)
	s.broken = make(chan struct{})
}

// CancelRequest has the client cancel its pending request (test setup
// shortcut): CANCELLED, and request.cancelled.
func (s *Server) CancelRequest(workspace, requestID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.workspace(workspace)
	r, ok := w.requests[requestID]
	if !ok || r.GetStatus() != pb.RequestStatus_REQUEST_STATUS_PENDING {
		return false
	}
	r.Status, r.DecideTime = pb.RequestStatus_REQUEST_STATUS_CANCELLED, s.ts()
	s.emit(w, ledger.EventRequestCancelled, r.GetAccount(), r)
	return true
}

// eventQuery checks ListEvents' and WatchEvents' common fields.
func eventQuery(ws string, after int64, types []string) error {
	if err := required("workspace", ws); err != nil {
		return err
	}
	if after < 0 {
		return invalid("after_sequence", "must be ≥ 0")
	}
	for _, t := range types {
		if !ledger.EventType(t).Valid() {
			return invalid("types", "unknown event type "+t)
		}
	}
	return nil
}

// eventsAfter returns up to limit events of w after a sequence, of the
// account and types when given.
func (w *workspace) eventsAfter(after int64, account string, types []string, limit int) []*pb.Event {
	var out []*pb.Event
	for _, e := range w.events[min(max(after, 0), int64(len(w.events))):] {
		if account != "" && e.GetAccount() != account {
			continue
		}
		if len(types) > 0 && !contains(types, e.GetType()) {
			continue
		}
		out = append(out, proto.CloneOf(e))
		if len(out) == limit {
			break
		}
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, v := range ss {
		if v == s {
			return true
		}
	}
	return false
}

func (l ledgerService) ListEvents(_ context.Context, req *pb.ListEventsRequest) (*pb.ListEventsResponse, error) {
	if err := eventQuery(req.GetWorkspace(), req.GetAfterSequence(), req.GetTypes()); err != nil {
		return nil, err
	}
	n := int(req.GetPageSize())
	switch {
	case n < 0:
		return nil, invalid("page_size", "must be ≥ 0")
	case n == 0:
		n = 100
	case n > maxEventPage:
		n = maxEventPage
	}
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	evs := l.s.workspace(req.GetWorkspace()).eventsAfter(req.GetAfterSequence(), req.GetAccount(), req.GetTypes(), n)
	res := &pb.ListEventsResponse{Events: evs, LastSequence: req.GetAfterSequence()}
	if k := len(evs); k > 0 {
		res.LastSequence = evs[k-1].GetSequence()
	}
	return res, nil
}

func (l ledgerService) WatchEvents(req *pb.WatchEventsRequest, stream grpc.ServerStreamingServer[pb.WatchEventsResponse]) error {
	if err := eventQuery(req.GetWorkspace(), req.GetAfterSequence(), req.GetTypes()); err != nil {
		return err
	}
	s, ctx, after := l.s, stream.Context(), req.GetAfterSequence()
	for {
		s.mu.Lock()
		evs := s.workspace(req.GetWorkspace()).eventsAfter(after, req.GetAccount(), req.GetTypes(), maxEventPage)
		wake, broken := s.changed, s.broken
		s.mu.Unlock()
		for _, e := range evs {
			if err := stream.Send(&pb.WatchEventsResponse{Event: e}); err != nil {
				return err
			}
			after = e.GetSequence()
		}
		if len(evs) == maxEventPage {
			continue
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-broken:
			return fail(codes.Unavailable, "", "fakeledger: the watch was broken", nil)
		case <-wake:
		}
	}
}

// interceptStream gives streams the fake's token check, recording and
// faults (a fault's Code fails the stream before it starts; After and
// Delay do not apply).
func (s *Server) interceptStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	method := shortName(info.FullMethod)
	call := Call{Method: method}
	if md, ok := metadata.FromIncomingContext(ss.Context()); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			call.Authorization = v[0]
		}
	}
	s.mu.Lock()
	var f *Fault
	if q := s.faults[method]; len(q) > 0 {
		f = &q[0]
		s.faults[method] = q[1:]
	}
	s.mu.Unlock()
	rec := &recordingStream{ServerStream: ss}
	var err error
	switch {
	case s.token != "" && call.Authorization != "Bearer "+s.token:
		err = fail(codes.Unauthenticated, "UNAUTHENTICATED", "missing or invalid bearer token", nil)
	case f != nil && f.Code != codes.OK:
		err = fail(f.Code, f.Reason, "injected fault", nil)
	default:
		// The request is recorded when it arrives, not when the stream
		// ends, so that a test sees a watch while it is open.
		rec.onRecv = func(m any) {
			c := call
			if pm, ok := m.(proto.Message); ok {
				c.Request = proto.Clone(pm)
			}
			s.mu.Lock()
			s.calls = append(s.calls, c)
			s.mu.Unlock()
		}
		return handler(srv, rec)
	}
	call.Code = status.Code(err)
	s.mu.Lock()
	s.calls = append(s.calls, call)
	s.mu.Unlock()
	return err
}

func shortName(fullMethod string) string {
	for i := len(fullMethod) - 1; i >= 0; i-- {
		if fullMethod[i] == '/' {
			return fullMethod[i+1:]
		}
	}
	return fullMethod
}

type recordingStream struct {
	grpc.ServerStream
	onRecv func(any)
}

func (r *recordingStream) RecvMsg(m any) error {
	err := r.ServerStream.RecvMsg(m)
	if err == nil && r.onRecv != nil {
		r.onRecv(m)
		r.onRecv = nil
	}
	return err
}
