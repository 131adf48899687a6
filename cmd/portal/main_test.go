package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creditledger/creditledger/internal/consumer/consumertest"
	"github.com/creditledger/creditledger/internal/token"
)

// testClient has a connection pool of its own (.golangci.yml's forbidigo
// rule says why tests need one).
var testClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}

// keyFile writes a development signing key (client and admin) and
// returns its path.
func keyFile(t testing.TB) string {
	t.Helper()
	k, err := token.GenerateKey(token.AlgEdDSA, "portal-test", []token.Role{token.RoleClient, token.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	b, err := k.PrivateJWK()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "portal.jwk")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func envOf(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

func TestRefusesWhatWouldBeUnsafeOrIncomplete(t *testing.T) {
	t.Parallel()
	key := keyFile(t)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no signing key", nil, map[string]string{"PORTAL_DEV_SIGN_IN": "true"}, "signing key is required"},
		{"no sign-in at all", []string{"--signing-key-file", key}, nil, "identity provider"},
		{"development sign-in turned off by its flag", []string{"--signing-key-file", key, "--dev-sign-in=false"}, map[string]string{"PORTAL_DEV_SIGN_IN": "true"}, "identity provider"},
		{"development sign-in reachable from elsewhere", []string{"--signing-key-file", key, "--dev-sign-in", "--http-addr", "0.0.0.0:8090"}, nil, "loopback"},
		{"the same from the environment", []string{"--signing-key-file", key, "--dev-sign-in"}, map[string]string{"PORTAL_HTTP_ADDR": "0.0.0.0:8090"}, "loopback"},
		{"token lifetime too long", []string{"--signing-key-file", key, "--dev-sign-in", "--token-ttl", "48h"}, nil, "between 1m and 24h"},
		{"token lifetime too short", []string{"--dev-sign-in"}, map[string]string{"PORTAL_SIGNING_KEY_FILE": key, "PORTAL_TOKEN_TTL": "30s"}, "between 1m and 24h"},
		{"not a duration", []string{"--signing-key-file", key, "--dev-sign-in", "--token-ttl", "soon"}, nil, "duration"},
		{"not a boolean", []string{"--signing-key-file", key}, map[string]string{"PORTAL_DEV_SIGN_IN": "yes please"}, "bool value must be true"},
		{"a signing key that is not one", []string{"--signing-key-file", filepath.Join(t.TempDir(), "missing.jwk"), "--dev-sign-in"}, nil, "signing key"},
		{"an unknown flag", []string{"--port", "8090"}, nil, "flag provided but not defined: --port"},
		{"an argument", []string{"serve"}, nil, "unexpected arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := run(context.Background(), tc.args, envOf(tc.env), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, envOf(nil), &out, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--version: %v, want flag.ErrHelp (exit 0)", err)
	}
	if !strings.HasPrefix(out.String(), "portal ") {
		t.Fatalf("--version printed %q", out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"--help"}, envOf(nil), &out, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v, want flag.ErrHelp (exit 0)", err)
	}
	// Every setting of README's table, with its variable and default
	// (the lines wrapped as the terminal's width wants).
	help := strings.Join(strings.Fields(out.String()), " ")
	for _, want := range []string{
		"Usage: portal", "--http-addr", "$PORTAL_HTTP_ADDR", "(default 127.0.0.1:8090)", "--public-url", "$PORTAL_PUBLIC_URL",
		"--ledger-url", "$PORTAL_LEDGER_URL", "(default http://127.0.0.1:8080)", "--checkout-url", "$PORTAL_CHECKOUT_URL",
		"(default http://127.0.0.1:8081)", "--invoicing-url", "$PORTAL_INVOICING_URL", "(default http://127.0.0.1:8082)",
		"--signing-key-file", "$PORTAL_SIGNING_KEY_FILE", "--token-issuer", "$PORTAL_TOKEN_ISSUER", "--token-audience",
		"$PORTAL_TOKEN_AUDIENCE", "(default creditledger)", "--token-ttl", "$PORTAL_TOKEN_TTL", "(default 1h)",
		"--dev-sign-in", "$PORTAL_DEV_SIGN_IN", "--dev-workspace", "$PORTAL_DEV_WORKSPACE", "(default acme)",
		"--[no-]secure-cookies", "$PORTAL_SECURE_COOKIES", "(default true)", "--version",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("--help lacks %q:\n%s", want, out.String())
		}
	}
}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	res, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(body)
}

func TestRunServesTheSignInAndStopsOnCancel(t *testing.T) {
	t.Parallel()
	p := consumertest.Start(t, run, []string{"--http-addr", "127.0.0.1:0"},
		map[string]string{"PORTAL_SIGNING_KEY_FILE": keyFile(t), "PORTAL_DEV_SIGN_IN": "true", "PORTAL_DEV_WORKSPACE": "globex"})
	for path, want := range map[string]string{"/healthz": `"ok"`, "/signin": `value="globex"`, "/static/portal.css": "focus-visible"} {
		if code, _, body := get(t, p.URL+path); code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET %s: HTTP %d, body without %q", path, code, want)
		}
	}
	logs := p.Logs.String()
	if !strings.Contains(logs, "DEVELOPMENT SIGN-IN") {
		t.Error("the development sign-in is not announced in the log")
	}
	if !strings.Contains(logs, `"public_url":"`+p.URL+`"`) || !strings.Contains(logs, `"service":"portal"`) {
		t.Errorf("the listening line lacks the public URL %s or the service:\n%s", p.URL, logs)
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("run after cancel: %v", err)
	}
	if !strings.Contains(p.Logs.String(), "shutting down") {
		t.Errorf("no graceful shutdown in the log:\n%s", p.Logs)
	}
}

func TestPublicURLAndCookiesAsConfigured(t *testing.T) {
	t.Parallel()
	key := keyFile(t)
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		public     string // "" for the listen address
		wantSecure bool
	}{
		{"defaults", nil, nil, "", true},
		{"cookies not Secure by flag", []string{"--no-secure-cookies"}, nil, "", false},
		{"cookies not Secure by variable", nil, map[string]string{"PORTAL_SECURE_COOKIES": "false"}, "", false},
		{"a public URL by variable", nil, map[string]string{"PORTAL_PUBLIC_URL": "https://portal.example"}, "https://portal.example", true},
		{"the flag wins", []string{"--public-url", "https://flag.example"}, map[string]string{"PORTAL_PUBLIC_URL": "https://env.example"}, "https://flag.example", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"PORTAL_SIGNING_KEY_FILE": key, "PORTAL_DEV_SIGN_IN": "1"}
			for k, v := range tc.env {
				env[k] = v
			}
			p := consumertest.Start(t, run, append([]string{"--http-addr", "127.0.0.1:0"}, tc.args...), env)
			public := tc.public
			if public == "" {
				public = p.URL
			}
			if logs := p.Logs.String(); !strings.Contains(logs, `"public_url":"`+public+`"`) {
				t.Errorf("the listening line lacks the public URL %s:\n%s", public, logs)
			}
			_, h, _ := get(t, p.URL+"/signin")
			cookies := h.Values("Set-Cookie")
			if len(cookies) == 0 {
				t.Fatal("the sign-in page set no session cookie")
			}
			for _, c := range cookies {
				if strings.Contains(c, "; Secure") != tc.wantSecure {
					t.Errorf("cookie %q: Secure is %v, want %v", c, !tc.wantSecure, tc.wantSecure)
				}
			}
		})
	}
}
