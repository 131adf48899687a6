package webhook

import (
	"math/rand/v2"
	"time"
)

// Retry schedule. Delays double from BaseDelay up to MaxDelay; a message
// is retried until RetryWindow has passed since its first attempt, after
// which the endpoint is disabled. With these numbers an endpoint that is
// down for good sees about two dozen attempts over three days.
const (
	BaseDelay   = 5 * time.Second
	MaxDelay    = 6 * time.Hour
	RetryWindow = 72 * time.Hour
)

// NextDelay returns how long to wait after the given failed attempt
// (1 for the first) before the next one: d = BaseDelay·2^(attempt−1),
// capped at MaxDelay, then jittered uniformly into [d/2, d). Jitter spreads
// the retries of the many messages that failed together when an endpoint
// went down; keeping half of d keeps the backoff a backoff.
//
// rnd returns a number in [0, 1); nil means math/rand/v2's Float64. Tests
// pass a fixed function.
func NextDelay(attempt int, rnd func() float64) time.Duration {
	if rnd == nil {
		rnd = rand.Float64
	}
	// Doubling stops at the cap, so no attempt number overflows.
	d := BaseDelay
	for i := 1; i < attempt && d < MaxDelay; i++ {
		d *= 2
	}
	d = min(d, MaxDelay)
	f := rnd()
	if !(f >= 0 && f < 1) { // out of contract (NaN too): the least delay, not a wild one
		f = 0
	}
	half := d / 2
	return half + time.Duration(f*float64(d-half))
}

// GiveUp reports whether a message first attempted at firstAttempt has
// run out of time at now. A worker may pass now plus the next delay, to
// give up instead of scheduling an attempt past the window.
func GiveUp(firstAttempt, now time.Time) bool {
	return now.Sub(firstAttempt) >= RetryWindow
}
