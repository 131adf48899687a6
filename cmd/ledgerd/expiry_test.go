package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/creditledger/creditledger/internal/ledger"
)

// fakeExpiry answers ExpireDue from a list of outcomes and reports each
// call on done; past the list, a sweep lasts until it is canceled.
type fakeExpiry struct {
	outcomes []error
	calls    int
	done     chan struct{}
}

func (f *fakeExpiry) ExpireDue(ctx context.Context) (ledger.ExpiryReport, error) {
	defer func() { f.done <- struct{}{} }()
	if f.calls >= len(f.outcomes) {
		<-ctx.Done()
		return ledger.ExpiryReport{}, ctx.Err()
	}
	err := f.outcomes[f.calls]
	f.calls++
	if err != nil {
		return ledger.ExpiryReport{}, err
	}
	return ledger.ExpiryReport{Holds: 2, Grants: 1, Deferred: 3}, nil
}

// The loop sweeps at each tick, logs what a sweep did at debug level and a
// failure at warn without stopping, and ends with its context.
func TestSweepLoop(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	f := &fakeExpiry{outcomes: []error{nil, errors.New("store unavailable"), nil}, done: make(chan struct{})}
	ticks := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	go func() {
		sweepLoop(ctx, f, ticks, zap.New(core))
		close(ended)
	}()
	for range 3 {
		ticks <- time.Now()
		<-f.done
	}
	// A fourth sweep, in progress at shutdown: cut short, not a failure.
	ticks <- time.Now()
	cancel()
	<-f.done
	<-ended

	sweeps := logs.FilterMessage("expiry sweep").All()
	if len(sweeps) != 2 || sweeps[0].Level != zapcore.DebugLevel {
		t.Fatalf("sweep lines: %v", sweeps)
	}
	if m := sweeps[0].ContextMap(); m["holds_expired"] != int64(2) || m["grants_expired"] != int64(1) || m["grants_deferred"] != int64(3) {
		t.Errorf("sweep line: %v", m)
	}
	failed := logs.FilterLevelExact(zapcore.WarnLevel).All()
	if len(failed) != 1 || failed[0].ContextMap()["error"] != "store unavailable" {
		t.Errorf("warn lines: %v", failed)
	}
}

// stop ends the loop and waits for it.
func TestStartExpiryStops(t *testing.T) {
	t.Parallel()
	f := &fakeExpiry{outcomes: []error{nil}, done: make(chan struct{}, 1000)}
	stop := startExpiry(f, time.Hour, zap.NewNop())
	stop()
	if f.calls != 0 {
		t.Errorf("%d sweeps before the first interval", f.calls)
	}
}
