package grpcserver

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/grpcserver/fakestore"
	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/creditledger/creditledger/internal/token"
)

// fakeClock is a clock the test moves; nothing sleeps.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestRateLimitsOverGRPC(t *testing.T) {
	t.Parallel()
	secret := []byte(strings.Repeat("s", token.MinSecretLength))
	clock := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	v, err := token.NewVerifier(token.VerifierOptions{DevSecret: secret, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	auth := NewTokenAuth(v)
	reg := prometheus.NewRegistry()
	srv, err := NewServer(ledger.NewService(fakestore.New()), Options{
		Logger: zap.NewNop(), Registerer: reg, Authorizer: auth,
		RateLimits: RateLimits{
			Workspace:     Rate{PerSecond: 1, Burst: 5},
			Subject:       Rate{PerSecond: 1, Burst: 3},
			SubjectWrites: Rate{PerSecond: 1, Burst: 3},
			Submit:        Rate{PerSecond: 0.1, Burst: 2},
			Now:           clock.Now,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	client := pb.NewCreditLedgerClient(conn)

	as := func(sub, ws string, scopes ...string) context.Context {
		role := token.RoleAdmin
		if slices.Contains(scopes, ScopeLedgerWrite) {
			role = token.RoleService
		}
		tok, err := token.MintDev(secret, token.New(token.DefaultIssuer, token.DefaultAudience, role, sub, ws, "", scopes, clock.Now(), time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.Cleanup(cancel)
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	}
	read := func(ctx context.Context, ws string) error {
		_, err := client.GetBalance(ctx, &pb.GetBalanceRequest{Workspace: ws, Account: "acct"})
		return err
	}
	mustPass := func(what string, err error) {
		t.Helper()
		if status.Code(err) == codes.ResourceExhausted {
			t.Fatalf("%s: rate limited: %v", what, err)
		}
	}
	// wantLimited checks the refusal: RESOURCE_EXHAUSTED, RATE_LIMITED
	// naming the limit, and the delay as RetryInfo and in the metadata.
	wantLimited := func(what string, err error, limit string, delay time.Duration) {
		t.Helper()
		st := status.Convert(err)
		if st.Code() != codes.ResourceExhausted {
			t.Fatalf("%s: %v, want RESOURCE_EXHAUSTED", what, err)
		}
		var info *errdetails.ErrorInfo
		var retry *errdetails.RetryInfo
		for _, d := range st.Details() {
			switch d := d.(type) {
			case *errdetails.ErrorInfo:
				info = d
			case *errdetails.RetryInfo:
				retry = d
			}
		}
		if info.GetReason() != ledger.ReasonRateLimited || info.GetMetadata()["limit"] != limit ||
			info.GetMetadata()["retry_after_seconds"] != fmt.Sprint(int(delay.Seconds())) {
			t.Fatalf("%s: ErrorInfo %v, want RATE_LIMITED by %s after %v", what, info, limit, delay)
		}
		if retry.GetRetryDelay().AsDuration() != delay {
			t.Fatalf("%s: RetryInfo %v, want %v", what, retry, delay)
		}
	}

	alice := as("alice", "acme", ScopeLedgerRead)
	for i := range 3 {
		mustPass(fmt.Sprint("alice read ", i), read(alice, "acme"))
	}
	wantLimited("alice's 4th read", read(alice, "acme"), "subject", time.Second)

	// Another subject of the same workspace has its own bucket, until the
	// workspace's is empty: alice's refused call took none of it.
	bob := as("bob", "acme", ScopeLedgerRead)
	mustPass("bob read 1", read(bob, "acme"))
	mustPass("bob read 2", read(bob, "acme"))
	wantLimited("bob's 3rd read", read(bob, "acme"), "workspace", time.Second)

	// Another workspace is not affected.
	carol := as("carol", "globex", ScopeLedgerRead)
	mustPass("carol read", read(carol, "globex"))

	// Time refills the buckets.
	clock.Advance(time.Second)
	mustPass("alice after a second", read(alice, "acme"))

	// SubmitRequest has a stricter limit of its own.
	dave := as("dave", "globex", ScopeRequestsSubmit)
	submit := func(i int) error {
		_, err := client.SubmitRequest(dave, &pb.SubmitRequestRequest{
			Workspace: "globex", Account: "acct", Amount: 1, IdempotencyKey: fmt.Sprint("k", i),
			PaymentMethod: pb.PaymentMethod_PAYMENT_METHOD_BANK_TRANSFER,
		})
		return err
	}
	mustPass("submit 1", submit(1))
	mustPass("submit 2", submit(2))
	wantLimited("submit 3", submit(3), "submit", 10*time.Second)

	if got := limitedTotal(t, reg, "subject"); got != 1 {
		t.Errorf("creditledger_rate_limited_total{limit=subject} = %v, want 1", got)
	}
}

// limitedTotal reads creditledger_rate_limited_total{limit} from reg.
func limitedTotal(t *testing.T, reg *prometheus.Registry, limit string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "creditledger_rate_limited_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "limit" && l.GetValue() == limit {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no creditledger_rate_limited_total{limit=%q}", limit)
	return 0
}

func TestRateLimitsOffByDefault(t *testing.T) {
	t.Parallel()
	rl, err := newRateLimiter(RateLimits{}, prometheus.NewRegistry())
	if err != nil || rl != nil {
		t.Fatalf("zero RateLimits: %v, %v; want no limiter", rl, err)
	}
}

func TestRateLimitBucketsBounded(t *testing.T) {
	t.Parallel()
	b := newBuckets("subject", Rate{PerSecond: 1, Burst: 2}, 3)
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10 {
		b.reserve(fmt.Sprint("key-", i), now)
		if n := b.len(); n > 3 {
			t.Fatalf("%d buckets kept, want at most 3", n)
		}
	}
	// Idle buckets (full again) and the least recently used go first; the
	// recent ones stay.
	b.reserve("a", now.Add(time.Second))
	b.reserve("b", now.Add(time.Second))
	later := now.Add(2500 * time.Millisecond) // key-9 (last used at now) is full again; a and b are not
	b.reserve("c", later)
	b.mu.Lock()
	_, hasA := b.m["a"]
	_, hasB := b.m["b"]
	_, hasOld := b.m["key-9"]
	b.mu.Unlock()
	if !hasA || !hasB || hasOld {
		t.Fatalf("after eviction: a=%v b=%v key-9=%v; want a and b kept, key-9 dropped", hasA, hasB, hasOld)
	}
	// A long key is cut, so that one caller cannot fill memory with it.
	b.reserve(strings.Repeat("x", 10_000), later)
	b.mu.Lock()
	defer b.mu.Unlock()
	for k := range b.m {
		if len(k) > maxKeyLength {
			t.Fatalf("key of %d bytes kept", len(k))
		}
	}
}
