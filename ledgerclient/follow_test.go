package ledgerclient_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledgertest"
	"github.com/creditledger/creditledger/ledgerclient"
)

// eventually polls cond until it holds or the deadline passes.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recorder is a Follow handler and outage observer safe for the test to read.
type recorder struct {
	mu                sync.Mutex
	seqs              []int64
	outages, recovers int
}

func (r *recorder) handle(_ context.Context, e *pb.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seqs = append(r.seqs, e.GetSequence())
	return nil
}

func (r *recorder) snapshot() (seqs []int64, outages, recovers int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.seqs...), r.outages, r.recovers
}

func (r *recorder) options() ledgerclient.FollowOptions {
	return ledgerclient.FollowOptions{
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, StableAfter: time.Hour,
		OnOutage:  func(error, int64) { r.mu.Lock(); r.outages++; r.mu.Unlock() },
		OnRecover: func(int64) { r.mu.Lock(); r.recovers++; r.mu.Unlock() },
	}
}

// A stream that breaks, then cannot be reopened twice, is resumed after
// the last event handled: every event once, in order, and one outage.
func TestFollowResumesAfterBreaksWithoutGapOrRepeat(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	f.SetEnabled(t, ws, true) // sequence 1, not of the type followed
	c := dial(t, f.Addr)
	r := &recorder{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- c.Follow(ctx, &pb.WatchEventsRequest{Workspace: ws, Types: []string{"transaction.posted"}}, r.handle, r.options())
	}()

	for range 3 {
		f.Fund(t, ws, "client-1", 1) // 2, 3, 4
	}
	eventually(t, "the first three entries", func() bool { s, _, _ := r.snapshot(); return len(s) == 3 })
	f.InjectFault("WatchEvents", ledgertest.Fault{Code: codes.Unavailable}, ledgertest.Fault{Code: codes.Unavailable})
	f.BreakWatches()
	for range 3 {
		f.Fund(t, ws, "client-2", 1) // 5, 6, 7
	}
	eventually(t, "the entries posted during the outage", func() bool { s, _, _ := r.snapshot(); return len(s) == 6 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Follow after cancel = %v, want context.Canceled", err)
	}

	seqs, outages, recovers := r.snapshot()
	want := []int64{2, 3, 4, 5, 6, 7}
	if len(seqs) != len(want) {
		t.Fatalf("handled %v, want %v", seqs, want)
	}
	for i := range want {
		if seqs[i] != want[i] {
			t.Fatalf("handled %v, want %v", seqs, want)
		}
	}
	if outages != 1 || recovers != 1 {
		t.Errorf("%d outages and %d recoveries reported, want 1 and 1 (once per outage, not per attempt)", outages, recovers)
	}
	var afters []int64
	failed := 0
	for _, call := range f.Calls("WatchEvents") {
		if call.Code != codes.OK {
			failed++
			continue
		}
		afters = append(afters, call.Request.(*pb.WatchEventsRequest).GetAfterSequence())
	}
	if failed != 2 || len(afters) != 2 || afters[0] != 0 || afters[1] != 4 {
		t.Errorf("watches opened after %v (%d refused): want after 0, two refused, then after 4 (the last event handled)", afters, failed)
	}
}

func TestFollowEndsWhenTheHandlerFails(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	f.Fund(t, ws, "client-1", 1)
	f.Fund(t, ws, "client-1", 2)
	c := dial(t, f.Addr)
	boom := errors.New("store is read-only")
	var handled []int64
	err := c.Follow(t.Context(), &pb.WatchEventsRequest{Workspace: ws}, func(_ context.Context, e *pb.Event) error {
		if e.GetSequence() == 2 {
			return boom
		}
		handled = append(handled, e.GetSequence())
		return nil
	}, ledgerclient.FollowOptions{})
	if !errors.Is(err, boom) || len(handled) != 1 {
		t.Errorf("Follow = %v after %v, want the handler's error after event 1", err, handled)
	}
}

func TestFollowStopsOnAPermanentError(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	c := dial(t, f.Addr)
	err := c.Follow(t.Context(), &pb.WatchEventsRequest{Workspace: ws, Types: []string{"no.such.type"}},
		func(context.Context, *pb.Event) error { return nil },
		ledgerclient.FollowOptions{Permanent: func(err error) bool { return ledgerclient.CodeOf(err) == codes.InvalidArgument }})
	if !errors.Is(err, ledgerclient.ErrInvalidArgument) {
		t.Errorf("Follow with an unknown type = %v, want INVALID_ARGUMENT", err)
	}
}

// A stream's failure is an *Error like a unary call's.
func TestStreamErrorsAreTyped(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	c := dial(t, f.Addr)
	st, err := c.WatchEvents(t.Context(), &pb.WatchEventsRequest{Workspace: ws, Types: []string{"no.such.type"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Recv()
	var le *ledgerclient.Error
	if !errors.As(err, &le) || le.Code != codes.InvalidArgument || le.Reason != ledgerclient.ReasonInvalidArgument || len(le.Violations) != 1 {
		t.Errorf("Recv = %#v, want a typed INVALID_ARGUMENT with its field violation", err)
	}
}

func TestBackoffDoublesWithJitterUpToItsCap(t *testing.T) {
	t.Parallel()
	b := ledgerclient.Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	for i, ceiling := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		ceiling *= time.Millisecond
		if d := b.Next(); d < ceiling/2 || d > ceiling {
			t.Errorf("wait %d = %v, want within [%v, %v]", i+1, d, ceiling/2, ceiling)
		}
	}
	b.Reset()
	if d := b.Next(); d > 100*time.Millisecond {
		t.Errorf("after Reset: %v, want at most the minimum", d)
	}
}
