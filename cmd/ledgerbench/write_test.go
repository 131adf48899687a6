package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
)

// scripted answers a write's attempts in order: an error, or success
// (replayed or not) when the error is nil. It records the keys it saw.
type scripted struct {
	pb.CreditLedgerClient
	answers []answer
	keys    []string
}

type answer struct {
	err      error
	replayed bool
}

func (s *scripted) next(key string) (bool, error) {
	s.keys = append(s.keys, key)
	a := s.answers[0]
	if len(s.answers) > 1 {
		s.answers = s.answers[1:]
	}
	return a.replayed, a.err
}

func (s *scripted) Credit(_ context.Context, in *pb.CreditRequest, _ ...grpc.CallOption) (*pb.CreditResponse, error) {
	replayed, err := s.next(in.GetIdempotencyKey())
	if err != nil {
		return nil, err
	}
	return &pb.CreditResponse{Replayed: replayed}, nil
}

func (s *scripted) Debit(_ context.Context, in *pb.DebitRequest, _ ...grpc.CallOption) (*pb.DebitResponse, error) {
	replayed, err := s.next(in.GetIdempotencyKey())
	if err != nil {
		return nil, err
	}
	return &pb.DebitResponse{Replayed: replayed}, nil
}

func withReason(c codes.Code, reason string) error {
	st, err := status.New(c, "x").WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: "creditledger"})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

func TestSendRetriesUnknownOutcomes(t *testing.T) {
	t.Parallel()
	unavailable := status.Error(codes.Unavailable, "store unavailable")
	deadline := status.Error(codes.DeadlineExceeded, "deadline")
	inUse := withReason(codes.Aborted, "IDEMPOTENCY_KEY_IN_USE")
	ok, replay := answer{}, answer{replayed: true}
	for _, tc := range []struct {
		name        string
		answers     []answer
		wantPosted  bool
		wantErr     error // errors.Is target, or nil
		wantCode    codes.Code
		wantAttempt int
		wantRetries map[string]int
	}{
		{name: "posted", answers: []answer{ok}, wantPosted: true, wantAttempt: 1},
		{
			// The first attempt posted but its answer was lost: the
			// replay is this run's write, counted once.
			name:    "lost answer, then replay",
			answers: []answer{{err: deadline}, {err: inUse}, replay}, wantPosted: true, wantAttempt: 3,
			wantRetries: map[string]int{"DeadlineExceeded": 1, "Aborted": 1},
		},
		{
			name:    "not posted, then posted",
			answers: []answer{{err: unavailable}, ok}, wantPosted: true, wantAttempt: 2,
			wantRetries: map[string]int{"Unavailable": 1},
		},
		{name: "posted before this run", answers: []answer{replay}, wantPosted: false, wantAttempt: 1},
		{
			name:    "refused",
			answers: []answer{{err: withReason(codes.FailedPrecondition, "INSUFFICIENT_CREDITS")}}, wantCode: codes.FailedPrecondition, wantAttempt: 1,
		},
		{
			name:    "version mismatch is definite",
			answers: []answer{{err: withReason(codes.Aborted, "VERSION_MISMATCH")}}, wantCode: codes.Aborted, wantAttempt: 1,
		},
		{
			name:    "never conclusive",
			answers: []answer{{err: unavailable}}, wantErr: errUnknownOutcome, wantCode: codes.Unavailable, wantAttempt: maxAttempts,
			wantRetries: map[string]int{"Unavailable": maxAttempts},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, credit := range []bool{true, false} {
				fake := &scripted{answers: tc.answers}
				c := client{ledger: fake, cfg: config{workspace: "w"}, wait: func(context.Context, time.Duration) error { return nil }}
				retries := map[string]int{}
				posted, err := c.send(t.Context(), write{account: "a", key: "k1", amount: 5, credit: credit}, retries)
				if posted != tc.wantPosted {
					t.Errorf("credit=%v: posted = %v, want %v", credit, posted, tc.wantPosted)
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("credit=%v: err = %v, want %v", credit, err, tc.wantErr)
				}
				if got := status.Code(err); got != tc.wantCode {
					t.Errorf("credit=%v: code = %v, want %v", credit, got, tc.wantCode)
				}
				if len(fake.keys) != tc.wantAttempt {
					t.Errorf("credit=%v: %d attempts, want %d", credit, len(fake.keys), tc.wantAttempt)
				}
				for _, k := range fake.keys {
					if k != "k1" {
						t.Errorf("credit=%v: attempt under key %q, want k1 every time", credit, k)
					}
				}
				if len(retries) != len(tc.wantRetries) {
					t.Errorf("credit=%v: retries %v, want %v", credit, retries, tc.wantRetries)
				}
				for k, v := range tc.wantRetries {
					if retries[k] != v {
						t.Errorf("credit=%v: retries %v, want %v", credit, retries, tc.wantRetries)
					}
				}
			}
		})
	}
}

