// Package demo starts the whole CreditLedger demo on one machine: ledgerd
// on its embedded store with token authentication, checkout (its card
// payments through the local Stripe stand-in, stripe-dev), invoicing, the
// stand-in itself and the portal with its development sign-in, all on
// loopback addresses; then it seeds a demo workspace. `make demo` runs it
// through cmd/demo, and the portal's browser tests start the same stack.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/creditledger/creditledger/internal/token"
)

// Options configure Start.
type Options struct {
	// BinDir holds the built programs: ledgerd, checkout, invoicing,
	// portal and stripe-dev.
	BinDir string
	// DataDir receives the keys, the databases and one log file per
	// program; it is created if missing.
	DataDir string
	// PortalAddr is the portal's listen address (default 127.0.0.1:0).
	PortalAddr string
	// Workspace is the demo agency (default acme).
	Workspace string
	// StartTimeout bounds each program's start (default 60s).
	StartTimeout time.Duration
}

// Stack is the running demo.
type Stack struct {
	// The programs' base URLs.
	PortalURL, LedgerURL, CheckoutURL, InvoicingURL, StripeURL string
	LedgerGRPC                                                 string
	Workspace                                                  string
	// LogDir holds one log file per program.
	LogDir string
	// AdminToken is an agency admin token of the workspace and
	// ServiceToken a service token (ledger:write), for seeding and checks.
	AdminToken, ServiceToken string

	procs []*proc
}

// Start starts every program and seeds the workspace. On error, what was
// started is stopped.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	if o.Workspace == "" {
		o.Workspace = "acme"
	}
	if o.PortalAddr == "" {
		o.PortalAddr = "127.0.0.1:0"
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 60 * time.Second
	}
	s := &Stack{Workspace: o.Workspace, LogDir: filepath.Join(o.DataDir, "logs")}
	for _, d := range []string{o.DataDir, s.LogDir, filepath.Join(o.DataDir, "ledger")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			_ = s.Stop()
		}
	}()
	bin := func(name string) (string, error) {
		p := filepath.Join(o.BinDir, name)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s is not built in %s: %w", name, o.BinDir, err)
		}
		return p, nil
	}
	keys, err := makeKeys(o.DataDir)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	const life = 720 * time.Hour // the demo's service tokens outlive any demo
	if s.ServiceToken, err = token.Mint(keys.ops, token.New(token.DefaultIssuer, token.DefaultAudience, token.RoleService,
		"demo-services", o.Workspace, "", token.RoleScopes(token.RoleService), now, life)); err != nil {
		return nil, err
	}
	if s.AdminToken, err = token.Mint(keys.portal, token.New(token.DefaultIssuer, token.DefaultAudience, token.RoleAdmin,
		"admin@"+o.Workspace, o.Workspace, "", token.RoleScopes(token.RoleAdmin), now, 24*time.Hour)); err != nil {
		return nil, err
	}
	serviceTokenFile := filepath.Join(o.DataDir, "service.token")
	if err := os.WriteFile(serviceTokenFile, []byte(s.ServiceToken), 0o600); err != nil {
		return nil, err
	}

	// ledgerd: the embedded store, tokens verified with the JWKS of the
	// portal's and the operators' keys; webhook endpoints may be local.
	ledgerd, err := bin("ledgerd")
	if err != nil {
		return nil, err
	}
	p, m, err := start("ledgerd", ledgerd, []string{"serve"}, []string{
		"LEDGER_DATA_DIR=" + filepath.Join(o.DataDir, "ledger"),
		"LEDGER_GRPC_ADDR=127.0.0.1:0", "LEDGER_HTTP_ADDR=127.0.0.1:0", "LEDGER_METRICS_ADDR=127.0.0.1:0",
		"LEDGER_AUTH=token", "LEDGER_AUTH_JWKS_FILE=" + keys.jwks, "LEDGER_AUTH_MAX_TOKEN_LIFETIME=720h",
		"LEDGER_PAGE_TOKEN_KEY=" + randomHex(32), "LEDGER_WEBHOOK_ALLOW_PRIVATE=true",
	}, s.LogDir, listening, o.StartTimeout)
	if err != nil {
		return nil, err
	}
	s.procs = append(s.procs, p)
	s.LedgerGRPC = fmt.Sprint(m["grpc_addr"])
	s.LedgerURL = "http://" + fmt.Sprint(m["http_addr"])

	// checkout's port is chosen first: the Stripe stand-in posts its
	// events there, and checkout calls the stand-in.
	checkoutAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s.CheckoutURL = "http://" + checkoutAddr
	stripeSecretKey := "sk_test_demo" + randomHex(12)
	webhookSecret := "whsec_" + randomHex(24)
	stripeDev, err := bin("stripe-dev")
	if err != nil {
		return nil, err
	}
	p, m, err = start("stripe-dev", stripeDev, nil, []string{
		"STRIPE_DEV_ADDR=127.0.0.1:0", "STRIPE_DEV_SECRET_KEY=" + stripeSecretKey,
		"STRIPE_DEV_WEBHOOK_SECRET=" + webhookSecret, "STRIPE_DEV_WEBHOOK_URL=" + s.CheckoutURL + "/webhooks/payments",
	}, s.LogDir, listening, o.StartTimeout)
	if err != nil {
		return nil, err
	}
	s.procs = append(s.procs, p)
	s.StripeURL = "http://" + fmt.Sprint(m["http_addr"])

	consumerEnv := func(prefix string) []string {
		return []string{
			"LEDGER_ADDR=" + s.LedgerGRPC, "LEDGER_TOKEN_FILE=" + serviceTokenFile,
			prefix + "_AUTH=token", prefix + "_AUTH_JWKS_FILE=" + keys.jwks,
			prefix + "_DB=" + filepath.Join(o.DataDir, prefix+".db"),
		}
	}
	checkout, err := bin("checkout")
	if err != nil {
		return nil, err
	}
	p, _, err = start("checkout", checkout, nil, append(consumerEnv("CHECKOUT"),
		"CHECKOUT_HTTP_ADDR="+checkoutAddr, "CHECKOUT_RECONCILE_INTERVAL=5s",
		"CHECKOUT_WEBHOOKS=stripe", "CHECKOUT_STRIPE_WEBHOOK_SECRET="+webhookSecret,
		"CHECKOUT_STRIPE_SECRET_KEY="+stripeSecretKey, "CHECKOUT_STRIPE_API_URL="+s.StripeURL,
	), s.LogDir, listening, o.StartTimeout)
	if err != nil {
		return nil, err
	}
	s.procs = append(s.procs, p)

	invoicing, err := bin("invoicing")
	if err != nil {
		return nil, err
	}
	p, m, err = start("invoicing", invoicing, nil, append(consumerEnv("INVOICING"),
		"INVOICING_HTTP_ADDR=127.0.0.1:0", "INVOICING_RECONCILE_INTERVAL=5s",
	), s.LogDir, listening, o.StartTimeout)
	if err != nil {
		return nil, err
	}
	s.procs = append(s.procs, p)
	s.InvoicingURL = "http://" + fmt.Sprint(m["http_addr"])

	portal, err := bin("portal")
	if err != nil {
		return nil, err
	}
	p, m, err = start("portal", portal, nil, []string{
		"PORTAL_HTTP_ADDR=" + o.PortalAddr, "PORTAL_LEDGER_URL=" + s.LedgerURL,
		"PORTAL_CHECKOUT_URL=" + s.CheckoutURL, "PORTAL_INVOICING_URL=" + s.InvoicingURL,
		"PORTAL_SIGNING_KEY_FILE=" + keys.portalFile, "PORTAL_DEV_SIGN_IN=true", "PORTAL_DEV_WORKSPACE=" + o.Workspace,
	}, s.LogDir, listening, o.StartTimeout)
	if err != nil {
		return nil, err
	}
	s.procs = append(s.procs, p)
	s.PortalURL = fmt.Sprint(m["public_url"])

	if err := s.seed(ctx); err != nil {
		return nil, fmt.Errorf("seed the demo workspace: %w", err)
	}
	return s, nil
}

