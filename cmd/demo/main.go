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
//	demo --help | --version
//
// The data directory is emptied at every start: the demo begins afresh.
// Each program's log is in <data-dir>/logs/.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/creditledger/creditledger/internal/consumer"
	"github.com/creditledger/creditledger/internal/demo"
)

var program = consumer.Program{
	Name:    "demo",
	Summary: "Starts the whole CreditLedger demo on this machine (ledgerd, stripe-dev, checkout, invoicing, the portal) and prints the portal's address.",
}

type settings struct {
	Bin        string `name:"bin" default:"${bin}" placeholder:"DIR" help:"directory of the built programs (ledgerd, checkout, invoicing, stripe-dev, portal)"`
	DataDir    string `name:"data-dir" default:".data/demo" placeholder:"DIR" help:"the demo's keys, databases and logs; emptied at start"`
	PortalAddr string `name:"portal-addr" default:"127.0.0.1:8090" placeholder:"HOST:PORT" help:"the portal's listen address"`
	Workspace  string `name:"workspace" default:"acme" placeholder:"NAME" help:"the demo agency's workspace"`
}

func main() { consumer.Main(program.Name, run) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	exe, _ := os.Executable()
	p := program
	p.Vars = map[string]string{"bin": filepath.Dir(exe)}
	var c settings
	if err := consumer.Parse(p, &c, args, getenv, stdout, stderr); err != nil {
		return err
	}
	if err := os.RemoveAll(c.DataDir); err != nil {
		return err
	}
	_, _ = fmt.Fprintln(stdout, "starting ledgerd, stripe-dev, checkout, invoicing and the portal …")
	s, err := demo.Start(ctx, demo.Options{BinDir: c.Bin, DataDir: c.DataDir, PortalAddr: c.PortalAddr, Workspace: c.Workspace})
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
