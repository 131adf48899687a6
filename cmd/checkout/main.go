// Command checkout is CreditLedger's reference checkout service: a catalog
// of services, "Buy with Credit" orders, credit package purchases and the
// payment providers' webhook, with its own REST JSON API and its own SQLite
// file. See internal/checkout for the rules, and internal/consumer for
// what it shares with the other services.
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
//	--hold-ttl            [CHECKOUT_HOLD_TTL]           how long an order's credits stay held (default 24h, at most 720h)
//	--auth                [CHECKOUT_AUTH]               token (default) or none (development: loopback only)
//	--auth-jwks-file      [CHECKOUT_AUTH_JWKS_FILE]     JWKS of the token verification keys, re-read on change
//	--auth-issuer         [CHECKOUT_AUTH_ISSUER]        required iss of tokens (default creditledger)
//	--auth-audience       [CHECKOUT_AUTH_AUDIENCE]      required aud of tokens (default creditledger)
//	--webhooks            [CHECKOUT_WEBHOOKS]           stripe (default), off, or unsigned (development: loopback only)
//	--stripe-api-url      [CHECKOUT_STRIPE_API_URL]     Stripe's API (default https://api.stripe.com; a stand-in such as stripe-dev in development)
//	--help, --version
//
// A flag wins over its variable; an empty variable counts as unset.
// Secrets come from the environment, or from the file a *_FILE variable
// names (trimmed), never from flags:
//
//	LEDGER_TOKEN[_FILE]                    bearer token the checkout sends to ledgerd
//	CHECKOUT_STRIPE_WEBHOOK_SECRET[_FILE]  Stripe endpoint signing secret (whsec_…), required by --webhooks=stripe
//	CHECKOUT_STRIPE_SECRET_KEY[_FILE]      Stripe secret key (sk_test_…, sk_live_…, rk_…); none: card purchases are refused
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
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/creditledger/creditledger/internal/checkout"
	"github.com/creditledger/creditledger/internal/consumer"
)

var program = consumer.Program{
	Name:    "checkout",
	Summary: `CreditLedger's reference checkout service: a catalog of services, "Buy with Credit" orders, credit package purchases and the payment providers' webhook.`,
	Vars:    map[string]string{"http_addr": "127.0.0.1:8081"},
}

// Payment webhook modes (CHECKOUT_WEBHOOKS).
const (
	webhooksStripe   = "stripe"   // Stripe-signed events only (production)
	webhooksOff      = "off"      // every webhook refused: no card payments
	webhooksUnsigned = "unsigned" // also unsigned bodies: development only
)

// settings are the checkout's: the kit's and its own.
type settings struct {
	consumer.Settings
	HoldTTL  string `name:"hold-ttl" env:"CHECKOUT_HOLD_TTL" default:"24h" placeholder:"DURATION" help:"how long an order's credits stay held waiting for its confirmation, at most 720h"`
	Webhooks string `name:"webhooks" env:"CHECKOUT_WEBHOOKS" default:"stripe" placeholder:"stripe|off|unsigned" help:"payment webhooks: stripe (signed), off, or unsigned (development, loopback only)"`
	payments

	holdTTL      time.Duration
	stripeSecret string // from the environment only
}