// Stop stops the programs, the portal first and ledgerd last, each with
// SIGTERM (a graceful drain).
func (s *Stack) Stop() error {
	var errs []error
	for i := len(s.procs) - 1; i >= 0; i-- {
		if err := s.procs[i].stop(20 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	s.procs = nil
	return errors.Join(errs...)
}

// Logs is the last output of the named program ("portal", "checkout"…).
func (s *Stack) Logs(name string) string {
	for _, p := range s.procs {
		if p.name == name {
			return p.out.String()
		}
	}
	return ""
}

type demoKeys struct {
	portal, ops      token.SigningKey
	portalFile, jwks string
}

// makeKeys writes the portal's development key (client and admin tokens)
// and the operators' key (service tokens for checkout and invoicing), and
// the JWKS of both that ledgerd, checkout and invoicing trust.
func makeKeys(dir string) (demoKeys, error) {
	var k demoKeys
	var err error
	if k.portal, err = token.GenerateKey(token.AlgEdDSA, "portal-dev", []token.Role{token.RoleClient, token.RoleAdmin}); err != nil {
		return k, err
	}
	if k.ops, err = token.GenerateKey(token.AlgES256, "ops-dev", []token.Role{token.RoleService}); err != nil {
		return k, err
	}
	priv, err := k.portal.PrivateJWK()
	if err != nil {
		return k, err
	}
	k.portalFile = filepath.Join(dir, "portal.jwk")
	if err := os.WriteFile(k.portalFile, priv, 0o600); err != nil {
		return k, err
	}
	pub, err := token.PublicJWKS(k.portal, k.ops)
	if err != nil {
		return k, err
	}
	k.jwks = filepath.Join(dir, "jwks.json")
	return k, os.WriteFile(k.jwks, pub, 0o600)
}

// freeAddr is a loopback address with a port free right now.
func freeAddr() (string, error) {
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
