package ledgerclient_test

import (
	"context"
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledgertest"
	"github.com/creditledger/creditledger/internal/tlstest"
	"github.com/creditledger/creditledger/ledgerclient"
)

// startTLSLedger serves a ledger over TLS on 127.0.0.1, requiring a
// client certificate of the test CA.
func startTLSLedger(t *testing.T, p *tlstest.PKI) string {
	t.Helper()
	cfg := p.ServerConfig(t)
	cfg.ClientCAs, cfg.ClientAuth = p.Pool, tls.RequireAndVerifyClientCert
	return ledgertest.Start(t, ledgertest.WithServerTLS(cfg)).Addr
}

func TestTLSConfigFromFiles(t *testing.T) {
	t.Parallel()
	p := tlstest.New(t)
	addr := startTLSLedger(t, p)
	other := tlstest.New(t) // a CA the server does not know

	call := func(t *testing.T, cfg *tls.Config) error {
		t.Helper()
		c, err := ledgerclient.Dial(context.Background(), addr, ledgerclient.WithTLS(cfg), ledgerclient.WithMaxAttempts(1))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = c.Ledger().GetBalance(ctx, &pb.GetBalanceRequest{Workspace: "w", Account: "a"})
		return err
	}
	cfg, err := ledgerclient.TLSConfigFromFiles(p.CAFile, p.ClientCert, p.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := call(t, cfg); err != nil {
		t.Fatalf("mTLS call: %v", err)
	}

	noCert, err := ledgerclient.TLSConfigFromFiles(p.CAFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := call(t, noCert); ledgerclient.CodeOf(err) != codes.Unavailable {
		t.Errorf("without a client certificate: %v, want UNAVAILABLE", err)
	}
	wrongCA, err := ledgerclient.TLSConfigFromFiles(other.CAFile, p.ClientCert, p.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := call(t, wrongCA); ledgerclient.CodeOf(err) != codes.Unavailable {
		t.Errorf("with a CA that did not sign the server: %v, want UNAVAILABLE", err)
	}

	for name, tt := range map[string]struct{ ca, cert, key, want string }{
		"missing CA file":  {ca: filepath.Join(p.Dir, "nope.pem"), want: "CA file"},
		"CA file not PEM":  {ca: p.ClientKey, want: "no PEM certificate"},
		"key without cert": {ca: p.CAFile, key: p.ClientKey, want: "both"},
		"cert without key": {ca: p.CAFile, cert: p.ClientCert, want: "both"},
		"key of another":   {ca: p.CAFile, cert: p.ClientCert, key: p.ServerKey, want: "client certificate"},
	} {
		if _, err := ledgerclient.TLSConfigFromFiles(tt.ca, tt.cert, tt.key); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error mentioning %q", name, err, tt.want)
		}
	}
}

func TestTLSFromEnv(t *testing.T) {
	t.Parallel()
	p := tlstest.New(t)
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if cfg, err := ledgerclient.TLSFromEnv(env(nil)); err != nil || cfg != nil {
		t.Fatalf("nothing set: %v %v, want plaintext", cfg, err)
	}
	cfg, err := ledgerclient.TLSFromEnv(env(map[string]string{ledgerclient.EnvCAFile: p.CAFile, ledgerclient.EnvCertFile: p.ClientCert, ledgerclient.EnvKeyFile: p.ClientKey}))
	if err != nil || cfg == nil || cfg.RootCAs == nil {
		t.Fatalf("CA and client certificate: %+v %v", cfg, err)
	}
	if cfg, err := ledgerclient.TLSFromEnv(env(map[string]string{ledgerclient.EnvTLS: "true"})); err != nil || cfg == nil {
		t.Fatalf("system roots: %v %v", cfg, err)
	}
	for name, m := range map[string]map[string]string{
		"off but a CA":      {ledgerclient.EnvTLS: "false", ledgerclient.EnvCAFile: p.CAFile},
		"not a boolean":     {ledgerclient.EnvTLS: "yes please"},
		"missing CA file":   {ledgerclient.EnvCAFile: "/nonexistent/ca.pem"},
		"certificate alone": {ledgerclient.EnvCAFile: p.CAFile, ledgerclient.EnvCertFile: p.ClientCert},
	} {
		if _, err := ledgerclient.TLSFromEnv(env(m)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
