// Command ledgerbench is a gRPC load generator for ledgerd.
//
//	ledgerbench -addr 127.0.0.1:9090 -scenario uniform -concurrency 64 -duration 10s
//
// Scenarios: uniform spreads debits and credits over many pre-funded
// accounts (10,000 by default); hot sends every operation to one account.
// Every operation carries a unique idempotency key, as a real client's
// would. It reports throughput, latency percentiles, errors by gRPC code
// and, given ledgerd's pid, its peak resident memory; -json appends the
// result as one JSON line to a file.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
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
	if err != nil {
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
		return appendJSON(cfg.jsonOut, res)
	}
	return nil
}
