package fakeledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/fakeledger"
)

const ws = "agency-1"

func client(tb testing.TB, f *fakeledger.Server) pb.CreditLedgerClient {
	tb.Helper()
	conn, err := grpc.NewClient(f.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return pb.NewCreditLedgerClient(conn)
}

func types(evs []*pb.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.GetType()
	}
	return out
}

// Every change writes its events, numbered per workspace, in the order of
// the real ledger within a change; the hold's expiry is written when the
// clock passes it, without another call.
func TestChangesWriteTheirEvents(t *testing.T) {
	t.Parallel()
	f := fakeledger.Start(t)
	c := client(t, f)
	ctx := t.Context()
	f.SetEnabled(ws, true)
	f.Fund(ws, "client-1", 100)
	h1, err := c.CreateHold(ctx, &pb.CreateHoldRequest{Workspace: ws, Account: "client-1", Amount: 10, IdempotencyKey: "h1", Ttl: durationpb.New(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CaptureHold(ctx, &pb.CaptureHoldRequest{Workspace: ws, HoldId: h1.GetHold().GetId(), IdempotencyKey: "c1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateHold(ctx, &pb.CreateHoldRequest{Workspace: ws, Account: "client-1", Amount: 5, IdempotencyKey: "h2", Ttl: durationpb.New(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	f.Advance(2 * time.Minute)
	sub, err := c.SubmitRequest(ctx, &pb.SubmitRequestRequest{
		Workspace: ws, Account: "client-2", Amount: 50, PaymentMethod: pb.PaymentMethod_PAYMENT_METHOD_BANK_TRANSFER, IdempotencyKey: "r1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DecideRequest(ctx, &pb.DecideRequestRequest{
		Workspace: ws, RequestId: sub.GetRequest().GetId(), Decision: pb.Decision_DECISION_ACCEPT, DecidedBy: "admin", IdempotencyKey: "d1",
	}); err != nil {
		t.Fatal(err)
	}
	// A replay writes nothing.
	if _, err := c.CaptureHold(ctx, &pb.CaptureHoldRequest{Workspace: ws, HoldId: h1.GetHold().GetId(), IdempotencyKey: "c1"}); err != nil {
		t.Fatal(err)
	}

	evs := f.Events(ws)
	want := []string{
		"settings.updated", "transaction.posted", "hold.created", "transaction.posted", "hold.captured", "hold.created",
		"hold.expired", "request.submitted", "transaction.posted", "request.decided",
	}
	if diff := cmp.Diff(want, types(evs)); diff != "" {
		t.Fatalf("event types (-want +got):\n%s", diff)
	}
	for i, e := range evs {
		if e.GetSequence() != int64(i+1) || e.GetWorkspace() != ws || e.GetId() == "" {
			t.Errorf("event %d: %v", i, e)
		}
	}
	if h := evs[4].GetHold(); h.GetStatus() != pb.HoldStatus_HOLD_STATUS_CAPTURED || h.GetTransactionId() != evs[3].GetTransaction().GetId() {
		t.Errorf("hold.captured carries %v, want the captured hold with its entry %s", h, evs[3].GetTransaction().GetId())
	}
	if r := evs[9].GetRequest(); r.GetStatus() != pb.RequestStatus_REQUEST_STATUS_ACCEPTED || evs[9].GetAccount() != "client-2" {
		t.Errorf("request.decided: %v", evs[9])
	}
}

func TestListEventsPagesAndFilters(t *testing.T) {
	t.Parallel()
	f := fakeledger.Start(t)
	c := client(t, f)
	for _, a := range []string{"a", "b", "a", "b", "a"} {
		f.Fund(ws, a, 1)
	}
	res, err := c.ListEvents(t.Context(), &pb.ListEventsRequest{Workspace: ws, Account: "a", PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.GetEvents()) != 2 || res.GetEvents()[1].GetSequence() != 3 || res.GetLastSequence() != 3 {
		t.Fatalf("first page of a's events: %v", res)
	}
	res, err = c.ListEvents(t.Context(), &pb.ListEventsRequest{Workspace: ws, Account: "a", AfterSequence: res.GetLastSequence()})
	if err != nil || len(res.GetEvents()) != 1 || res.GetEvents()[0].GetSequence() != 5 || res.GetLastSequence() != 5 {
		t.Fatalf("second page: %v, %v", res, err)
	}
	res, err = c.ListEvents(t.Context(), &pb.ListEventsRequest{Workspace: ws, AfterSequence: 5, Types: []string{"hold.expired"}})
	if err != nil || len(res.GetEvents()) != 0 || res.GetLastSequence() != 5 {
		t.Errorf("nothing after the last: %v, %v; want no event and last_sequence 5", res, err)
	}
	if _, err := c.ListEvents(t.Context(), &pb.ListEventsRequest{Workspace: ws, Types: []string{"nope"}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("unknown type: %v, want INVALID_ARGUMENT", err)
	}
}

// A watch sends what follows its cursor, then each new event; a broken
// watch resumed from the last sequence received repeats nothing.
func TestWatchEventsFollowsAndBreaks(t *testing.T) {
	t.Parallel()
	f := fakeledger.Start(t)
	c := client(t, f)
	f.Fund(ws, "a", 1)
	f.Fund(ws, "a", 1)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	st, err := c.WatchEvents(ctx, &pb.WatchEventsRequest{Workspace: ws, AfterSequence: 1})
	if err != nil {
		t.Fatal(err)
	}
	recv := func() *pb.Event {
		t.Helper()
		m, err := st.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		return m.GetEvent()
	}
	if e := recv(); e.GetSequence() != 2 {
		t.Fatalf("first event after 1: %v", e)
	}
	f.Fund(ws, "a", 1)
	if e := recv(); e.GetSequence() != 3 {
		t.Fatalf("the next commit: %v", e)
	}
	f.BreakWatches()
	if _, err := st.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("after BreakWatches: %v, want UNAVAILABLE", err)
	}
	f.Fund(ws, "a", 1)
	if st, err = c.WatchEvents(ctx, &pb.WatchEventsRequest{Workspace: ws, AfterSequence: 3}); err != nil {
		t.Fatal(err)
	}
	if e := recv(); e.GetSequence() != 4 {
		t.Fatalf("resumed after 3: %v", e)
	}
}

func TestCancelRequestWritesRequestCancelled(t *testing.T) {
	t.Parallel()
	f := fakeledger.Start(t)
	c := client(t, f)
	f.SetEnabled(ws, true)
	sub, err := c.SubmitRequest(t.Context(), &pb.SubmitRequestRequest{
		Workspace: ws, Account: "client-1", Amount: 5, PaymentMethod: pb.PaymentMethod_PAYMENT_METHOD_CRYPTO, IdempotencyKey: "r",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !f.CancelRequest(ws, sub.GetRequest().GetId()) || f.CancelRequest(ws, sub.GetRequest().GetId()) {
		t.Fatal("a pending request is cancelled once")
	}
	evs := f.Events(ws)
	if last := evs[len(evs)-1]; last.GetType() != "request.cancelled" || last.GetRequest().GetId() != sub.GetRequest().GetId() {
		t.Errorf("last event: %v", last)
	}
}