func TestConservation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		c    Conservation
		want bool
	}{
		{"balanced", Conservation{Credited: 10_000_000_000 + 500, Debited: 480, BalanceSum: 10_000_000_020}, true},
		{"balanced on a reused workspace", Conservation{Baseline: 7, Credited: 5, Debited: 2, BalanceSum: 10}, true},
		{"a credit too many in the ledger", Conservation{Credited: 5, Debited: 2, BalanceSum: 4}, false},
		{"an acknowledged debit missing", Conservation{Credited: 5, Debited: 2, BalanceSum: 5}, false},
		{"outcome unknown", Conservation{Credited: 5, Debited: 2, BalanceSum: 3, Unknown: 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.c.OK(); got != tc.want {
				t.Errorf("%s: OK = %v, want %v", tc.c, got, tc.want)
			}
		})
	}
}

func TestReportFromProbes(t *testing.T) {
	t.Parallel()
	h := func(cum [10]float64, sum float64) histogram {
		t.Helper()
		hh, _, err := parseHistogram(strings.NewReader(exposition(cum, sum)), batchMetric)
		if err != nil {
			t.Fatal(err)
		}
		return hh
	}
	cfg := config{metricsURL: "http://x/metrics", ledgerdPID: 1, pgPID: 2, clkTck: 100}
	for _, tc := range []struct {
		name          string
		before, after probe
		cfg           config
		wantNote      string
		wantWarn      bool
		wantBatches   bool
		wantCPU       bool
	}{
		{
			name:        "everything",
			before:      probe{hist: h([10]float64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 1), histFound: true, cpu: 100, pgCPU: 1000},
			after:       probe{hist: h([10]float64{1, 1, 5, 5, 5, 5, 5, 5, 5, 5}, 13), histFound: true, cpu: 150, pgCPU: 1200},
			cfg:         cfg,
			wantBatches: true, wantCPU: true,
		},
		{
			name:     "metric absent (older ledgerd)",
			before:   probe{cpu: 100},
			after:    probe{cpu: 150},
			cfg:      cfg,
			wantNote: "ledgerd does not export creditledger_write_batch_size", wantCPU: true,
		},
		{
			name:     "endpoint down",
			before:   probe{histErr: errors.New("connection refused"), cpu: 100},
			after:    probe{cpu: 150},
			cfg:      cfg,
			wantNote: "scraping http://x/metrics: connection refused", wantWarn: true, wantCPU: true,
		},
		{
			name:     "ledgerd gone",
			before:   probe{},
			after:    probe{cpuErr: errors.New("no such file")},
			cfg:      config{ledgerdPID: 1, clkTck: 100},
			wantNote: "no -metrics-url", wantWarn: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := Result{OK: 1000}
			warn := report(&r, tc.before, tc.after, tc.cfg)
			if (warn != "") != tc.wantWarn {
				t.Errorf("warning %q, want one: %v", warn, tc.wantWarn)
			}
			if r.batchNote != tc.wantNote {
				t.Errorf("batch note %q, want %q", r.batchNote, tc.wantNote)
			}
			if (r.Batches != nil) != tc.wantBatches {
				t.Errorf("batches %v, want measured: %v", r.Batches, tc.wantBatches)
			}
			if tc.wantBatches && (*r.Batches != 4 || *r.BatchMean != 3 || *r.BatchP99 != 4) {
				t.Errorf("batches %d, mean %v, p99 %v; want 4, 3, 4", *r.Batches, *r.BatchMean, *r.BatchP99)
			}
			if (r.CPUPer1000 != nil) != tc.wantCPU {
				t.Fatalf("CPU %v, want measured: %v", r.CPUPer1000, tc.wantCPU)
			}
			if tc.wantCPU && *r.CPUPer1000 != 0.5 {
				t.Errorf("ledgerd CPU %v s per 1k ops, want 0.5", *r.CPUPer1000)
			}
			if tc.name == "everything" && (r.PGCPUPer1000 == nil || *r.PGCPUPer1000 != 2) {
				t.Errorf("PostgreSQL CPU %v s per 1k ops, want 2", r.PGCPUPer1000)
			}
		})
	}
}
