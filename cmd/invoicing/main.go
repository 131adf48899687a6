// Command invoicing is CreditLedger's reference invoicing service:
// invoices in money and "Pay with Credit", with its own REST JSON API and
// its own SQLite file. See internal/invoicing for the payment saga, and
// internal/consumer for what it shares with the other services.
//
// Usage:
//
//	invoicing [flags]
//
// Flags (environment variable in brackets):
//
//	--http-addr           [INVOICING_HTTP_ADDR]          listen address (default 127.0.0.1:8082; port 0 picks one)
//	--db                  [INVOICING_DB]                 SQLite file (default invoicing.db)
//	--ledger-addr         [LEDGER_ADDR]                  ledgerd gRPC address (required)
//	--reconcile-interval  [INVOICING_RECONCILE_INTERVAL] period of the reconciliation pass (default 30s)
//	--auth                [INVOICING_AUTH]               token (default) or none (development: loopback only)
//	--auth-jwks-file      [INVOICING_AUTH_JWKS_FILE]     JWKS of the token verification keys, re-read on change
//	--auth-issuer         [INVOICING_AUTH_ISSUER]        required iss of tokens (default creditledger)
//	--auth-audience       [INVOICING_AUTH_AUDIENCE]      required aud of tokens (default creditledger)
//	--help, --version
//
// A flag wins over its variable; an empty variable counts as unset.
// Secrets come from the environment, or from the file a *_FILE variable
// names (trimmed), never from flags:
//
//	LEDGER_TOKEN[_FILE]          bearer token the service sends to ledgerd
//	INVOICING_AUTH_SECRET[_FILE] HS256 token secret instead of a JWKS: development only
//
// INVOICING_AUTH_JWKS_RELOAD_INTERVAL (default 10s) is how often the JWKS
// file is checked for changes.
//
// TEST-ONLY fault injection: with INVOICING_CRASH_AFTER_DEBIT=1 the process
// exits with status 3 right after the ledger confirmed an invoice's debit
// and before the invoice is marked PAID, the worst moment for a crash. The
// next start reconciles the invoice to PAID with exactly one debit. Never
// set it in production.
//
// It logs JSON lines to stderr; once serving, one line with msg "listening"
// and the field http_addr.
package main

import (
	"context"
	"io"
	"os"

	"go.uber.org/zap"

	"github.com/creditledger/creditledger/internal/consumer"
	"github.com/creditledger/creditledger/internal/invoicing"
)

// crashExitCode is the exit status of the INVOICING_CRASH_AFTER_DEBIT fault.
const crashExitCode = 3

// exit is os.Exit; a variable so that a test of run can observe the fault.
var exit = os.Exit

var program = consumer.Program{
	Name:    "invoicing",
	Summary: `CreditLedger's reference invoicing service: invoices in money, and "Pay with Credit".`,
	Vars:    map[string]string{"http_addr": "127.0.0.1:8082"},
}

func main() { consumer.Main(program.Name, run) }

// run serves until ctx is done, then shuts down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var s consumer.Settings
	if err := consumer.Parse(program, &s, args, getenv, stdout, stderr); err != nil {
		return err
	}
	crashAfterDebit := getenv("INVOICING_CRASH_AFTER_DEBIT") == "1"
	return consumer.Run(ctx, program, &s, stderr, func(ctx context.Context, d consumer.Deps) (consumer.Service, error) {
		store, err := invoicing.OpenStore(ctx, s.DB)
		if err != nil {
			return consumer.Service{}, err
		}
		cfg := invoicing.Config{Store: store, Ledger: d.Ledger, Logger: d.Log, Verifier: d.Verifier, NoAuth: d.NoAuth}
		if crashAfterDebit {
			d.Log.Warn("TEST-ONLY FAULT INJECTION: INVOICING_CRASH_AFTER_DEBIT=1, the process exits after the next invoice debit")
			cfg.AfterDebit = func(inv invoicing.Invoice) {
				d.Log.Warn("crashing after debit (INVOICING_CRASH_AFTER_DEBIT)", zap.String("invoice_id", inv.ID))
				_ = d.Log.Sync()
				exit(crashExitCode)
			}
		}
		app, err := invoicing.NewApp(cfg)
		if err != nil {
			_ = store.Close()
			return consumer.Service{}, err
		}
		// Settle the payments a previous run left PAYING before taking
		// traffic, then keep reconciling while serving.
		return consumer.Service{
			Handler: app.Handler(), Follow: app.FollowEvents, Close: store.Close,
			Reconcile: consumer.Reconciles(app.Reconcile),
		}, nil
	})
}
