// Command portal is CreditLedger's reference client portal: server-rendered
// pages for an agency's clients (balance, history, buying credits, paying
// services and invoices with credits) and for the agency (the
// credit-payments switch, packages, rates, the request queue, clients,
// webhook endpoints). It calls the ledger's REST gateway and the checkout
// and invoicing APIs over HTTP with the signed-in person's token. See
// internal/portal, and internal/consumer for what it shares with the other
// services (settings, log, serving).
//
// Usage:
//
//	portal [flags]
//
// Flags (environment variable in brackets):
//
//	--http-addr         [PORTAL_HTTP_ADDR]         listen address (default 127.0.0.1:8090; port 0 picks one)
//	--public-url        [PORTAL_PUBLIC_URL]        the portal's URL as browsers reach it (default http://<listen address>)
//	--ledger-url        [PORTAL_LEDGER_URL]        ledgerd's REST gateway (default http://127.0.0.1:8080)
//	--checkout-url      [PORTAL_CHECKOUT_URL]      checkout's API (default http://127.0.0.1:8081)
//	--invoicing-url     [PORTAL_INVOICING_URL]     invoicing's API (default http://127.0.0.1:8082)
//	--signing-key-file  [PORTAL_SIGNING_KEY_FILE]  the portal's private JWK (ledgerd keygen), required
//	--token-issuer      [PORTAL_TOKEN_ISSUER]      iss of the tokens it mints (default creditledger)
//	--token-audience    [PORTAL_TOKEN_AUDIENCE]    aud of the tokens it mints (default creditledger)
//	--token-ttl         [PORTAL_TOKEN_TTL]         life of a minted token (default 1h)
//	--dev-sign-in       [PORTAL_DEV_SIGN_IN]       the development sign-in (loopback only); required for now
//	--dev-workspace     [PORTAL_DEV_WORKSPACE]     workspace the sign-in page proposes (default acme)
//	--secure-cookies    [PORTAL_SECURE_COOKIES]    mark the session cookie Secure (default true)
//	--help, --version
//
// A flag wins over its variable; an empty variable counts as unset. A
// boolean flag is turned off as --secure-cookies=false or
// --no-secure-cookies.
//
// It logs JSON lines to stderr; once serving, one line with msg
// "listening" and the fields http_addr and public_url.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/creditledger/creditledger/internal/consumer"
	"github.com/creditledger/creditledger/internal/portal"
	"github.com/creditledger/creditledger/internal/token"
)

var program = consumer.Program{
	Name: "portal",
	Summary: "CreditLedger's reference client portal: server-rendered pages for an agency's clients and for the agency, " +
		"backed by the ledger's REST gateway and the checkout and invoicing APIs.",
	Vars: map[string]string{"http_addr": "127.0.0.1:8090"},
}

// settings are the portal's: it has no database and no gRPC connection
// to the ledger (it calls the REST gateway with each person's token), so
// it embeds only the listen address of the services' shared settings.
type settings struct {
	consumer.HTTPSettings
	PublicURL    string `name:"public-url" env:"${prefix}_PUBLIC_URL" placeholder:"URL" help:"the portal's URL as browsers reach it: card payments return to it (default http://<listen address>)"`
	LedgerURL    string `name:"ledger-url" env:"${prefix}_LEDGER_URL" default:"http://127.0.0.1:8080" placeholder:"URL" help:"ledgerd's REST gateway"`
	CheckoutURL  string `name:"checkout-url" env:"${prefix}_CHECKOUT_URL" default:"http://127.0.0.1:8081" placeholder:"URL" help:"checkout's API"`
	InvoicingURL string `name:"invoicing-url" env:"${prefix}_INVOICING_URL" default:"http://127.0.0.1:8082" placeholder:"URL" help:"invoicing's API"`
	KeyFile      string `name:"signing-key-file" env:"${prefix}_SIGNING_KEY_FILE" placeholder:"FILE" help:"the portal's private JWK, as ledgerd keygen writes it (required)"`
	Issuer       string `name:"token-issuer" env:"${prefix}_TOKEN_ISSUER" default:"${token_issuer}" placeholder:"NAME" help:"iss of the tokens it mints"`
	Audience     string `name:"token-audience" env:"${prefix}_TOKEN_AUDIENCE" default:"${token_audience}" placeholder:"NAME" help:"aud of the tokens it mints"`
	// TokenTTL is checked to lie within 1m–24h: a new token is minted a
	// minute before expiry.
	TokenTTL      time.Duration `name:"token-ttl" env:"${prefix}_TOKEN_TTL" default:"1h" placeholder:"DURATION" help:"life of a minted token (1m-24h)"`
	DevSignIn     bool          `name:"dev-sign-in" env:"${prefix}_DEV_SIGN_IN" help:"the development sign-in: anyone may act as any client or the agency's administrator (loopback only); required for now"`
	DevWorkspace  string        `name:"dev-workspace" env:"${prefix}_DEV_WORKSPACE" default:"acme" placeholder:"NAME" help:"the workspace the development sign-in proposes"`
	SecureCookies bool          `name:"secure-cookies" env:"${prefix}_SECURE_COOKIES" default:"true" negatable:"" help:"mark the session cookie Secure (browsers accept it over plain HTTP on 127.0.0.1 and localhost)"`
}

