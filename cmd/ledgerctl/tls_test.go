package main

import (
	"bytes"
	"crypto/tls"
	"strings"
	"testing"

	"github.com/creditledger/creditledger/internal/ledgertest"
	"github.com/creditledger/creditledger/internal/tlstest"
)

// TestTLS: ledgerctl reaches a ledger that requires TLS and a client
// certificate, with the CA and the certificate from the environment or
// from flags.
func TestTLS(t *testing.T) {
	t.Parallel()
	p := tlstest.New(t)
	cfg := p.ServerConfig(t)
	cfg.ClientCAs, cfg.ClientAuth = p.Pool, tls.RequireAndVerifyClientCert
	addr := ledgertest.Start(t, ledgertest.WithServerTLS(cfg)).Addr

	runEnv := func(env map[string]string, args ...string) (string, int) {
		env["LEDGER_ADDR"], env["LEDGER_WORKSPACE"] = addr, ws
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), append([]string{"--timeout", "5s"}, args...), func(k string) string { return env[k] }, &stdout, &stderr)
		if err != nil {
			stderr.WriteString(describe(err))
		}
		return stderr.String(), exitCode(err)
	}

	if errOut, code := runEnv(map[string]string{
		"LEDGERCTL_CA_FILE": p.CAFile, "LEDGERCTL_CERT_FILE": p.ClientCert, "LEDGERCTL_KEY_FILE": p.ClientKey,
	}, "settings", "get"); code != 0 {
		t.Fatalf("mTLS from the environment: exit %d %s", code, errOut)
	}
	if errOut, code := runEnv(map[string]string{}, "settings", "get",
		"--ca-file", p.CAFile, "--cert-file", p.ClientCert, "--key-file", p.ClientKey); code != 0 {
		t.Fatalf("mTLS from flags: exit %d %s", code, errOut)
	}
	if _, code := runEnv(map[string]string{"LEDGERCTL_CA_FILE": p.CAFile}, "settings", "get"); code != exitUnavailable {
		t.Errorf("without a client certificate: exit %d, want %d", code, exitUnavailable)
	}
	if _, code := runEnv(map[string]string{}, "settings", "get"); code != exitUnavailable {
		t.Errorf("plaintext to a TLS port: exit %d, want %d", code, exitUnavailable)
	}
	if errOut, code := runEnv(map[string]string{}, "settings", "get", "--cert-file", p.ClientCert); code != exitUsage || !strings.Contains(errOut, "key file") {
		t.Errorf("a certificate without its key: exit %d %q, want a usage error", code, errOut)
	}
	if errOut, code := runEnv(map[string]string{"LEDGERCTL_TLS": "maybe"}, "settings", "get"); code != exitUsage || !strings.Contains(errOut, "LEDGERCTL_TLS") {
		t.Errorf("bad LEDGERCTL_TLS: exit %d %q", code, errOut)
	}
}
