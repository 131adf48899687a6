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
//	--reconcile-interval  [CHECKOUT_RECONCILE_INTERVAL] period of the reconciliation pass (default 30s)
//	--auth                [CHECKOUT_AUTH]               token (default) or none (development: loopback only)
//	--auth-jwks-file      [CHECKOUT_AUTH_JWKS_FILE]     JWKS of the token verification keys, re-read on change
//	--auth-issuer         [CHECKOUT_AUTH_ISSUER]        required iss of tokens (default creditledger)
//	--auth-audience       [CHECKOUT_AUTH_AUDIENCE]      required aud of tokens (default creditledger)
//	--webhooks            [CHECKOUT_WEBHOOKS]           stripe (default), off, or unsigned (development: loopback only)
//	--stripe-api-url      [CHECKOUT_STRIPE_API_URL]     Stripe's API (default https://api.stripe.com; a stand-in such as stripe-dev in development)
//
// Secrets come from the environment, or from the file a *_FILE variable
// names (trimmed), never from flags:
//
//	LEDGER_TOKEN[_FILE]                    bearer token the checkout sends to ledgerd
//	CHECKOUT_STRIPE_WEBHOOK_SECRET[_FILE]  Stripe endpoint signing secret (whsec_…), required by --webhooks=stripe
//	CHECKOUT_STRIPE_SECRET_KEY[_FILE]      Stripe secret key (sk_test_…, sk_live_…, rk_…): card purchases create
//	                                       Checkout Sessions; without it they are refused (PAYMENT_PROVIDER_NOT_CONFIGURED)
//	CHECKOUT_AUTH_SECRET[_FILE]            HS256 token secret instead of a JWKS: development only
//
// CHECKOUT_AUTH_JWKS_RELOAD_INTERVAL (default 10s) is how often the JWKS
// file is checked for changes.
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

	"github.com/creditledger/creditledger/internal/checkout"
	"github.com/creditledger/creditledger/internal/serve"
	"github.com/creditledger/creditledger/internal/token"
	"github.com/creditledger/creditledger/ledgerclient"
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
	ledgerTLS         *tls.Config // nil: plaintext
	reconcileInterval time.Duration
	holdTTL           time.Duration
	auth              consumer.AuthSettings
	webhooks          string
	stripeSecret      string
	payments          payments
}