// Check checks the kit's settings, then the checkout's.
func (s *settings) Check(p consumer.Program, getenv func(string) string) error {
	if err := s.Settings.Check(p, getenv); err != nil {
		return err
	}
	var err error
	if s.holdTTL, err = time.ParseDuration(s.HoldTTL); err != nil || s.holdTTL < time.Second || s.holdTTL > checkout.MaxHoldTTL || s.holdTTL%time.Second != 0 {
		return fmt.Errorf("hold TTL %q: want whole seconds between 1s and 720h, like 24h", s.HoldTTL)
	}
	if s.stripeSecret, err = consumer.ReadSecret(getenv, "CHECKOUT_STRIPE_WEBHOOK_SECRET"); err != nil {
		return err
	}
	if getenv("CHECKOUT_WEBHOOK_SECRET") != "" {
		return errors.New("CHECKOUT_WEBHOOK_SECRET (an HMAC of our own) is no longer accepted: payment webhooks are Stripe's, " +
			"signed with the endpoint's secret in CHECKOUT_STRIPE_WEBHOOK_SECRET")
	}
	switch s.Webhooks {
	case webhooksStripe:
		if s.stripeSecret == "" {
			return errors.New("CHECKOUT_WEBHOOKS=stripe (the default) needs the endpoint's signing secret in CHECKOUT_STRIPE_WEBHOOK_SECRET " +
				"(or _FILE); set CHECKOUT_WEBHOOKS=off to refuse every payment webhook, or =unsigned for development on loopback")
		}
	case webhooksOff:
		if s.stripeSecret != "" {
			return errors.New("CHECKOUT_WEBHOOKS=off with a CHECKOUT_STRIPE_WEBHOOK_SECRET: choose one")
		}
	case webhooksUnsigned:
		if err := consumer.RequireLoopback(s.HTTPAddr); err != nil {
			return fmt.Errorf("CHECKOUT_WEBHOOKS=unsigned lets anyone who reaches the endpoint credit any account: %w", err)
		}
	default:
		return fmt.Errorf("CHECKOUT_WEBHOOKS %q: must be stripe, off or unsigned (development only)", s.Webhooks)
	}
	return s.load(getenv, s.Webhooks, s.stripeSecret)
}

// Environment adds the checkout's secret to the kit's list, for --help.
func (s *settings) Environment(p consumer.Program) []consumer.EnvVar {
	return append(s.Settings.Environment(p),
		consumer.EnvVar{Name: "CHECKOUT_STRIPE_WEBHOOK_SECRET[_FILE]", Help: "Stripe endpoint signing secret (whsec_…), required by --webhooks=stripe"},
		consumer.EnvVar{Name: "CHECKOUT_STRIPE_SECRET_KEY[_FILE]", Help: "Stripe secret key (sk_test_…, sk_live_…, rk_…); none: card purchases are refused"})
}

func main() { consumer.Main(program.Name, run) }

// run serves until ctx is done, then shuts down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var s settings
	if err := consumer.Parse(program, &s, args, getenv, stdout, stderr); err != nil {
		return err
	}
	return consumer.Run(ctx, program, &s.Settings, stderr, func(ctx context.Context, d consumer.Deps) (consumer.Service, error) {
		store, err := checkout.OpenStore(ctx, s.DB)
		if err != nil {
			return consumer.Service{}, err
		}
		switch s.Webhooks {
		case webhooksUnsigned:
			d.Log.Warn("DEVELOPMENT MODE: UNSIGNED payment webhooks are accepted (CHECKOUT_WEBHOOKS=unsigned); anyone who reaches /webhooks/payments can credit any account")
		case webhooksOff:
			d.Log.Warn("payment webhooks are off (CHECKOUT_WEBHOOKS=off): every card payment confirmation is refused")
		}
		providers, err := s.providers()
		if err != nil {
			_ = store.Close()
			return consumer.Service{}, err
		}
		if providers == nil {
			d.Log.Warn("card payments are off: no CHECKOUT_STRIPE_SECRET_KEY; card purchases are refused (PAYMENT_PROVIDER_NOT_CONFIGURED)")
		}
		app, err := checkout.NewApp(checkout.Config{
			Store: store, Ledger: d.Ledger, Logger: d.Log, Verifier: d.Verifier, NoAuth: d.NoAuth, Providers: providers,
			StripeWebhookSecret: s.stripeSecret, UnsignedWebhooks: s.Webhooks == webhooksUnsigned, HoldTTL: s.holdTTL,
		})
		if err != nil {
			_ = store.Close()
			return consumer.Service{}, err
		}
		// Settle what a previous run left unfinished before taking
		// traffic, then keep reconciling while serving.
		return consumer.Service{
			Handler: app.Handler(), Follow: app.FollowEvents, Close: store.Close,
			Reconcile: consumer.Reconciles(app.Reconcile),
			Fields:    []zap.Field{zap.String("webhooks", s.Webhooks), zap.String("card_payments", s.mode())},
		}, nil
	})
}
