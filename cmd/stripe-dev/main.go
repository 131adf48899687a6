// Command stripe-dev is a local stand-in for Stripe, for developing and
// testing the card checkout without an account or a network: it creates
// Checkout Sessions the way Stripe's API does, shows a test payment page
// at each session's url ("Stripe test stand-in — no real payment"), and
// on Pay sends the signed checkout.session.completed event to the
// checkout's webhook. See internal/stripedev for what it serves.
//
// Usage:
//
//	stripe-dev [flags]
//
// Flags (environment variable in brackets):
//
//	--addr            [STRIPE_DEV_ADDR]            listen address, loopback only (default 127.0.0.1:12111; port 0 picks one)
//	--webhook-url     [STRIPE_DEV_WEBHOOK_URL]     where the events go, e.g. http://127.0.0.1:8081/webhooks/payments
//	--secret-key      [STRIPE_DEV_SECRET_KEY]      the API key callers must send (sk_test_…); default: any test key
//	--webhook-secret  [STRIPE_DEV_WEBHOOK_SECRET]  the events' signing secret (whsec_…); default: a new one, printed
//	--public-url      [STRIPE_DEV_PUBLIC_URL]      base of the payment pages' URLs (default http://<addr>)
//	--version
//
// The two secrets also come from the file a *_FILE variable names. They
// are test values: the stand-in refuses live keys.
//
// It prints what to give the checkout on stdout and logs JSON lines to
// stderr, one with msg "listening" and the field http_addr once serving.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/creditledger/creditledger/internal/consumer"
	"github.com/creditledger/creditledger/internal/stripedev"
	"github.com/creditledger/creditledger/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stripe-dev:", err)
		os.Exit(1)
	}
}

type config struct {
	addr          string
	webhookURL    string
	secretKey     string
	webhookSecret string
	publicURL     string
	version       bool
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	var c config
	var err error
	if c.secretKey, err = consumer.ReadSecret(getenv, "STRIPE_DEV_SECRET_KEY"); err != nil {
		return c, err
	}
	if c.webhookSecret, err = consumer.ReadSecret(getenv, "STRIPE_DEV_WEBHOOK_SECRET"); err != nil {
		return c, err
	}
	fs := flag.NewFlagSet("stripe-dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", env("STRIPE_DEV_ADDR", "127.0.0.1:12111"), "listen address, loopback only [STRIPE_DEV_ADDR]")
	fs.StringVar(&c.webhookURL, "webhook-url", env("STRIPE_DEV_WEBHOOK_URL", ""),
		"where the events go, e.g. http://127.0.0.1:8081/webhooks/payments [STRIPE_DEV_WEBHOOK_URL]")
	fs.StringVar(&c.secretKey, "secret-key", c.secretKey, "the API key callers must send, sk_test_… (default: any test key) [STRIPE_DEV_SECRET_KEY]")
	fs.StringVar(&c.webhookSecret, "webhook-secret", c.webhookSecret, "the events' signing secret, whsec_… (default: a new one, printed) [STRIPE_DEV_WEBHOOK_SECRET]")
	fs.StringVar(&c.publicURL, "public-url", env("STRIPE_DEV_PUBLIC_URL", ""), "base of the payment pages' URLs (default http://<addr>) [STRIPE_DEV_PUBLIC_URL]")
	fs.BoolVar(&c.version, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	// It signs events with the checkout's webhook secret: reachable from
	// elsewhere, anyone could "pay" and be credited.
	if err := consumer.RequireLoopback(c.addr); err != nil {
		return c, fmt.Errorf("the Stripe stand-in signs payment events that credit accounts: %w", err)
	}
	return c, nil
}

func newLogger(w io.Writer) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey, enc.EncodeTime = "ts", zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), zap.InfoLevel)
	return zap.New(core).With(zap.String("service", "stripe-dev"))
}

// run serves until ctx is done.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	if cfg.version {
		_, err := fmt.Fprintln(stdout, version.String("stripe-dev"))
		return err
	}
	generated := cfg.webhookSecret == ""
	if generated {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		cfg.webhookSecret = "whsec_" + base64.RawURLEncoding.EncodeToString(b)
	}
	log := newLogger(stderr)
	defer func() { _ = log.Sync() }()

	lis, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.addr)
	if err != nil {
		return err
	}
	base := cfg.publicURL
	if base == "" {
		base = "http://" + lis.Addr().String()
	}
	sd, err := stripedev.New(stripedev.Config{
		SecretKey: cfg.secretKey, WebhookSecret: cfg.webhookSecret, WebhookURL: cfg.webhookURL, PublicURL: base, Log: log,
	})
	if err != nil {
		_ = lis.Close()
		return err
	}
	srv := &http.Server{Handler: sd.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()

	banner := fmt.Sprintf("Stripe test stand-in on %s — no real payment\n", base) +
		fmt.Sprintf("  checkout: CHECKOUT_STRIPE_API_URL=%s CHECKOUT_STRIPE_SECRET_KEY=%s\n", base, keyHint(cfg.secretKey))
	if generated {
		banner += fmt.Sprintf("  webhook signing secret (CHECKOUT_STRIPE_WEBHOOK_SECRET): %s\n", cfg.webhookSecret)
	}
	if cfg.webhookURL != "" {
		banner += fmt.Sprintf("  events go to %s\n", cfg.webhookURL)
	} else {
		banner += "  no --webhook-url: events are kept, not sent, until an endpoint is added (POST /v1/webhook_endpoints)\n"
	}
	if _, err := io.WriteString(stdout, banner); err != nil {
		_ = srv.Close()
		return err
	}
	log.Info("listening", zap.String("http_addr", lis.Addr().String()), zap.String("public_url", base),
		zap.String("webhook_url", cfg.webhookURL), zap.Bool("any_test_key", cfg.secretKey == ""))

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// keyHint names the key to give the checkout without printing it.
func keyHint(key string) string {
	if key == "" {
		return "sk_test_<anything>"
	}
	return key[:min(len(key), 8)] + "…(the key given to stripe-dev)"
}
