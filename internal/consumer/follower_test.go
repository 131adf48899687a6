package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/codes"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/consumer"
	"github.com/creditledger/creditledger/internal/ledgertest"
	"github.com/creditledger/creditledger/ledgerclient"
)

// memCursors is a Cursors in memory: the consumer's store in these tests.
type memCursors struct {
	mu      sync.Mutex
	wss     []string
	cursors map[string]int64
	saves   int
}

func newCursors(wss ...string) *memCursors {
	return &memCursors{wss: wss, cursors: map[string]int64{}}
}

func (m *memCursors) Workspaces(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.wss), nil
}

func (m *memCursors) Cursor(_ context.Context, ws string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cursors[ws], nil
}

func (m *memCursors) SaveCursor(_ context.Context, ws string, seq int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cursors[ws] = max(m.cursors[ws], seq)
	m.saves++
	return nil
}

func (m *memCursors) cursor(ws string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cursors[ws]
}

func (m *memCursors) add(ws string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.wss = append(m.wss, ws)
}

// applied records the events a follower handled, as "ws#seq".
type applied struct {
	mu   sync.Mutex
	seen []string
	fail map[string]int // "ws#seq" → failures left
}

func (a *applied) handle(_ context.Context, e *pb.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := fmt.Sprintf("%s#%d", e.GetWorkspace(), e.GetSequence())
	if a.fail[k] > 0 {
		a.fail[k]--
		return errors.New("database is locked")
	}
	a.seen = append(a.seen, k)
	return nil
}

func (a *applied) list() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.seen)
}

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

type setup struct {
	ledger  *ledgertest.Server
	client  *ledgerclient.Client
	cursors *memCursors
	applied *applied
	logs    *observer.ObservedLogs
	log     *zap.Logger
}

func newSetup(t *testing.T, wss ...string) *setup {
	t.Helper()
	s := &setup{ledger: ledgertest.Start(t), cursors: newCursors(wss...), applied: &applied{fail: map[string]int{}}}
	c, err := ledgerclient.Dial(t.Context(), s.ledger.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	s.client = c
	core, logs := observer.New(zap.InfoLevel)
	s.log, s.logs = zap.New(core), logs
	return s
}

// run runs a follower until the returned stop is called (or the test ends).
func (s *setup) run(t *testing.T, discover time.Duration) (*consumer.Follower, func()) {
	t.Helper()
	f, err := consumer.NewFollower(consumer.FollowerConfig{
		Ledger: s.client, Cursors: s.cursors, Types: []string{"transaction.posted"}, Handle: s.applied.handle, Log: s.log,
		Discover: discover, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, StableAfter: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return f, stop
}

func count(logs *observer.ObservedLogs, msg string) int { return logs.FilterMessage(msg).Len() }

func TestFollowerAppliesEveryWorkspacesEventsAndKeepsItsCursors(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "w1", "w2")
	s.ledger.Fund(t, "w1", "a", 1)
	s.ledger.SetEnabled(t, "w2", true) // not a type followed
	s.ledger.Fund(t, "w2", "b", 1)
	s.run(t, time.Hour)
	s.ledger.Fund(t, "w1", "a", 2)
	eventually(t, "both workspaces' entries", func() bool { return len(s.applied.list()) == 3 })
	got := s.applied.list()
	slices.Sort(got)
	if want := []string{"w1#1", "w1#2", "w2#2"}; !slices.Equal(got, want) {
		t.Errorf("applied %v, want %v", got, want)
	}
	if s.cursors.cursor("w1") != 2 || s.cursors.cursor("w2") != 2 {
		t.Errorf("cursors w1=%d w2=%d, want 2 and 2", s.cursors.cursor("w1"), s.cursors.cursor("w2"))
	}
}

// Stopped and started again (a restart), the follower resumes from its
// stored cursor: the events of the downtime are applied, none twice.
func TestFollowerResumesFromItsStoredCursorAfterARestart(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "w1")
	s.ledger.Fund(t, "w1", "a", 1)
	_, stop := s.run(t, time.Hour)
	eventually(t, "the first entry", func() bool { return s.cursors.cursor("w1") == 1 })
	stop()
	s.ledger.Fund(t, "w1", "a", 1) // while the consumer is down
	s.ledger.Fund(t, "w1", "a", 1)
	s.run(t, time.Hour)
	eventually(t, "the entries of the downtime", func() bool { return s.cursors.cursor("w1") == 3 })
	if got := s.applied.list(); !slices.Equal(got, []string{"w1#1", "w1#2", "w1#3"}) {
		t.Errorf("applied %v: want each event once, in order", got)
	}
	var afters []int64
	for _, c := range s.ledger.Calls("WatchEvents") {
		afters = append(afters, c.Request.(*pb.WatchEventsRequest).GetAfterSequence())
	}
	if !slices.Equal(afters, []int64{0, 1}) {
		t.Errorf("watches opened after %v, want [0 1]: the second from the stored cursor", afters)
	}
}

// An event that cannot be applied is not skipped: the cursor stays, and
// after a backoff the event comes again; the failure is logged once.
func TestFollowerRetriesAnEventItCouldNotApply(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "w1")
	s.applied.fail["w1#2"] = 3
	s.ledger.Fund(t, "w1", "a", 1)
	s.ledger.Fund(t, "w1", "a", 1)
	s.ledger.Fund(t, "w1", "a", 1)
	s.run(t, time.Hour)
	eventually(t, "every entry", func() bool { return s.cursors.cursor("w1") == 3 })
	if got := s.applied.list(); !slices.Equal(got, []string{"w1#1", "w1#2", "w1#3"}) {
		t.Errorf("applied %v", got)
	}
	if n := count(s.logs, "ledger events not applied; retried from the stored cursor with backoff"); n != 1 {
		t.Errorf("%d failure logs for one streak of 3 failures, want 1", n)
	}
	if n := count(s.logs, "ledger events applied again"); n != 1 {
		t.Errorf("%d recovery logs, want 1", n)
	}
}

