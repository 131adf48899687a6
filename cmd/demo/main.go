// Command demo starts the whole CreditLedger demo on this machine and
// prints the portal's address: ledgerd (embedded store, token
// authentication), checkout (card payments through the local Stripe
// stand-in), invoicing, stripe-dev and the portal with its development
// sign-in, all on loopback, with a seeded workspace. Ctrl-C stops them
// all. `make demo` builds the programs and runs it.
//
// Usage:
//
//	demo [--bin DIR] [--data-dir DIR] [--portal-addr ADDR] [--workspace NAME]
//
// The data directory is emptied at every start: the demo begins afresh.
// Each program's log is in <data-dir>/logs/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/creditledger/creditledger/internal/demo"
	"github.com/creditledger/creditledger/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	exe, _ := os.Executable()
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	binDir := fs.String("bin", filepath.Dir(exe), "directory of the built programs (ledgerd, checkout, invoicing, stripe-dev, portal)")
	dataDir := fs.String("data-dir", ".data/demo", "the demo's keys, databases and logs; emptied at start")
	portalAddr := fs.String("portal-addr", "127.0.0.1:8090", "the portal's listen address")
	workspace := fs.String("workspace", "acme", "the demo agency's workspace")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		_, err := fmt.Fprintln(stdout, version.String("demo"))
		return err
	}
	if err := os.RemoveAll(*dataDir); err != nil {
		return err
	}
	_, _ = fmt.Fprintln(stdout, "starting ledgerd, stripe-dev, checkout, invoicing and the portal …")
	s, err := demo.Start(ctx, demo.Options{BinDir: *binDir, DataDir: *dataDir, PortalAddr: *portalAddr, Workspace: *workspace})
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(stdout, `
CreditLedger demo is running (workspace %q, seeded).

  Portal:      %s
  ledgerd:     %s (REST), %s (gRPC)
  checkout:    %s
  invoicing:   %s
  stripe-dev:  %s (the Stripe test stand-in: no real payment)
  logs:        %s

Open the portal, sign in as client-1 (or as the agency's administrator)
and try: Buy credits (card, or a bank transfer the agency accepts),
Services (Buy with Credit), Invoices (Pay with Credit), Credits (history
and CSV). Ctrl-C stops everything.
`, s.Workspace, s.PortalURL, s.LedgerURL, s.LedgerGRPC, s.CheckoutURL, s.InvoicingURL, s.StripeURL, s.LogDir)
	<-ctx.Done()
	_, _ = fmt.Fprintln(stdout, "\nstopping …")
	if err := s.Stop(); err != nil {
		return err
	}
	_, _ = fmt.Fprintln(stdout, "stopped.")
	return nil
}
