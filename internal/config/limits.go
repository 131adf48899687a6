package config

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Limits are the request limits of spec §11, kept apart from the rest of
// Config: the pending-request cap of the domain and the rate limits of the
// gRPC server (which the REST gateway goes through).
type Limits struct {
	// MaxPendingRequests caps the PENDING credit requests of one account
	// (LEDGER_MAX_PENDING_REQUESTS, 1 to MaxPendingRequestsLimit).
	MaxPendingRequests int
	// RateWorkspace bounds every call of one workspace (LEDGER_RATE_LIMIT_WORKSPACE).
	RateWorkspace RateLimit
	// RateSubject bounds every call of one subject in a workspace (LEDGER_RATE_LIMIT_SUBJECT).
	RateSubject RateLimit
	// RateSubjectWrites bounds the writes of one subject in a workspace
	// (LEDGER_RATE_LIMIT_SUBJECT_WRITES).
	RateSubjectWrites RateLimit
	// RateSubmit bounds the SubmitRequest calls of one subject in a
	// workspace (LEDGER_RATE_LIMIT_SUBMIT).
	RateSubmit RateLimit
}

// MaxPendingRequestsLimit is the largest pending-request cap accepted; it
// matches ledger.MaxPendingRequestsLimit, which bounds the pending credits
// an account can add up.
const MaxPendingRequestsLimit = 1000

// DefaultLimits are the limits when nothing is set. The rates are per
// ledgerd process; the ledger's write path sustains several thousand
// writes per second, so no single workspace or caller may take more than
// a fraction of it, and a client portal has no reason to submit more than
// a few manual purchases a minute.
func DefaultLimits() Limits {
	return Limits{
		MaxPendingRequests: 20,
		RateWorkspace:      RateLimit{PerSecond: 1000, Burst: 2000},
		RateSubject:        RateLimit{PerSecond: 200, Burst: 400},
		RateSubjectWrites:  RateLimit{PerSecond: 100, Burst: 200},
		RateSubmit:         RateLimit{PerSecond: 0.2, Burst: 5},
	}
}

// Environment variables of the limits.
const (
	EnvMaxPendingRequests    = "LEDGER_MAX_PENDING_REQUESTS"
	EnvRateLimitWorkspace    = "LEDGER_RATE_LIMIT_WORKSPACE"
	EnvRateLimitSubject      = "LEDGER_RATE_LIMIT_SUBJECT"
	EnvRateLimitSubjectWrite = "LEDGER_RATE_LIMIT_SUBJECT_WRITES"
	EnvRateLimitSubmit       = "LEDGER_RATE_LIMIT_SUBMIT"
)

// RateLimit is a token bucket: PerSecond calls on average, Burst at once.
// The zero value is off.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// Off reports whether the limit is off.
func (r RateLimit) Off() bool { return r.PerSecond == 0 }

// String renders the limit as ParseRateLimit reads it.
func (r RateLimit) String() string {
	if r.Off() {
		return "0"
	}
	return strconv.FormatFloat(r.PerSecond, 'f', -1, 64) + "/s:" + strconv.Itoa(r.Burst)
}

// ParseRateLimit reads "0" or "off" (no limit), or "N/s" or "N/m" (N calls
// per second or per minute, N > 0, decimals allowed) optionally followed
// by ":B", the burst (default: one second's worth, at least 1).
// Examples: "100/s", "100/s:500", "12/m:5".
func ParseRateLimit(s string) (RateLimit, error) {
	s = strings.TrimSpace(s)
	if s == "0" || strings.EqualFold(s, "off") {
		return RateLimit{}, nil
	}
	spec, burstText, hasBurst := strings.Cut(s, ":")
	num, unit, ok := strings.Cut(spec, "/")
	if !ok || (unit != "s" && unit != "m") {
		return RateLimit{}, fmt.Errorf("%q: want N/s or N/m, optionally :burst (e.g. 100/s:200), or 0 for off", s)
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 || math.IsInf(n, 0) || math.IsNaN(n) || n > 1e6 {
		return RateLimit{}, fmt.Errorf("%q: the rate must be a number in (0, 1000000]", s)
	}
	r := RateLimit{PerSecond: n}
	if unit == "m" {
		r.PerSecond = n / 60
	}
	r.Burst = max(1, int(math.Ceil(r.PerSecond)))
	if hasBurst {
		b, err := strconv.Atoi(burstText)
		if err != nil || b < 1 || b > 1e7 {
			return RateLimit{}, fmt.Errorf("%q: the burst must be an integer in [1, 10000000]", s)
		}
		r.Burst = b
	}
	return r, nil
}

// Set implements flag.Value.
func (r *RateLimit) Set(s string) error {
	v, err := ParseRateLimit(s)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// fromEnv reads the limits' variables.
func (l *Limits) fromEnv(getenv func(string) string) []error {
	var errs []error
	if v := getenv(EnvMaxPendingRequests); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not an integer", EnvMaxPendingRequests, v))
		}
		l.MaxPendingRequests = n
	}
	for _, e := range []struct {
		name string
		dst  *RateLimit
	}{
		{EnvRateLimitWorkspace, &l.RateWorkspace},
		{EnvRateLimitSubject, &l.RateSubject},
		{EnvRateLimitSubjectWrite, &l.RateSubjectWrites},
		{EnvRateLimitSubmit, &l.RateSubmit},
	} {
		if v := getenv(e.name); v != "" {
			if err := e.dst.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", e.name, err))
			}
		}
	}
	return errs
}

// flags registers the limits' flags on fs, starting from l.
func (l *Limits) flags(fs *flag.FlagSet) {
	fs.IntVar(&l.MaxPendingRequests, "max-pending-requests", l.MaxPendingRequests,
		"most PENDING credit requests per account ("+EnvMaxPendingRequests+")")
	fs.Var(&l.RateWorkspace, "rate-limit-workspace", "calls per workspace, N/s[:burst] or 0 for off ("+EnvRateLimitWorkspace+")")
	fs.Var(&l.RateSubject, "rate-limit-subject", "calls per subject and workspace, N/s[:burst] or 0 ("+EnvRateLimitSubject+")")
	fs.Var(&l.RateSubjectWrites, "rate-limit-subject-writes", "writes per subject and workspace, N/s[:burst] or 0 ("+EnvRateLimitSubjectWrite+")")
	fs.Var(&l.RateSubmit, "rate-limit-submit", "SubmitRequest calls per subject and workspace, N/s or N/m[:burst] or 0 ("+EnvRateLimitSubmit+")")
}

func (l Limits) validate() error {
	if l.MaxPendingRequests < 1 || l.MaxPendingRequests > MaxPendingRequestsLimit {
		return errors.New("max pending requests " + strconv.Itoa(l.MaxPendingRequests) +
			": must be 1 to " + strconv.Itoa(MaxPendingRequestsLimit))
	}
	return nil
}

// redacted describes the limits for the start log line.
func (l Limits) redacted() map[string]any {
	return map[string]any{
		"max_pending_requests":      l.MaxPendingRequests,
		"rate_limit_workspace":      l.RateWorkspace.String(),
		"rate_limit_subject":        l.RateSubject.String(),
		"rate_limit_subject_writes": l.RateSubjectWrites.String(),
		"rate_limit_submit":         l.RateSubmit.String(),
	}
}
