package grpcserver

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledger"
)

// Rate is one token bucket's shape: PerSecond calls on average, Burst at
// once. A zero PerSecond turns the limit off.
type Rate struct {
	PerSecond float64
	Burst     int
}

func (r Rate) on() bool { return r.PerSecond > 0 && r.Burst > 0 }

// RateLimits configure the per-workspace and per-subject rate limits (spec
// §11). Every call of an authenticated caller takes one token from each
// bucket that applies to it; a call that finds one empty is refused with
// RESOURCE_EXHAUSTED (reason RATE_LIMITED) and told when to retry. Buckets
// live in this process: with several replicas behind a load balancer a
// caller gets about the sum of theirs.
type RateLimits struct {
	// Workspace bounds every call of one workspace, all callers together,
	// so that one tenant cannot starve the others.
	Workspace Rate
	// Subject bounds every call of one authenticated subject (a token's
	// sub) in one workspace, reads and writes.
	Subject Rate
	// SubjectWrites bounds the writes of one subject: they are what the
	// batched write path and the database pay for.
	SubjectWrites Rate
	// Submit bounds SubmitRequest calls of one subject: a client portal has
	// no reason to submit more than a few manual purchases a minute.
	Submit Rate
	// MaxKeys bounds the buckets kept per limit; idle buckets are dropped
	// first. 0: DefaultRateLimitKeys.
	MaxKeys int
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// DefaultRateLimitKeys is how many buckets a limit keeps at most.
const DefaultRateLimitKeys = 10_000

// maxKeyLength bounds a bucket's key (a subject may be long).
const maxKeyLength = 128

// writeMethods are the RPCs that write; every other one is a read.
var writeMethods = map[string]bool{
	pb.CreditLedger_Credit_FullMethodName:              true,
	pb.CreditLedger_Debit_FullMethodName:               true,
	pb.CreditLedger_SubmitRequest_FullMethodName:       true,
	pb.CreditLedger_DecideRequest_FullMethodName:       true,
	pb.CreditLedger_CancelRequest_FullMethodName:       true,
	pb.CreditLedger_CreateHold_FullMethodName:          true,
	pb.CreditLedger_CaptureHold_FullMethodName:         true,
	pb.CreditLedger_VoidHold_FullMethodName:            true,
	pb.CreditLedger_ReverseTransaction_FullMethodName:  true,
	pb.CreditSettings_UpdateSettings_FullMethodName:    true,
	pb.CreditSettings_CreatePackage_FullMethodName:     true,
	pb.CreditSettings_UpdatePackage_FullMethodName:     true,
	pb.CreditSettings_ArchivePackage_FullMethodName:    true,
	pb.CreditSettings_SetConversionRate_FullMethodName: true,
}

// principalFrom returns the caller authInterceptor put in ctx.
func principalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// rateLimiter holds the buckets of every limit.
type rateLimiter struct {
	now                                    func() time.Time
	workspace, subject, subjectWrites, sub *buckets
	refused                                *prometheus.CounterVec
}

// newRateLimiter returns nil when every limit is off.
func newRateLimiter(o RateLimits, reg prometheus.Registerer) (*rateLimiter, error) {
	if !o.Workspace.on() && !o.Subject.on() && !o.SubjectWrites.on() && !o.Submit.on() {
		return nil, nil
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = DefaultRateLimitKeys
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	rl := &rateLimiter{
		now:           o.Now,
		workspace:     newBuckets("workspace", o.Workspace, o.MaxKeys),
		subject:       newBuckets("subject", o.Subject, o.MaxKeys),
		subjectWrites: newBuckets("subject_writes", o.SubjectWrites, o.MaxKeys),
		sub:           newBuckets("submit", o.Submit, o.MaxKeys),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "creditledger_rate_limited_total",
			Help: "Calls refused with RESOURCE_EXHAUSTED by a rate limit, by limit.",
		}, []string{"limit"}),
	}
	if err := reg.Register(rl.refused); err != nil {
		return nil, err
	}
	for _, b := range []*buckets{rl.workspace, rl.subject, rl.subjectWrites, rl.sub} {
		if b != nil {
			rl.refused.WithLabelValues(b.name)
		}
	}
	return rl, nil
}

