// Command checkout is CreditLedger's reference checkout service: a catalog
// of services, "Buy with Credit" orders, credit package purchases and the
// payment providers' webhook, with its own REST JSON API and its own SQLite
// file. See internal/checkout for the rules.
//
// Usage:
//
//	checkout [flags]
//
// Flags (environment variable in brackets):
//
//	--http-addr           [CHECKOUT_HTTP_ADDR]          listen address (default 127.0.0.1:8081; port 0 picks one)
//	--db                  [CHECKOUT_DB]                 SQLite file (default checkout.db)
//	--ledger-addr         [LEDGER_ADDR]                 ledgerd gRPC address (required)
//	--ledger-token        [LEDGER_TOKEN]                bearer token for the ledger
//	--webhook-secret      [CHECKOUT_WEBHOOK_SECRET]     HMAC key of payment webhooks (empty: unsigned, development only)
//	--reconcile-interval  [CHECKOUT_RECONCILE_INTERVAL] period of the reconciliation pass (default 30s)
//
// It logs JSON lines to stderr; once serving, one line with msg "listening"
// and the field http_addr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/creditledger/creditledger/internal/checkout"
	"github.com/creditledger/creditledger/internal/ledgerclient"
	"github.com/creditledger/creditledger/internal/serve"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "checkout:", err)
		os.Exit(1)
	}
}

type config struct {
	httpAddr          string
	dbPath            string
	ledgerAddr        string
	ledgerToken       string
	webhookSecret     string
	reconcileInterval time.Duration
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	var c config
	fs := flag.NewFlagSet("checkout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.httpAddr, "http-addr", env("CHECKOUT_HTTP_ADDR", "127.0.0.1:8081"), "listen address [CHECKOUT_HTTP_ADDR]")
	fs.StringVar(&c.dbPath, "db", env("CHECKOUT_DB", "checkout.db"), "SQLite file [CHECKOUT_DB]")
	fs.StringVar(&c.ledgerAddr, "ledger-addr", env("LEDGER_ADDR", ""), "ledgerd gRPC address [LEDGER_ADDR]")
	fs.StringVar(&c.ledgerToken, "ledger-token", "", "bearer token for the ledger [LEDGER_TOKEN]")
	fs.StringVar(&c.webhookSecret, "webhook-secret", "", "HMAC-SHA256 key of payment webhooks [CHECKOUT_WEBHOOK_SECRET]")
	interval := env("CHECKOUT_RECONCILE_INTERVAL", "30s")
	fs.Func("reconcile-interval", "period of the reconciliation pass [CHECKOUT_RECONCILE_INTERVAL] (default 30s)", func(s string) error {
		interval = s
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	// Secrets only from the environment unless given explicitly, so that
	// they need not appear in a process listing.
	if c.ledgerToken == "" {
		c.ledgerToken = getenv("LEDGER_TOKEN")
	}
	if c.webhookSecret == "" {
		c.webhookSecret = getenv("CHECKOUT_WEBHOOK_SECRET")
	}
	d, err := time.ParseDuration(interval)
	if err != nil || d <= 0 {
		return c, fmt.Errorf("reconcile interval %q: want a positive duration like 30s", interval)
	}
	c.reconcileInterval = d
	if c.ledgerAddr == "" {
		return c, errors.New("the ledger address is required: --ledger-addr or LEDGER_ADDR")
	}
	return c, nil
}

func newLogger(w io.Writer) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey, enc.EncodeTime = "ts", zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), zap.InfoLevel)
	return zap.New(core).With(zap.String("service", "checkout"))
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

	store, err := checkout.OpenStore(ctx, cfg.dbPath)
	if err != nil {
		return err
	}
	defer func() { _ = store.Close() }()

	opts := []ledgerclient.Option{ledgerclient.WithOnRetry(func(e ledgerclient.RetryEvent) {
		log.Warn("ledger call retried", zap.String("method", e.Method), zap.Int("attempt", e.Attempt),
			zap.String("code", e.Err.Code.String()), zap.Duration("wait", e.Wait))
	})}
	if cfg.ledgerToken != "" {
		opts = append(opts, ledgerclient.WithToken(cfg.ledgerToken))
	}
	ledger, err := ledgerclient.Dial(ctx, cfg.ledgerAddr, opts...)
	if err != nil {
		return err
	}
	defer func() { _ = ledger.Close() }()

	if cfg.webhookSecret == "" {
		log.Warn("payment webhooks are NOT authenticated (no CHECKOUT_WEBHOOK_SECRET): development only")
	}
	app, err := checkout.NewApp(checkout.Config{Store: store, Ledger: ledger, Logger: log, WebhookSecret: cfg.webhookSecret})
	if err != nil {
		return err
	}

	// Settle what a previous run left unfinished before taking traffic,
	// then keep reconciling while serving.
	return serve.Run(ctx, serve.Options{
		Log: log, Addr: cfg.httpAddr, Handler: app.Handler(), Every: cfg.reconcileInterval,
		Reconcile: func(ctx context.Context) error {
			_, err := app.Reconcile(ctx)
			return err
		},
		ListeningFields: []zap.Field{zap.String("db", cfg.dbPath), zap.String("ledger_addr", cfg.ledgerAddr)},
	})
}
