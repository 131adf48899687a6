package main

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/creditledger/creditledger/internal/ledger"
)

// startExpiry runs the expiry loop every interval until the returned stop
// is called; stop waits for a sweep in progress to end (canceled).
func startExpiry(svc ledger.ExpiryService, interval time.Duration, log *zap.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	t := time.NewTicker(interval)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sweepLoop(ctx, svc, t.C, log)
	}()
	return func() {
		cancel()
		t.Stop()
		wg.Wait()
	}
}

// sweepLoop releases the due holds and expires the due credits at every
// tick until ctx ends. Each sweep is logged at debug level (what it did);
// a failed one at warn, and the next tick tries again.
func sweepLoop(ctx context.Context, svc ledger.ExpiryService, ticks <-chan time.Time, log *zap.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
		start := time.Now()
		rep, err := svc.ExpireDue(ctx)
		if ctx.Err() != nil {
			return // shutting down: the sweep was cut short, not failed
		}
		if err != nil {
			log.Warn("expiry sweep failed; retrying at the next tick", zap.Error(err))
			continue
		}
		log.Debug("expiry sweep",
			zap.Int("holds_expired", rep.Holds),
			zap.Int("grants_expired", rep.Grants),
			zap.Int("grants_deferred", rep.Deferred),
			zap.Float64("duration_seconds", time.Since(start).Seconds()))
	}
}
