package config

import (
	"flag"
	"fmt"
	"strconv"
	"time"
)

// Webhooks configures the delivery of events to webhook endpoints (SPEC
// §10). Every replica runs a delivery worker; leases give each endpoint to
// one of them at a time.
type Webhooks struct {
	// Enabled runs this replica's delivery worker (LEDGER_WEBHOOKS,
	// on by default; off leaves deliveries to the other replicas).
	Enabled bool
	// Interval is how often due endpoints are looked for
	// (LEDGER_WEBHOOK_INTERVAL): how late, at most, a new event leaves.
	Interval time.Duration
	// AllowPrivate lets endpoints use http and reach loopback and private
	// addresses (LEDGER_WEBHOOK_ALLOW_PRIVATE). Development only: a URL
	// must not become a way into the operator's network.
	AllowPrivate bool
	// Timeout bounds one delivery attempt (LEDGER_WEBHOOK_TIMEOUT).
	Timeout time.Duration
	// RetryBase is the first retry's delay; each failed attempt doubles it,
	// up to 6 h, with jitter (LEDGER_WEBHOOK_RETRY_BASE).
	RetryBase time.Duration
	// Lease is how long an endpoint stays a worker's without news
	// (LEDGER_WEBHOOK_LEASE): after a crash, how soon another worker
	// repeats the attempt that was in flight. Longer than two timeouts.
	Lease time.Duration
}

// Bounds of Webhooks.Interval.
const (
	DefaultWebhookInterval = time.Second
	MinWebhookInterval     = 10 * time.Millisecond
	MaxWebhookInterval     = time.Minute
)

// The webhook variables.
const (
	EnvWebhooks            = "LEDGER_WEBHOOKS"
	EnvWebhookInterval     = "LEDGER_WEBHOOK_INTERVAL"
	EnvWebhookAllowPrivate = "LEDGER_WEBHOOK_ALLOW_PRIVATE"
	EnvWebhookTimeout      = "LEDGER_WEBHOOK_TIMEOUT"
	EnvWebhookRetryBase    = "LEDGER_WEBHOOK_RETRY_BASE"
	EnvWebhookLease        = "LEDGER_WEBHOOK_LEASE"
)

// DefaultWebhooks is the delivery worker when nothing is set.
func DefaultWebhooks() Webhooks {
	return Webhooks{Enabled: true, Interval: DefaultWebhookInterval, Timeout: 15 * time.Second, RetryBase: 5 * time.Second, Lease: time.Minute}
}

func (w *Webhooks) fromEnv(getenv func(string) string) []error {
	var errs []error
	for _, b := range []struct {
		name string
		dst  *bool
	}{{EnvWebhooks, &w.Enabled}, {EnvWebhookAllowPrivate, &w.AllowPrivate}} {
		if v := getenv(b.name); v != "" {
			on, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %q is not a boolean (true or false)", b.name, v))
				continue
			}
			*b.dst = on
		}
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{EnvWebhookInterval, &w.Interval}, {EnvWebhookTimeout, &w.Timeout}, {EnvWebhookRetryBase, &w.RetryBase}, {EnvWebhookLease, &w.Lease}} {
		if v := getenv(d.name); v != "" {
			dur, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %q is not a duration (e.g. 1s)", d.name, v))
				continue
			}
			*d.dst = dur
		}
	}
	return errs
}

func (w *Webhooks) flags(fs *flag.FlagSet) {
	fs.BoolVar(&w.Enabled, "webhooks", w.Enabled, "run this replica's webhook delivery worker ("+EnvWebhooks+")")
	fs.DurationVar(&w.Interval, "webhook-interval", w.Interval, "how often due webhook endpoints are looked for ("+EnvWebhookInterval+")")
	fs.BoolVar(&w.AllowPrivate, "webhook-allow-private", w.AllowPrivate,
		"let webhook endpoints use http and loopback or private addresses; development only ("+EnvWebhookAllowPrivate+")")
}

func (w Webhooks) validate() error {
	switch {
	case w.Interval < MinWebhookInterval || w.Interval > MaxWebhookInterval:
		return fmt.Errorf("webhook interval %v: must be in [%v, %v]", w.Interval, MinWebhookInterval, MaxWebhookInterval)
	case w.Timeout < 10*time.Millisecond || w.Timeout > time.Minute:
		return fmt.Errorf("webhook timeout %v: must be in [10ms, 1m]", w.Timeout)
	case w.RetryBase < 10*time.Millisecond || w.RetryBase > time.Hour:
		return fmt.Errorf("webhook retry base %v: must be in [10ms, 1h]", w.RetryBase)
	case w.Lease < 2*w.Timeout || w.Lease > time.Hour:
		return fmt.Errorf("webhook lease %v: must be at least twice the timeout (%v) and at most 1h", w.Lease, w.Timeout)
	}
	return nil
}

func (w Webhooks) redacted() map[string]any {
	return map[string]any{
		"enabled": w.Enabled, "interval": w.Interval.String(), "allow_private": w.AllowPrivate,
		"timeout": w.Timeout.String(), "retry_base": w.RetryBase.String(), "lease": w.Lease.String(),
	}
}
