// Command ledgerbench is a gRPC load generator for ledgerd.
//
//	ledgerbench -addr 127.0.0.1:9090 -scenario uniform -concurrency 64 -duration 10s
//	ledgerbench -version
//
// Scenarios: uniform spreads debits and credits over many pre-funded
// accounts (10,000 by default); hot sends every operation to one account.
// Every operation carries a unique idempotency key, as a real client's
// would. It reports throughput, latency percentiles, errors by gRPC code
// and, given ledgerd's pid, its peak resident memory and CPU seconds per
// 1,000 operations; -json appends the result as one JSON line to a file.
//
// Around the measured phase it can also scrape ledgerd's /metrics for the
// write batch sizes (-metrics-url), read the PostgreSQL server's CPU
// (-pg-pid) and take a CPU profile (-profile-url, -profile-out).
//
// Afterwards it checks conservation: the credits minus the debits the
// ledger acknowledged, in every phase, must equal the sum of the
// workspace's balances. A write whose outcome is unknown (UNAVAILABLE,
// DEADLINE_EXCEEDED, …) is sent again under its idempotency key until the
// answer is definite, so the count is exact; a mismatch exits non-zero.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/creditledger/creditledger/internal/version"
)

func main() {
	// The load generator must cost as little CPU as it can: it shares the
	// machine with ledgerd and PostgreSQL (pgbench is a lean C client).
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ledgerbench:", err)
		os.Exit(1)
	}
}

// run parses the flags, runs one scenario and prints its report.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // the flag package printed the usage
	}
	if err != nil {
		return err
	}
	if cfg.version {
		_, err := fmt.Fprintln(stdout, version.String("ledgerbench"))
		return err
	}
	res, err := bench(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(stdout, res.String()); err != nil {
		return err
	}
	if cfg.jsonOut != "" {
		if err := appendJSON(cfg.jsonOut, res); err != nil {
			return err
		}
	}
	if res.Conservation != nil && !res.Conservation.OK() {
		return fmt.Errorf("conservation FAILED: %s", res.Conservation)
	}
	return nil
}
