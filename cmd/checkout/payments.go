package main

import (
	"errors"
	"flag"

	"github.com/creditledger/creditledger/internal/checkout"
	"github.com/creditledger/creditledger/internal/consumer"
)

// payments is the configuration of the card payment provider:
//
//	--stripe-api-url  [CHECKOUT_STRIPE_API_URL]  Stripe's API (default https://api.stripe.com; a stand-in in development)
//	CHECKOUT_STRIPE_SECRET_KEY[_FILE]            the account's secret key (sk_test_…, sk_live_…, rk_…); none: card purchases are refused
type payments struct {
	stripeKey    string
	stripeAPIURL string
}

func (p *payments) flags(fs *flag.FlagSet, env func(k, def string) string) {
	fs.StringVar(&p.stripeAPIURL, "stripe-api-url", env("CHECKOUT_STRIPE_API_URL", ""),
		"Stripe's API base URL (default https://api.stripe.com; a local stand-in such as stripe-dev in development) [CHECKOUT_STRIPE_API_URL]")
}

// load reads the secret key and checks it against the webhook settings:
// a checkout that takes card payments must be able to hear of them.
func (p *payments) load(getenv func(string) string, webhooks, webhookSecret string) error {
	var err error
	if p.stripeKey, err = consumer.ReadSecret(getenv, "CHECKOUT_STRIPE_SECRET_KEY"); err != nil {
		return err
	}
	switch {
	case p.stripeKey == "" && p.stripeAPIURL != "":
		return errors.New("CHECKOUT_STRIPE_API_URL without CHECKOUT_STRIPE_SECRET_KEY (or _FILE): set the key to take card payments")
	case p.stripeKey == "":
		return nil
	case webhooks == webhooksOff:
		return errors.New("CHECKOUT_STRIPE_SECRET_KEY with CHECKOUT_WEBHOOKS=off: card payments would be taken and never credited")
	case webhookSecret == "":
		return errors.New("CHECKOUT_STRIPE_SECRET_KEY needs CHECKOUT_STRIPE_WEBHOOK_SECRET (or _FILE): Stripe's signed events confirm the payments")
	}
	_, err = p.providers()
	return err
}

// providers are the checkout's payment providers: Stripe when a key is set.
func (p *payments) providers() (map[checkout.PaymentMethod]checkout.PaymentProvider, error) {
	if p.stripeKey == "" {
		return nil, nil
	}
	s, err := checkout.NewStripe(checkout.StripeConfig{SecretKey: p.stripeKey, APIURL: p.stripeAPIURL})
	if err != nil {
		return nil, err
	}
	return map[checkout.PaymentMethod]checkout.PaymentProvider{checkout.MethodStripe: s}, nil
}

// mode is how card payments are taken, for the logs: off, test or live.
func (p *payments) mode() string {
	switch {
	case p.stripeKey == "":
		return "off"
	case checkout.StripeLiveKey(p.stripeKey):
		return "stripe live"
	default:
		return "stripe test"
	}
}