// rateLimitInterceptor runs after authInterceptor: it needs the principal.
// Calls without one (health checks) are not limited.
func rateLimitInterceptor(rl *rateLimiter) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := rl.check(ctx, info.FullMethod, req); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// check is rateLimitInterceptor's work, for unary calls and streams.
func (rl *rateLimiter) check(ctx context.Context, method string, req any) error {
	p, ok := principalFrom(ctx)
	if !ok || publicMethod(method) {
		return nil
	}
	ws := p.Workspace
	if r, ok := req.(interface{ GetWorkspace() string }); ok && r.GetWorkspace() != "" {
		ws = r.GetWorkspace() // the same as the token's, except in development mode
	}
	return rl.allow(ws, p.Subject, method)
}

// allow takes one token from every bucket that applies, or none: a call
// refused by one limit does not use up the others.
func (rl *rateLimiter) allow(ws, subject, method string) error {
	now := rl.now()
	type take struct {
		b   *buckets
		key string
	}
	takes := make([]take, 0, 4)
	if ws != "" {
		takes = append(takes, take{rl.workspace, ws})
	}
	if subject != "" {
		// A subject's buckets are per workspace: a service that holds a
		// token for each of many workspaces gets each workspace's share.
		key := ws + "\x00" + subject
		takes = append(takes, take{rl.subject, key})
		if writeMethods[method] {
			takes = append(takes, take{rl.subjectWrites, key})
		}
		if method == pb.CreditLedger_SubmitRequest_FullMethodName {
			takes = append(takes, take{rl.sub, key})
		}
	}
	reserved := make([]*rate.Reservation, 0, len(takes))
	var wait time.Duration
	var by string
	for _, t := range takes {
		if t.b == nil {
			continue
		}
		r := t.b.reserve(t.key, now)
		reserved = append(reserved, r)
		if d := r.DelayFrom(now); d > wait {
			wait, by = d, t.b.name
		}
	}
	if wait == 0 {
		return nil
	}
	for _, r := range reserved {
		r.CancelAt(now)
	}
	rl.refused.WithLabelValues(by).Inc()
	return rateLimited(by, wait)
}

// rateLimited is the refusal: RESOURCE_EXHAUSTED with the delay as
// google.rpc.RetryInfo (see toStatus) and in whole seconds in the metadata,
// which the REST gateway sends as Retry-After.
func rateLimited(limit string, wait time.Duration) error {
	secs := strconv.FormatInt(int64(math.Ceil(wait.Seconds())), 10)
	return &ledger.Error{
		Code: ledger.CodeResourceExhausted, Reason: ledger.ReasonRateLimited,
		Message:    fmt.Sprintf("too many requests (%s limit); retry in %s s", limit, secs),
		Metadata:   map[string]string{"limit": limit, "retry_after_seconds": secs},
		RetryAfter: wait,
	}
}

// buckets are one limit's token buckets, by key, bounded in number.
type buckets struct {
	name    string
	r       Rate
	maxKeys int
	// full is how long an unused bucket takes to fill up: a bucket idle
	// that long is the same as a new one and can be dropped.
	full time.Duration

	mu sync.Mutex
	m  map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newBuckets(name string, r Rate, maxKeys int) *buckets {
	if !r.on() {
		return nil
	}
	full := time.Duration(float64(r.Burst) / r.PerSecond * float64(time.Second))
	return &buckets{name: name, r: r, maxKeys: maxKeys, full: full, m: map[string]*bucket{}}
}

// reserve takes a token of key's bucket at now.
func (b *buckets) reserve(key string, now time.Time) *rate.Reservation {
	if len(key) > maxKeyLength {
		key = key[:maxKeyLength]
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[key]
	if !ok {
		if len(b.m) >= b.maxKeys {
			b.evict(now)
		}
		e = &bucket{lim: rate.NewLimiter(rate.Limit(b.r.PerSecond), b.r.Burst)}
		b.m[key] = e
	}
	if now.After(e.last) {
		e.last = now
	}
	return e.lim.ReserveN(now, 1)
}

// evict makes room: it drops every bucket idle long enough to be full
// again (forgetting it changes nothing), and when there is none, the
// least recently used one.
func (b *buckets) evict(now time.Time) {
	var oldest string
	var oldestAt time.Time
	dropped := false
	for k, e := range b.m {
		if now.Sub(e.last) >= b.full {
			delete(b.m, k)
			dropped = true
			continue
		}
		if oldest == "" || e.last.Before(oldestAt) {
			oldest, oldestAt = k, e.last
		}
	}
	if !dropped && oldest != "" {
		delete(b.m, oldest)
	}
}

// len reports the buckets kept (tests).
func (b *buckets) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}