// Check refuses what would be unsafe or incomplete.
func (s *settings) Check(consumer.Program, func(string) string) error {
	if s.TokenTTL < time.Minute || s.TokenTTL > 24*time.Hour {
		return fmt.Errorf("token TTL %s: want a duration between 1m and 24h", s.TokenTTL)
	}
	if s.KeyFile == "" {
		return errors.New("the portal's signing key is required: --signing-key-file or PORTAL_SIGNING_KEY_FILE (ledgerd keygen -roles client,admin … -out portal.jwk)")
	}
	if !s.DevSignIn {
		// There is no production sign-in yet: a portal would sign its
		// users in through the agency's identity provider (see README).
		return errors.New("no sign-in is configured: start with --dev-sign-in (PORTAL_DEV_SIGN_IN=true) for development; " +
			"a production portal signs people in through the agency's identity provider, which this reference portal does not include")
	}
	if err := consumer.RequireLoopback(s.HTTPAddr); err != nil {
		return fmt.Errorf("the development sign-in lets anyone act as anyone: %w", err)
	}
	return nil
}

func main() { consumer.Main(program.Name, run) }

// run serves until ctx is done, then shuts down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var s settings
	if err := consumer.Parse(program, &s, args, getenv, stdout, stderr); err != nil {
		return err
	}
	log := consumer.NewLogger(stderr, program.Name)
	defer func() { _ = log.Sync() }()

	key, err := token.LoadSigningKey(s.KeyFile)
	if err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	// Listen first: without --public-url, card payments return to the
	// address actually bound (port 0 picks one).
	lis, err := consumer.Listen(ctx, s.HTTPAddr)
	if err != nil {
		return err
	}
	public := s.PublicURL
	if public == "" {
		public = "http://" + lis.Addr().String()
	}
	p, err := portal.New(portal.Config{
		LedgerURL: s.LedgerURL, CheckoutURL: s.CheckoutURL, InvoicingURL: s.InvoicingURL, PublicURL: public,
		Minter:    portal.KeyMinter{Key: key, Issuer: s.Issuer, Audience: s.Audience, TTL: s.TokenTTL},
		DevSignIn: s.DevSignIn, DevWorkspace: s.DevWorkspace, SecureCookies: s.SecureCookies, Logger: log,
	})
	if err != nil {
		_ = lis.Close()
		return err
	}
	log.Warn("DEVELOPMENT SIGN-IN is on: anyone who reaches the portal can act as any client or as the agency's administrator")
	return consumer.Serve(ctx, consumer.ServeOptions{
		Log: log, Listener: lis, Handler: p.Handler(),
		// A page waits on up to three services.
		WriteTimeout: 2 * time.Minute,
		ListeningFields: []zap.Field{
			zap.String("public_url", public), zap.String("ledger_url", s.LedgerURL), zap.String("checkout_url", s.CheckoutURL),
			zap.String("invoicing_url", s.InvoicingURL), zap.String("signing_key", key.ID),
		},
	})
}
