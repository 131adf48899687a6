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
//	--help, --version
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
	"fmt"
	"io"

	"go.uber.org/zap"

	"github.com/creditledger/creditledger/internal/consumer"
	"github.com/creditledger/creditledger/internal/stripedev"
)

var program = consumer.Program{
	Name:    "stripe-dev",
	Summary: "A local stand-in for Stripe's Checkout Sessions and their signed events, for development and tests: no real payment.",
}

type settings struct {
	Addr       string `name:"addr" env:"STRIPE_DEV_ADDR" default:"127.0.0.1:12111" placeholder:"HOST:PORT" help:"listen address, loopback only (port 0 picks one)"`
	WebhookURL string `name:"webhook-url" env:"STRIPE_DEV_WEBHOOK_URL" placeholder:"URL" help:"where the events go, e.g. http://127.0.0.1:8081/webhooks/payments"`
	// The secrets are test values, so flags may give them; the
	// environment (or a *_FILE) does when no flag does.
	SecretKey     string `name:"secret-key" placeholder:"sk_test_..." help:"the API key callers must send [$STRIPE_DEV_SECRET_KEY[_FILE]] (default: any test key)"`
	WebhookSecret string `name:"webhook-secret" placeholder:"whsec_..." help:"the events' signing secret [$STRIPE_DEV_WEBHOOK_SECRET[_FILE]] (default: a new one, printed)"`
	PublicURL     string `name:"public-url" env:"STRIPE_DEV_PUBLIC_URL" placeholder:"URL" help:"base of the payment pages' URLs (default http://<addr>)"`
}

// Check reads the secrets a flag did not give and refuses an address
// reachable from elsewhere.
func (s *settings) Check(_ consumer.Program, getenv func(string) string) error {
	for _, v := range []struct {
		dst  *string
		name string
	}{{&s.SecretKey, "STRIPE_DEV_SECRET_KEY"}, {&s.WebhookSecret, "STRIPE_DEV_WEBHOOK_SECRET"}} {
		env, err := consumer.ReadSecret(getenv, v.name)
		if err != nil {
			return err
		}
		if *v.dst == "" {
			*v.dst = env
		}
	}
	// It signs events with the checkout's webhook secret: reachable from
	// elsewhere, anyone could "pay" and be credited.
	if err := consumer.RequireLoopback(s.Addr); err != nil {
		return fmt.Errorf("the Stripe stand-in signs payment events that credit accounts: %w", err)
	}
	return nil
}

func main() { consumer.Main(program.Name, run) }

// run serves until ctx is done.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg settings
	if err := consumer.Parse(program, &cfg, args, getenv, stdout, stderr); err != nil {
		return err
	}
	generated := cfg.WebhookSecret == ""
	if generated {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		cfg.WebhookSecret = "whsec_" + base64.RawURLEncoding.EncodeToString(b)
	}
	log := consumer.NewLogger(stderr, program.Name)
	defer func() { _ = log.Sync() }()

	lis, err := consumer.Listen(ctx, cfg.Addr)
	if err != nil {
		return err
	}
	base := cfg.PublicURL
	if base == "" {
		base = "http://" + lis.Addr().String()
	}
	sd, err := stripedev.New(stripedev.Config{
		SecretKey: cfg.SecretKey, WebhookSecret: cfg.WebhookSecret, WebhookURL: cfg.WebhookURL, PublicURL: base, Log: log,
	})
	if err != nil {
		_ = lis.Close()
		return err
	}

	banner := fmt.Sprintf("Stripe test stand-in on %s — no real payment\n", base) +
		fmt.Sprintf("  checkout: CHECKOUT_STRIPE_API_URL=%s CHECKOUT_STRIPE_SECRET_KEY=%s\n", base, keyHint(cfg.SecretKey))
	if generated {
		banner += fmt.Sprintf("  webhook signing secret (CHECKOUT_STRIPE_WEBHOOK_SECRET): %s\n", cfg.WebhookSecret)
	}
	if cfg.WebhookURL != "" {
		banner += fmt.Sprintf("  events go to %s\n", cfg.WebhookURL)
	} else {
		banner += "  no --webhook-url: events are kept, not sent, until an endpoint is added (POST /v1/webhook_endpoints)\n"
	}
	if _, err := io.WriteString(stdout, banner); err != nil {
		_ = lis.Close()
		return err
	}
	return consumer.Serve(ctx, consumer.ServeOptions{
		Log: log, Listener: lis, Handler: sd.Handler(),
		ListeningFields: []zap.Field{
			zap.String("public_url", base), zap.String("webhook_url", cfg.WebhookURL), zap.Bool("any_test_key", cfg.SecretKey == ""),
		},
	})
}

// keyHint names the key to give the checkout without printing it.
func keyHint(key string) string {
	if key == "" {
		return "sk_test_<anything>"
	}
	return key[:min(len(key), 8)] + "…(the key given to stripe-dev)"
}
