package webhook

import (
	"math"
	"testing"
	"time"
)

// almostOne is the largest value rnd may return.
var almostOne = math.Nextafter(1, 0)

func constant(f float64) func() float64 { return func() float64 { return f } }

func TestNextDelay(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{"first, least jitter", 1, 0, 2500 * time.Millisecond},
		{"first, most", 1, almostOne, 5*time.Second - time.Nanosecond},
		{"first, midway", 1, 0.5, 3750 * time.Millisecond},
		{"second", 2, 0, 5 * time.Second},
		{"third", 3, 0, 10 * time.Second},
		{"tenth", 10, 0, 5 * time.Second << 9 / 2},
		{"last before the cap", 13, 0, 5 * time.Second << 12 / 2},
		{"capped", 14, 0, 3 * time.Hour},
		{"capped, most", 14, almostOne, 6*time.Hour - time.Nanosecond},
		{"far past the cap", 1000, 0.5, 4*time.Hour + 30*time.Minute},
		{"zero counts as first", 0, 0, 2500 * time.Millisecond},
		{"negative counts as first", -3, 0, 2500 * time.Millisecond},
		{"rnd of 1 is out of contract", 1, 1, 2500 * time.Millisecond},
		{"negative rnd is out of contract", 1, -0.5, 2500 * time.Millisecond},
		{"NaN rnd is out of contract", 1, math.NaN(), 2500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := NextDelay(tc.attempt, constant(tc.rnd)); got != tc.want {
				t.Errorf("NextDelay(%d, %v) = %v, want %v", tc.attempt, tc.rnd, got, tc.want)
			}
		})
	}
}

// TestNextDelayBounds checks the schedule's shape: every delay is within
// [d/2, d] of its unjittered value d, which doubles up to MaxDelay.
func TestNextDelayBounds(t *testing.T) {
	t.Parallel()
	prevLow := time.Duration(0)
	for attempt := 1; attempt <= 100; attempt++ {
		low, high := NextDelay(attempt, constant(0)), NextDelay(attempt, constant(almostOne))
		if low < prevLow {
			t.Errorf("attempt %d: least delay %v is below the previous attempt's %v", attempt, low, prevLow)
		}
		if high > MaxDelay || low < high/2 || low > high {
			t.Errorf("attempt %d: delays span [%v, %v], want within [d/2, d] and d ≤ %v", attempt, low, high, MaxDelay)
		}
		for _, f := range []float64{0.1, 0.37, 0.9} {
			if d := NextDelay(attempt, constant(f)); d < low || d > high {
				t.Errorf("NextDelay(%d, %v) = %v, outside [%v, %v]", attempt, f, d, low, high)
			}
		}
		prevLow = low
	}
	// The default source of randomness keeps to the same bounds.
	for range 100 {
		if d := NextDelay(3, nil); d < 10*time.Second || d > 20*time.Second {
			t.Errorf("NextDelay(3, nil) = %v, want in [10s, 20s]", d)
		}
	}
}

func TestGiveUp(t *testing.T) {
	t.Parallel()
	first := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		after time.Duration
		want  bool
	}{
		{"at once", 0, false},
		{"a day later", 24 * time.Hour, false},
		{"just inside the window", RetryWindow - time.Second, false},
		{"at the end of the window", RetryWindow, true},
		{"past the window", RetryWindow + time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := GiveUp(first, first.Add(tc.after)); got != tc.want {
				t.Errorf("GiveUp(first, first+%v) = %v, want %v", tc.after, got, tc.want)
			}
		})
	}
	if RetryWindow != 72*time.Hour {
		t.Errorf("RetryWindow = %v, the product promises 72h", RetryWindow)
	}
}
