package main

import (
	"runtime/debug"
)

// Garbage-collector defaults for a server whose live heap is small (tens of
// MiB) and whose allocation rate is high (every call allocates its request,
// response and batch state): Go's default GOGC=100 spends about a third of
// ledgerd's CPU in the collector under load. A higher GOGC, bounded by a
// soft memory limit so that the heap never grows past it, gives that CPU
// back to serving. GOGC and GOMEMLIMIT in the environment win.
const (
	defaultGCPercent   = 400
	defaultMemoryLimit = 96 << 20 // bytes; the collector works harder near it, nothing fails
)

// tuneGC applies the defaults that the environment does not set.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
}
