package consumer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/ledgerclient"
)

// EventLedger is what a Follower needs of the ledger;
// *ledgerclient.Client provides it.
type EventLedger interface {
	Follow(ctx context.Context, req *pb.WatchEventsRequest, handle func(context.Context, *pb.Event) error, o ledgerclient.FollowOptions) error
}

// Cursors is the consumer's durable record of where it is in each
// workspace's events, and of the workspaces it has state in.
type Cursors interface {
	// Workspaces lists the workspaces to follow: those the consumer has
	// state in, and those it has a cursor for.
	Workspaces(ctx context.Context) ([]string, error)
	// Cursor is the sequence of the last event handled in the workspace;
	// 0 before the first.
	Cursor(ctx context.Context, workspace string) (int64, error)
	// SaveCursor records that the events up to seq were handled; it never
	// moves a cursor back.
	SaveCursor(ctx context.Context, workspace string, seq int64) error
}

// FollowerConfig configures a Follower.
type FollowerConfig struct {
	Ledger  EventLedger
	Cursors Cursors
	// Types are the event types handled (the ledger sends no others).
	Types []string
	// Handle applies one event. It must be idempotent: an event is
	// handled at least once (again after a crash between Handle and the
	// cursor's save). An error leaves the cursor where it was: the event
	// comes again after a backoff.
	Handle func(ctx context.Context, e *pb.Event) error
	Log    *zap.Logger
	// Discover is how often the workspaces are listed again (default
	// DefaultDiscover); Follow starts one at once.
	Discover time.Duration
	// Stream backoff and stability, see ledgerclient.FollowOptions; zero
	// takes its defaults.
	MinBackoff, MaxBackoff, StableAfter time.Duration
}

// DefaultDiscover is how often a Follower lists its workspaces again.
const DefaultDiscover = 30 * time.Second

// Follower follows the ledger's events of every workspace a consumer has
// state in (WatchEvents with the consumer's own ledger token), one stream
// per workspace, and hands each event to Handle in sequence order. It
// keeps its cursor in the consumer's store, saved after each event is
// applied, so a restart or a broken stream resumes where it stopped:
// nothing is missed, and an event is applied again only when the process
// died between applying it and saving the cursor.
type Follower struct {
	cfg FollowerConfig
	log *zap.Logger

	mu sync.Mutex
	// known are the workspaces followed, each with whether its events are
	// being applied (see Following).
	known map[string]*atomic.Bool
	ctx   context.Context // set while Run runs
	wg    sync.WaitGroup
}

// NewFollower returns a follower; Run runs it.
func NewFollower(cfg FollowerConfig) (*Follower, error) {
	if cfg.Ledger == nil || cfg.Cursors == nil || cfg.Handle == nil {
		return nil, errors.New("consumer: a Follower needs Ledger, Cursors and Handle")
	}
	if cfg.Discover <= 0 {
		cfg.Discover = DefaultDiscover
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = ledgerclient.DefaultFollowMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(cfg.MinBackoff, ledgerclient.DefaultFollowMaxBackoff)
	}
	f := &Follower{cfg: cfg, log: cfg.Log, known: map[string]*atomic.Bool{}}
	if f.log == nil {
		f.log = zap.NewNop()
	}
	return f, nil
}

// Follow makes sure the workspace's events are followed: at once while
// Run runs, from Run's start otherwise. The consumer calls it when it
// records state in a workspace, so it need not wait for the next
// discovery.
func (f *Follower) Follow(workspace string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.known[workspace]; ok {
		return
	}
	f.known[workspace] = &atomic.Bool{}
	if f.ctx != nil {
		f.start(f.ctx, workspace)
	}
}

// Following reports whether the workspace's events are being applied as
// they come: its stream is open (or not yet known to have failed) and its
// last event was applied. While it is, the consumer need not ask the
// ledger what the events will tell it; when it is not (an outage, a
// refused token, a failing store), asking is the fallback.
func (f *Follower) Following(workspace string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	ok := f.known[workspace]
	return f.ctx != nil && ok != nil && ok.Load()
}

