package ledgerclient

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
)

// Defaults of Follow.
const (
	DefaultFollowMinBackoff  = 200 * time.Millisecond
	DefaultFollowMaxBackoff  = 30 * time.Second
	DefaultFollowStableAfter = 5 * time.Second
)

// FollowOptions configure Follow. The zero value retries every break,
// forever, with the default backoff.
type FollowOptions struct {
	// MinBackoff and MaxBackoff bound the wait before reopening a broken
	// stream: it doubles per failed attempt, each wait drawn uniformly
	// from [d/2, d] so that many followers do not reconnect in lockstep.
	MinBackoff, MaxBackoff time.Duration
	// StableAfter is how long a reopened stream must stay up, when no
	// event comes, for the outage to be over (default 5s).
	StableAfter time.Duration
	// OnOutage is called once when the stream breaks or cannot be opened,
	// not at every attempt of the same outage; after is the sequence it
	// resumes after.
	OnOutage func(err error, after int64)
	// OnRecover is called once the stream works again after an outage: an
	// event came, or it stayed up for StableAfter.
	OnRecover func(after int64)
	// Permanent, when set and true for a stream's error, ends Follow with
	// that error instead of reopening the stream.
	Permanent func(err error) bool
}

// Follow streams a workspace's events (WatchEvents with req's filters)
// to handle, in sequence order, from req.after_sequence, until ctx ends
// (it returns ctx's error) or handle fails (it returns handle's error:
// the event is not taken as handled). A stream that breaks or cannot be
// opened is reopened after the last event handle accepted, with backoff
// and jitter; since the ledger's sequences are gap-free and in commit
// order, handle sees every event once, in order, across breaks.
func (c *Client) Follow(ctx context.Context, req *pb.WatchEventsRequest, handle func(context.Context, *pb.Event) error, o FollowOptions) error {
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultFollowMinBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(o.MinBackoff, DefaultFollowMaxBackoff)
	}
	if o.StableAfter <= 0 {
		o.StableAfter = DefaultFollowStableAfter
	}
	after := req.GetAfterSequence()
	st := &outage{o: &o}
	b := Backoff{Min: o.MinBackoff, Max: o.MaxBackoff}
	for {
		opened := time.Now()
		got, err := c.follow(ctx, req, &after, handle, st)
		var he *handlerError
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &he):
			return he.err
		case o.Permanent != nil && o.Permanent(err):
			return err
		}
		if got || time.Since(opened) >= o.StableAfter {
			st.end(after)
			b.Reset()
		}
		st.begin(err, after)
		t := time.NewTimer(b.Next())
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// handlerError marks handle's failure, which ends Follow.
type handlerError struct{ err error }

func (e *handlerError) Error() string { return e.err.Error() }

// follow runs one stream until it fails; got says whether it delivered.
func (c *Client) follow(ctx context.Context, req *pb.WatchEventsRequest, after *int64,
	handle func(context.Context, *pb.Event) error, st *outage,
) (got bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.ledger.WatchEvents(sctx, &pb.WatchEventsRequest{
		Workspace: req.GetWorkspace(), AfterSequence: *after, Account: req.GetAccount(), Types: req.GetTypes(),
	})
	if err != nil {
		return false, err
	}
	from := *after
	stable := time.AfterFunc(st.o.StableAfter, func() { st.end(from) })
	defer stable.Stop()
	for {
		msg, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = &Error{Code: codes.Unavailable, Message: "the ledger ended the stream"}
			}
			return got, err
		}
		e := msg.GetEvent()
		if e.GetSequence() <= *after {
			continue // never twice, whatever the server does
		}
		if !got {
			got = true
			st.end(*after)
		}
		if err := handle(ctx, e); err != nil {
			return got, &handlerError{err: err}
		}
		*after = e.GetSequence()
	}
}

// outage reports each outage once: begin at its first failure, end when
// the stream works again.
type outage struct {
	mu sync.Mutex
	in bool
	o  *FollowOptions
}

func (x *outage) begin(err error, after int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.in {
		x.in = true
		if x.o.OnOutage != nil {
			x.o.OnOutage(err, after)
		}
	}
}

func (x *outage) end(after int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.in {
		x.in = false
		if x.o.OnRecover != nil {
			x.o.OnRecover(after)
		}
	}
}

// Backoff is a bounded exponential backoff with jitter: Min, 2·Min, 4·Min
// … up to Max, each drawn uniformly from [d/2, d]. Not safe for
// concurrent use.
type Backoff struct {
	Min, Max time.Duration
	n        int
}

// Next returns the wait before the next attempt.
func (b *Backoff) Next() time.Duration {
	d := b.Min
	for i := 0; i < b.n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	b.n++
	half := d / 2
	return half + rand.N(d-half+1) //nolint:gosec // jitter, not security
}

// Reset starts again from Min.
func (b *Backoff) Reset() { b.n = 0 }
