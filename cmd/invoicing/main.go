// Command invoicing is CreditLedger's reference invoicing service:
// invoices in money and "Pay with Credit", with its own REST JSON API and
// its own SQLite file. See internal/invoicing for the payment saga.
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
//
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
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/creditledger/creditledger/internal/consumer"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/creditledger/creditledger/internal/invoicing"
	"github.com/creditledger/creditledger/ledgerclient"
	"github.com/creditledger/creditledger/internal/serve"
	"github.com/creditledger/creditledger/internal/token"
)

// crashExitCode is the exit status of the INVOICING_CRASH_AFTER_DEBIT fault.
const crashExitCode = 3

// exit is os.Exit; a variable so that a test of run can observe the fault.
var exit = os.Exit

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "invoicing:", err)
		os.Exit(1)
	}
}

type config struct {
	httpAddr          string
	dbPath            string
	ledgerAddr        string
	ledgerToken       string
	ledgerTLS         *tls.Config // nil: plaintext
	reconcileInterval time.Duration
	crashAfterDebit   bool
	auth              consumer.AuthSettings
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	c := config{auth: consumer.AuthSettings{Prefix: "INVOICING"}}
	fs := flag.NewFlagSet("invoicing", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.httpAddr, "http-addr", env("INVOICING_HTTP_ADDR", "127.0.0.1:8082"), "listen address [INVOICING_HTTP_ADDR]")
	fs.StringVar(&c.dbPath, "db", env("INVOICING_DB", "invoicing.db"), "SQLite file [INVOICING_DB]")
	fs.StringVar(&c.ledgerAddr, "ledger-addr", env("LEDGER_ADDR", ""), "ledgerd gRPC address [LEDGER_ADDR]")
	interval := env("INVOICING_RECONCILE_INTERVAL", "30s")
	fs.Func("reconcile-interval", "period of the reconciliation pass [INVOICING_RECONCILE_INTERVAL] (default 30s)", func(s string) error {
		interval = s
		return nil
	})
	fs.StringVar(&c.auth.Mode, "auth", env("INVOICING_AUTH", consumer.AuthToken), "authentication of the API: token, or none (development, loopback only) [INVOICING_AUTH]")
	fs.StringVar(&c.auth.JWKSFile, "auth-jwks-file", env("INVOICING_AUTH_JWKS_FILE", ""), "JWKS file of the token verification keys, re-read on change [INVOICING_AUTH_JWKS_FILE]")
	fs.StringVar(&c.auth.Issuer, "auth-issuer", env("INVOICING_AUTH_ISSUER", token.DefaultIssuer), "required iss of tokens [INVOICING_AUTH_ISSUER]")
	fs.StringVar(&c.auth.Audience, "auth-audience", env("INVOICING_AUTH_AUDIENCE", token.DefaultAudience), "required aud of tokens [INVOICING_AUTH_AUDIENCE]")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	d, err := time.ParseDuration(interval)
	if err != nil || d <= 0 {
		return c, fmt.Errorf("reconcile interval %q: want a positive duration like 30s", interval)
	}
	c.reconcileInterval = d
	c.crashAfterDebit = getenv("INVOICING_CRASH_AFTER_DEBIT") == "1"
	if c.ledgerAddr == "" {
		return c, errors.New("the ledger address is required: --ledger-addr or LEDGER_ADDR")
	}
	reload := env("INVOICING_AUTH_JWKS_RELOAD_INTERVAL", "10s")
	if c.auth.Reload, err = time.ParseDuration(reload); err != nil {
		return c, fmt.Errorf("INVOICING_AUTH_JWKS_RELOAD_INTERVAL %q: want a duration like 10s", reload)
	}
	// Secrets: from the environment or a file, never a flag (a process
	// listing shows flags to every user of the machine).
	if c.ledgerTLS, err = ledgerclient.TLSFromEnv(getenv); err != nil {
		return c, err
	}
	if c.ledgerToken, err = consumer.ReadSecret(getenv, "LEDGER_TOKEN"); err != nil {
		return c, err
	}
	devSecret, err := consumer.ReadSecret(getenv, "INVOICING_AUTH_SECRET")
	if err != nil {
		return c, err
	}
	c.auth.Secret = []byte(devSecret)
	if err := c.auth.Check(c.httpAddr); err != nil {
		return c, err
	}
	return c, nil
}