// start runs the workspace's follower; f.mu is held.
func (f *Follower) start(ctx context.Context, workspace string) {
	healthy := f.known[workspace]
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer healthy.Store(false)
		f.follow(ctx, workspace, healthy)
	}()
}

// Run follows every workspace the store lists, now and at each discovery,
// and those passed to Follow, until ctx ends. It returns once every
// stream is closed.
func (f *Follower) Run(ctx context.Context) error {
	f.mu.Lock()
	if f.ctx != nil {
		f.mu.Unlock()
		return errors.New("consumer: the Follower is already running")
	}
	f.ctx = ctx
	for _, ws := range slices.Sorted(maps.Keys(f.known)) {
		f.start(ctx, ws)
	}
	f.mu.Unlock()
	defer func() {
		f.wg.Wait()
		f.mu.Lock()
		f.ctx = nil
		f.known = map[string]*atomic.Bool{}
		f.mu.Unlock()
	}()

	t := time.NewTicker(f.cfg.Discover)
	defer t.Stop()
	failing := false
	for {
		wss, err := f.cfg.Cursors.Workspaces(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			f.log.Error("listing the workspaces to follow failed; retried at the next discovery", zap.Error(err))
			failing = true
		case err == nil:
			failing = false
			for _, ws := range wss {
				f.Follow(ws)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// follow streams one workspace's events until ctx ends. A failure to
// apply an event (or to save the cursor) is retried from the stored
// cursor after a backoff: the event comes again.
func (f *Follower) follow(ctx context.Context, ws string, healthy *atomic.Bool) {
	log := f.log.With(zap.String("workspace", ws))
	b := ledgerclient.Backoff{Min: f.cfg.MinBackoff, Max: f.cfg.MaxBackoff}
	var failing atomic.Bool // an event or the cursor failed, and nothing was applied since
	opts := ledgerclient.FollowOptions{
		MinBackoff: f.cfg.MinBackoff, MaxBackoff: f.cfg.MaxBackoff, StableAfter: f.cfg.StableAfter,
		OnOutage: func(err error, after int64) {
			msg, level := "ledger event stream broken; resuming with backoff", zap.WarnLevel
			switch ledgerclient.CodeOf(err) {
			case codes.Unauthenticated, codes.PermissionDenied, codes.NotFound:
				msg, level = "the ledger refuses this workspace's events to our token; retrying with backoff", zap.ErrorLevel
			}
			log.Check(level, msg).Write(zap.Int64("after_sequence", after), zap.Error(err))
			healthy.Store(false)
		},
		OnRecover: func(after int64) {
			log.Info("ledger event stream resumed", zap.Int64("after_sequence", after))
			healthy.Store(!failing.Load())
		},
	}
	for first := true; ; first = false {
		cur, err := f.cfg.Cursors.Cursor(ctx, ws)
		if err == nil {
			healthy.Store(!failing.Load())
			level := zap.DebugLevel
			if first {
				level = zap.InfoLevel
			}
			log.Check(level, "following the ledger's events").Write(zap.Int64("after_sequence", cur), zap.Strings("types", f.cfg.Types))
			err = f.cfg.Ledger.Follow(ctx, &pb.WatchEventsRequest{Workspace: ws, AfterSequence: cur, Types: f.cfg.Types},
				func(ctx context.Context, e *pb.Event) error {
					if err := f.cfg.Handle(ctx, e); err != nil {
						return fmt.Errorf("applying event %d (%s): %w", e.GetSequence(), e.GetType(), err)
					}
					if err := f.cfg.Cursors.SaveCursor(ctx, ws, e.GetSequence()); err != nil {
						return fmt.Errorf("saving the cursor at %d: %w", e.GetSequence(), err)
					}
					if failing.Load() {
						failing.Store(false)
						healthy.Store(true)
						b.Reset()
						log.Info("ledger events applied again", zap.Int64("sequence", e.GetSequence()))
					}
					return nil
				}, opts)
		}
		if ctx.Err() != nil {
			return
		}
		healthy.Store(false)
		if !failing.Load() {
			log.Error("ledger events not applied; retried from the stored cursor with backoff", zap.Error(err))
			failing.Store(true)
		}
		t := time.NewTimer(b.Next())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