// Payment webhook modes (CHECKOUT_WEBHOOKS).
const (
	webhooksStripe   = "stripe"   // Stripe-signed events only (production)
	webhooksOff      = "off"      // every webhook refused: no card payments
	webhooksUnsigned = "unsigned" // also unsigned bodies: development only
)

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	c := config{auth: consumer.AuthSettings{Prefix: "CHECKOUT"}}
	fs := flag.NewFlagSet("checkout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.httpAddr, "http-addr", env("CHECKOUT_HTTP_ADDR", "127.0.0.1:8081"), "listen address [CHECKOUT_HTTP_ADDR]")
	fs.StringVar(&c.dbPath, "db", env("CHECKOUT_DB", "checkout.db"), "SQLite file [CHECKOUT_DB]")
	fs.StringVar(&c.ledgerAddr, "ledger-addr", env("LEDGER_ADDR", ""), "ledgerd gRPC address [LEDGER_ADDR]")
	interval := env("CHECKOUT_RECONCILE_INTERVAL", "30s")
	fs.Func("reconcile-interval", "period of the reconciliation pass [CHECKOUT_RECONCILE_INTERVAL] (default 30s)", func(s string) error {
		interval = s
		return nil
	})
	holdTTL := env("CHECKOUT_HOLD_TTL", "24h")
	fs.Func("hold-ttl", "how long an order's credits stay held waiting for its confirmation, at most 720h [CHECKOUT_HOLD_TTL] (default 24h)", func(s string) error {
		holdTTL = s
		return nil
	})
	fs.StringVar(&c.auth.Mode, "auth", env("CHECKOUT_AUTH", consumer.AuthToken), "authentication of the API: token, or none (development, loopback only) [CHECKOUT_AUTH]")
	fs.StringVar(&c.auth.JWKSFile, "auth-jwks-file", env("CHECKOUT_AUTH_JWKS_FILE", ""), "JWKS file of the token verification keys, re-read on change [CHECKOUT_AUTH_JWKS_FILE]")
	fs.StringVar(&c.auth.Issuer, "auth-issuer", env("CHECKOUT_AUTH_ISSUER", token.DefaultIssuer), "required iss of tokens [CHECKOUT_AUTH_ISSUER]")
	fs.StringVar(&c.auth.Audience, "auth-audience", env("CHECKOUT_AUTH_AUDIENCE", token.DefaultAudience), "required aud of tokens [CHECKOUT_AUTH_AUDIENCE]")
	fs.StringVar(&c.webhooks, "webhooks", env("CHECKOUT_WEBHOOKS", webhooksStripe), "payment webhooks: stripe, off, or unsigned (development, loopback only) [CHECKOUT_WEBHOOKS]")
	c.payments.flags(fs, env)
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
	if c.holdTTL, err = time.ParseDuration(holdTTL); err != nil || c.holdTTL < time.Second || c.holdTTL > checkout.MaxHoldTTL || c.holdTTL%time.Second != 0 {
		return c, fmt.Errorf("hold TTL %q: want whole seconds between 1s and 720h, like 24h", holdTTL)
	}
	if c.ledgerAddr == "" {
		return c, errors.New("the ledger address is required: --ledger-addr or LEDGER_ADDR")
	}
	reload := env("CHECKOUT_AUTH_JWKS_RELOAD_INTERVAL", "10s")
	if c.auth.Reload, err = time.ParseDuration(reload); err != nil {
		return c, fmt.Errorf("CHECKOUT_AUTH_JWKS_RELOAD_INTERVAL %q: want a duration like 10s", reload)
	}
	// Secrets: from the environment or a file, never a flag (a process
	// listing shows flags to every user of the machine).
	if c.ledgerTLS, err = ledgerclient.TLSFromEnv(getenv); err != nil {
		return c, err
	}
	if c.ledgerToken, err = consumer.ReadSecret(getenv, "LEDGER_TOKEN"); err != nil {
		return c, err
	}
	if c.stripeSecret, err = consumer.ReadSecret(getenv, "CHECKOUT_STRIPE_WEBHOOK_SECRET"); err != nil {
		return c, err
	}
	devSecret, err := consumer.ReadSecret(getenv, "CHECKOUT_AUTH_SECRET")
	if err != nil {
		return c, err
	}
	c.auth.Secret = []byte(devSecret)
	if getenv("CHECKOUT_WEBHOOK_SECRET") != "" {
		return c, errors.New("CHECKOUT_WEBHOOK_SECRET (an HMAC of our own) is no longer accepted: payment webhooks are Stripe's, " +
			"signed with the endpoint's secret in CHECKOUT_STRIPE_WEBHOOK_SECRET")
	}
	if err := c.auth.Check(c.httpAddr); err != nil {
		return c, err
	}
	switch c.webhooks {
	case webhooksStripe:
		if c.stripeSecret == "" {
			return c, errors.New("CHECKOUT_WEBHOOKS=stripe (the default) needs the endpoint's signing secret in CHECKOUT_STRIPE_WEBHOOK_SECRET " +
				"(or _FILE); set CHECKOUT_WEBHOOKS=off to refuse every payment webhook, or =unsigned for development on loopback")
		}
	case webhooksOff:
		if c.stripeSecret != "" {
			return c, errors.New("CHECKOUT_WEBHOOKS=off with a CHECKOUT_STRIPE_WEBHOOK_SECRET: choose one")
		}
	case webhooksUnsigned:
		if err := consumer.RequireLoopback(c.httpAddr); err != nil {
			return c, fmt.Errorf("CHECKOUT_WEBHOOKS=unsigned lets anyone who reaches the endpoint credit any account: %w", err)
		}
	default:
		return c, fmt.Errorf("CHECKOUT_WEBHOOKS %q: must be stripe, off or unsigned (development only)", c.webhooks)
	}
	if err := c.payments.load(getenv, c.webhooks, c.stripeSecret); err != nil {
		return c, err
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

	// The keys first: a bad key file must fail the start before anything
	// is opened.
	var watchers sync.WaitGroup
	ctx, stopWatching := context.WithCancel(ctx)
	defer func() { stopWatching(); watchers.Wait() }()
	v, err := cfg.auth.Verifier(ctx, log, &watchers)
	if err != nil {
		return err
	}

	store, err := checkout.OpenStore(ctx, cfg.dbPath)
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

	providers, err := cfg.payments.providers()
	if err != nil {
		return err
	}
	if providers == nil {
		log.Warn("card payments are off: no CHECKOUT_STRIPE_SECRET_KEY; card purchases are refused (PAYMENT_PROVIDER_NOT_CONFIGURED)")
	}
	appCfg := checkout.Config{
		Store: store, Ledger: ledger, Logger: log, Providers: providers,
		StripeWebhookSecret: cfg.stripeSecret, UnsignedWebhooks: cfg.webhooks == webhooksUnsigned, HoldTTL: cfg.holdTTL,
	}
	if v != nil {
		appCfg.Verifier = v
	} else {
		appCfg.NoAuth = true
	}
	switch cfg.webhooks {
	case webhooksUnsigned:
		log.Warn("DEVELOPMENT MODE: UNSIGNED payment webhooks are accepted (CHECKOUT_WEBHOOKS=unsigned); anyone who reaches /webhooks/payments can credit any account")
	case webhooksOff:
		log.Warn("payment webhooks are off (CHECKOUT_WEBHOOKS=off): every card payment confirmation is refused")
	}
	app, err := checkout.NewApp(appCfg)
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
		Follow: app.FollowEvents,
		ListeningFields: []zap.Field{
			zap.String("db", cfg.dbPath), zap.String("ledger_addr", cfg.ledgerAddr),
			zap.String("auth", cfg.auth.Mode), zap.String("webhooks", cfg.webhooks), zap.String("card_payments", cfg.payments.mode()),
		},
	})
}
