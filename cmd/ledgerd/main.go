// Command ledgerd is the CreditLedger server: gRPC and the REST gateway
// over PostgreSQL or the embedded store.
//
//	ledgerd [serve] [flags]   serve gRPC and HTTP (default)
//	ledgerd migrate [flags]   apply the schema migrations
//	ledgerd verify [flags]    check every invariant of the store
//	ledgerd token [flags]     mint a bearer token
//	ledgerd keygen [flags]    make a token signing key
//	ledgerd version           print the version (also --version)
//	ledgerd help              list the commands (also -h, --help)
//
// Configuration comes from flags and LEDGER_* environment variables; see
// internal/config.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ledgerd:", err)
		os.Exit(1)
	}
}