func newLogger(w io.Writer) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey, enc.EncodeTime = "ts", zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), zap.InfoLevel)
	return zap.New(core).With(zap.String("service", "invoicing"))
}

// run serves until ctx is done, then shuts down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	_ = stdout
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr)
	defer func() { _ = log.Sync() }()

	// The keys first: a bad key file must fail the start before anything
	// is opened.
	var watchers sync.WaitGroup
	ctx, stopWatching := context.WithCancel(ctx)
	defer func() { stopWatching(); watchers.Wait() }()
	v, err := cfg.auth.Verifier(ctx, log, &watchers)
	if err != nil {
		return err
	}

	store, err := invoicing.OpenStore(ctx, cfg.dbPath)
	if err != nil {
		return err
	}
	defer func() { _ = store.Close() }()

	opts := []ledgerclient.Option{
		ledgerclient.WithOnRetry(func(e ledgerclient.RetryEvent) {
			log.Warn("ledger call retried", zap.String("method", e.Method), zap.Int("attempt", e.Attempt),
				zap.String("code", e.Err.Code.String()), zap.Duration("wait", e.Wait))
		}),
		// The event streams stay open for hours: a ledger gone without
		// closing the connection is noticed within 40s, and the stream
		// resumed from the stored cursor.
		ledgerclient.WithDialOptions(grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second})),
	}
	if cfg.ledgerToken != "" {
		opts = append(opts, ledgerclient.WithToken(cfg.ledgerToken))
	}
	if cfg.ledgerTLS != nil {
		opts = append(opts, ledgerclient.WithTLS(cfg.ledgerTLS))
	} else {
		log.Warn("the connection to ledgerd is plaintext: set LEDGER_CA_FILE (and LEDGER_CLIENT_CERT_FILE/LEDGER_CLIENT_KEY_FILE for mTLS) outside development")
	}
	ledger, err := ledgerclient.Dial(ctx, cfg.ledgerAddr, opts...)
	if err != nil {
		return err
	}
	defer func() { _ = ledger.Close() }()

	appCfg := invoicing.Config{Store: store, Ledger: ledger, Logger: log}
	if v != nil {
		appCfg.Verifier = v
	} else {
		appCfg.NoAuth = true
	}
	if cfg.crashAfterDebit {
		log.Warn("TEST-ONLY FAULT INJECTION: INVOICING_CRASH_AFTER_DEBIT=1, the process exits after the next invoice debit")
		appCfg.AfterDebit = func(inv invoicing.Invoice) {
			log.Warn("crashing after debit (INVOICING_CRASH_AFTER_DEBIT)", zap.String("invoice_id", inv.ID))
			_ = log.Sync()
			exit(crashExitCode)
		}
	}
	app, err := invoicing.NewApp(appCfg)
	if err != nil {
		return err
	}

	// Settle the payments a previous run left PAYING before taking
	// traffic, then keep reconciling while serving.
	return serve.Run(ctx, serve.Options{
		Log: log, Addr: cfg.httpAddr, Handler: app.Handler(), Every: cfg.reconcileInterval,
		Reconcile: func(ctx context.Context) error {
			_, err := app.Reconcile(ctx)
			return err
		},
		Follow:          app.FollowEvents,
		ListeningFields: []zap.Field{zap.String("db", cfg.dbPath), zap.String("ledger_addr", cfg.ledgerAddr), zap.String("auth", cfg.auth.Mode)},
	})
}
