package config

import (
	"flag"
	"fmt"
	"time"
)

// Expiry configures the server's expiry loop (SPEC §9): every Interval it
// releases the holds and expires the credit grants that are due, in every
// workspace. Every replica runs it; the ledger makes each hold and grant
// end exactly once whatever the number of sweepers.
type Expiry struct {
	// Interval is the time between two sweeps (LEDGER_EXPIRY_INTERVAL):
	// how late, at most, a due hold or grant is released.
	Interval time.Duration
}

// Bounds of Expiry.Interval.
const (
	DefaultExpiryInterval = 5 * time.Second
	MinExpiryInterval     = 100 * time.Millisecond
	MaxExpiryInterval     = time.Hour
)

// EnvExpiryInterval names the sweep interval's variable.
const EnvExpiryInterval = "LEDGER_EXPIRY_INTERVAL"

// DefaultExpiry is the expiry loop when nothing is set.
func DefaultExpiry() Expiry { return Expiry{Interval: DefaultExpiryInterval} }

// fromEnv reads the expiry loop's variables.
func (e *Expiry) fromEnv(getenv func(string) string) []error {
	if v := getenv(EnvExpiryInterval); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return []error{fmt.Errorf("%s: %q is not a duration (e.g. 5s)", EnvExpiryInterval, v)}
		}
		e.Interval = d
	}
	return nil
}

// flags registers the expiry loop's flags on fs, starting from e.
func (e *Expiry) flags(fs *flag.FlagSet) {
	fs.DurationVar(&e.Interval, "expiry-interval", e.Interval,
		"time between two sweeps releasing due holds and expiring due credits ("+EnvExpiryInterval+")")
}

func (e Expiry) validate() error {
	if e.Interval < MinExpiryInterval || e.Interval > MaxExpiryInterval {
		return fmt.Errorf("expiry interval %v: must be in [%v, %v]", e.Interval, MinExpiryInterval, MaxExpiryInterval)
	}
	return nil
}

// redacted describes the expiry loop for the start log line.
func (e Expiry) redacted() map[string]any {
	return map[string]any{"interval": e.Interval.String()}
}