// A broken stream that cannot be reopened for a while is one outage, logged
// once; the events committed meanwhile are applied after it.
func TestFollowerSurvivesABrokenStreamAndLogsTheOutageOnce(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "w1")
	s.run(t, time.Hour)
	s.ledger.Fund(t, "w1", "a", 1)
	eventually(t, "the first entry", func() bool { return s.cursors.cursor("w1") == 1 })
	s.ledger.InjectFault("WatchEvents", ledgertest.Fault{Code: codes.Unavailable}, ledgertest.Fault{Code: codes.Unavailable},
		ledgertest.Fault{Code: codes.Unavailable})
	s.ledger.BreakWatches()
	s.ledger.Fund(t, "w1", "a", 1)
	eventually(t, "the entry of the outage", func() bool { return s.cursors.cursor("w1") == 2 })
	if got := s.applied.list(); !slices.Equal(got, []string{"w1#1", "w1#2"}) {
		t.Errorf("applied %v", got)
	}
	if n := count(s.logs, "ledger event stream broken; resuming with backoff"); n != 1 {
		t.Errorf("%d outage logs for a break and 3 refused reconnections, want 1", n)
	}
	if n := count(s.logs, "ledger event stream resumed"); n != 1 {
		t.Errorf("%d resumed logs, want 1", n)
	}
}

// Workspaces come from the store at each discovery, or at once by Follow.
func TestFollowerFindsNewWorkspaces(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	f, _ := s.run(t, 10*time.Millisecond)
	s.ledger.Fund(t, "w1", "a", 1)
	s.ledger.Fund(t, "w2", "b", 1)
	s.cursors.add("w1")
	eventually(t, "the workspace found by discovery", func() bool { return s.cursors.cursor("w1") == 1 })
	f.Follow("w2")
	f.Follow("w2")
	eventually(t, "the workspace passed to Follow", func() bool { return s.cursors.cursor("w2") == 1 })
	if got := len(s.ledger.Calls("WatchEvents")); got != 2 {
		t.Errorf("%d watches for two workspaces", got)
	}
}

// Following says whether the consumer may rely on the events: not before
// Run nor after it, not while the ledger refuses the stream, not while
// events fail to apply.
func TestFollowingSaysWhetherEventsAreApplied(t *testing.T) {
	t.Parallel()
	t.Run("running", func(t *testing.T) {
		t.Parallel()
		s := newSetup(t, "w1")
		f, stop := s.run(t, time.Hour)
		eventually(t, "following w1", func() bool { return f.Following("w1") })
		if f.Following("w2") {
			t.Error("following a workspace nobody asked for")
		}
		stop()
		if f.Following("w1") {
			t.Error("following after Run returned")
		}
	})
	t.Run("refused by the ledger", func(t *testing.T) {
		t.Parallel()
		s := newSetup(t, "w1")
		s.ledger = ledgertest.Start(t, ledgertest.WithAuth()) // and the follower has no token
		c, err := ledgerclient.Dial(t.Context(), s.ledger.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		s.client = c
		f, _ := s.run(t, time.Hour)
		eventually(t, "the refusal", func() bool {
			return count(s.logs, "the ledger refuses this workspace's events to our token; retrying with backoff") == 1
		})
		if f.Following("w1") {
			t.Error("following while the ledger refuses the stream")
		}
	})
	t.Run("events failing to apply", func(t *testing.T) {
		t.Parallel()
		s := newSetup(t, "w1")
		s.applied.fail["w1#1"] = 1 << 30
		s.ledger.Fund(t, "w1", "a", 1)
		f, _ := s.run(t, time.Hour)
		eventually(t, "the failure", func() bool {
			return count(s.logs, "ledger events not applied; retried from the stored cursor with backoff") == 1
		})
		if f.Following("w1") {
			t.Error("following while its events fail")
		}
	})
}
