// Command portal is CreditLedger's reference client portal: server-rendered
// pages for an agency's clients (balance, history, buying credits, paying
// services and invoices with credits) and for the agency (the
// credit-payments switch, packages, rates, the request queue, clients,
// webhook endpoints). It calls the ledger's REST gateway and the checkout
// and invoicing APIs over HTTP with the signed-in person's token. See
// internal/portal.
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
//	--version                                      print the version and exit
//
// It logs JSON lines to stderr; once serving, one line with msg
// "listening" and the fields http_addr and public_url.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/creditledger/creditledger/internal/consumer"
	"github.com/creditledger/creditledger/internal/portal"
	"github.com/creditledger/creditledger/internal/token"
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
		fmt.Fprintln(os.Stderr, "portal:", err)
		os.Exit(1)
	}
}

type config struct {
	httpAddr, publicURL                  string
	ledgerURL, checkoutURL, invoicingURL string
	keyFile, issuer, audience            string
	tokenTTL                             time.Duration
	devSignIn                            bool
	devWorkspace                         string
	secureCookies                        bool
	version                              bool
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	envBool := func(k string, def bool) (bool, error) {
		v := getenv(k)
		if v == "" {
			return def, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return def, fmt.Errorf("%s %q: want true or false", k, v)
		}
		return b, nil
	}
	var c config
	var err error
	if c.devSignIn, err = envBool("PORTAL_DEV_SIGN_IN", false); err != nil {
		return c, err
	}
	if c.secureCookies, err = envBool("PORTAL_SECURE_COOKIES", true); err != nil {
		return c, err
	}
	fs := flag.NewFlagSet("portal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.httpAddr, "http-addr", env("PORTAL_HTTP_ADDR", "127.0.0.1:8090"), "listen address [PORTAL_HTTP_ADDR]")
	fs.StringVar(&c.publicURL, "public-url", env("PORTAL_PUBLIC_URL", ""), "the portal's URL as browsers reach it [PORTAL_PUBLIC_URL] (default http://<listen address>)")
	fs.StringVar(&c.ledgerURL, "ledger-url", env("PORTAL_LEDGER_URL", "http://127.0.0.1:8080"), "ledgerd's REST gateway [PORTAL_LEDGER_URL]")
	fs.StringVar(&c.checkoutURL, "checkout-url", env("PORTAL_CHECKOUT_URL", "http://127.0.0.1:8081"), "checkout's API [PORTAL_CHECKOUT_URL]")
	fs.StringVar(&c.invoicingURL, "invoicing-url", env("PORTAL_INVOICING_URL", "http://127.0.0.1:8082"), "invoicing's API [PORTAL_INVOICING_URL]")
	fs.StringVar(&c.keyFile, "signing-key-file", env("PORTAL_SIGNING_KEY_FILE", ""), "the portal's private JWK, as ledgerd keygen writes it [PORTAL_SIGNING_KEY_FILE]")
	fs.StringVar(&c.issuer, "token-issuer", env("PORTAL_TOKEN_ISSUER", token.DefaultIssuer), "iss of the minted tokens [PORTAL_TOKEN_ISSUER]")
	fs.StringVar(&c.audience, "token-audience", env("PORTAL_TOKEN_AUDIENCE", token.DefaultAudience), "aud of the minted tokens [PORTAL_TOKEN_AUDIENCE]")
	ttl := env("PORTAL_TOKEN_TTL", "1h")
	fs.Func("token-ttl", "life of a minted token [PORTAL_TOKEN_TTL] (default 1h)", func(s string) error { ttl = s; return nil })
	fs.BoolVar(&c.devSignIn, "dev-sign-in", c.devSignIn, "the development sign-in: anyone may act as any client or the agency's admin (loopback only) [PORTAL_DEV_SIGN_IN]")
	fs.StringVar(&c.devWorkspace, "dev-workspace", env("PORTAL_DEV_WORKSPACE", "acme"), "workspace the development sign-in proposes [PORTAL_DEV_WORKSPACE]")
	fs.BoolVar(&c.secureCookies, "secure-cookies", c.secureCookies, "mark the session cookie Secure [PORTAL_SECURE_COOKIES]")
	fs.BoolVar(&c.version, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.version {
		return c, nil
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.tokenTTL, err = time.ParseDuration(ttl); err != nil || c.tokenTTL < time.Minute || c.tokenTTL > 24*time.Hour {
		return c, fmt.Errorf("token TTL %q: want a duration between 1m and 24h", ttl)
	}
	if c.keyFile == "" {
		return c, errors.New("the portal's signing key is required: --signing-key-file or PORTAL_SIGNING_KEY_FILE (ledgerd keygen -roles client,admin … -out portal.jwk)")
	}
	if !c.devSignIn {
		// There is no production sign-in yet: a portal would sign its
		// users in through the agency's identity provider (see README).
		return c, errors.New("no sign-in is configured: start with --dev-sign-in (PORTAL_DEV_SIGN_IN=true) for development; " +
			"a production portal signs people in through the agency's identity provider, which this reference portal does not include")
	}
	if err := consumer.RequireLoopback(c.httpAddr); err != nil {
		return c, fmt.Errorf("the development sign-in lets anyone act as anyone: %w", err)
	}
	return c, nil
}

func newLogger(w io.Writer) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey, enc.EncodeTime = "ts", zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), zap.InfoLevel)
	return zap.New(core).With(zap.String("service", "portal"))
}

// run serves until ctx is done, then shuts down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	if cfg.version {
		_, err := fmt.Fprintln(stdout, version.String("portal"))
		return err
	}
	log := newLogger(stderr)
	defer func() { _ = log.Sync() }()

	key, err := token.LoadSigningKey(cfg.keyFile)
	if err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	lis, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.httpAddr)
	if err != nil {
		return err
	}
	defer func() { _ = lis.Close() }()
	public := cfg.publicURL
	if public == "" {
		public = "http://" + lis.Addr().String()
	}
	p, err := portal.New(portal.Config{
		LedgerURL: cfg.ledgerURL, CheckoutURL: cfg.checkoutURL, InvoicingURL: cfg.invoicingURL, PublicURL: public,
		Minter:    portal.KeyMinter{Key: key, Issuer: cfg.issuer, Audience: cfg.audience, TTL: cfg.tokenTTL},
		DevSignIn: cfg.devSignIn, DevWorkspace: cfg.devWorkspace, SecureCookies: cfg.secureCookies, Logger: log,
	})
	if err != nil {
		return err
	}
	log.Warn("DEVELOPMENT SIGN-IN is on: anyone who reaches the portal can act as any client or as the agency's administrator")

	srv := &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 2 * time.Minute}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	log.Info("listening", zap.String("http_addr", lis.Addr().String()), zap.String("public_url", public),
		zap.String("ledger_url", cfg.ledgerURL), zap.String("checkout_url", cfg.checkoutURL), zap.String("invoicing_url", cfg.invoicingURL),
		zap.String("signing_key", key.ID))
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	return srv.Shutdown(shut)
}
