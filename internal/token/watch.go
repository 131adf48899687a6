package token

import (
	"context"
	"os"
	"time"
)

// WatchJWKS re-reads the key set at path whenever its modification time or
// size changes, checking every interval until ctx ends, and gives the new
// set to v. A file that no longer parses leaves the current keys in place:
// a half-written rotation must not lock every caller out. report, when not
// nil, hears of every reload and every failure.
func WatchJWKS(ctx context.Context, path string, interval time.Duration, v *Verifier, report func(ks *KeySet, err error)) {
	if report == nil {
		report = func(*KeySet, error) {}
	}
	var lastMod time.Time
	var lastSize int64 = -1
	if fi, err := os.Stat(path); err == nil {
		lastMod, lastSize = fi.ModTime(), fi.Size()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(path)
		if err != nil {
			report(nil, err)
			continue
		}
		if fi.ModTime().Equal(lastMod) && fi.Size() == lastSize {
			continue
		}
		ks, err := LoadJWKS(path)
		if err != nil {
			report(nil, err)
			continue // retried at the next change, or the next tick
		}
		lastMod, lastSize = fi.ModTime(), fi.Size()
		v.SetKeys(ks)
		report(ks, nil)
	}
}
