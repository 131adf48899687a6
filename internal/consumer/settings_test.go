package consumer

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/version"
)

// testProgram is a service of the tests: variables TESTSVC_….
var testProgram = Program{Name: "testsvc", Summary: "A service of the tests.", Vars: map[string]string{"http_addr": "127.0.0.1:8099"}}

// testSettings are a service's settings: the kit's and one of its own.
type testSettings struct {
	Settings
	Mode string `name:"mode" env:"TESTSVC_MODE" default:"calm" help:"a setting of the service's own"`
}

func envOf(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// minimal is the least a service starts with: a ledger and token keys.
var minimal = []string{"LEDGER_ADDR", "ledger:9090", "TESTSVC_AUTH_JWKS_FILE", "/keys.json"}

func parse(t testing.TB, args []string, env ...string) (testSettings, error) {
	t.Helper()
	var s testSettings
	err := Parse(testProgram, &s, args, envOf(env...), io.Discard, io.Discard)
	return s, err
}

func TestParseDefaultsVariablesAndFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  []string
		// want: http address, db, reconcile period, auth mode, issuer, mode
		addr, db string
		every    time.Duration
		auth     string
		issuer   string
		mode     string
	}{
		{
			name: "defaults", env: minimal,
			addr: "127.0.0.1:8099", db: "testsvc.db", every: 30 * time.Second, auth: "token", issuer: "creditledger", mode: "calm",
		},
		{
			name: "variables, named after the program",
			env: append([]string{
				"TESTSVC_HTTP_ADDR", "127.0.0.1:1", "TESTSVC_DB", "/data/s.db", "TESTSVC_RECONCILE_INTERVAL", "5s",
				"TESTSVC_AUTH_ISSUER", "iss", "TESTSVC_MODE", "brisk",
			}, minimal...),
			addr: "127.0.0.1:1", db: "/data/s.db", every: 5 * time.Second, auth: "token", issuer: "iss", mode: "brisk",
		},
		{
			name: "a flag wins over its variable",
			args: []string{"--http-addr", "127.0.0.1:2", "--db=/flag.db", "--reconcile-interval", "1m", "--mode", "wild"},
			env:  append([]string{"TESTSVC_HTTP_ADDR", "127.0.0.1:1", "TESTSVC_DB", "/env.db", "TESTSVC_MODE", "brisk"}, minimal...),
			addr: "127.0.0.1:2", db: "/flag.db", every: time.Minute, auth: "token", issuer: "creditledger", mode: "wild",
		},
		{
			name: "an empty variable counts as unset",
			env:  append([]string{"TESTSVC_HTTP_ADDR", "", "TESTSVC_RECONCILE_INTERVAL", "", "TESTSVC_AUTH", ""}, minimal...),
			addr: "127.0.0.1:8099", db: "testsvc.db", every: 30 * time.Second, auth: "token", issuer: "creditledger", mode: "calm",
		},
		{
			name: "development mode on loopback",
			env:  []string{"LEDGER_ADDR", "ledger:9090", "TESTSVC_AUTH", "none"},
			addr: "127.0.0.1:8099", db: "testsvc.db", every: 30 * time.Second, auth: "none", issuer: "creditledger", mode: "calm",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := parse(t, tt.args, tt.env...)
			if err != nil {
				t.Fatal(err)
			}
			if s.HTTPAddr != tt.addr || s.DB != tt.db || s.ReconcileInterval != tt.every || s.Auth.Mode != tt.auth ||
				s.Auth.Issuer != tt.issuer || s.Mode != tt.mode || s.Ledger.Addr != "ledger:9090" {
				t.Errorf("settings %+v", s)
			}
		})
	}
}

// Only the getenv given is read: a variable of the process does not leak
// into a run that was handed its own environment.
func TestParseReadsOnlyTheEnvironmentGiven(t *testing.T) {
	t.Setenv("TESTSVC_HTTP_ADDR", "127.0.0.1:7")
	t.Setenv("TESTSVC_MODE", "leaked")
	s, err := parse(t, nil, minimal...)
	if err != nil {
		t.Fatal(err)
	}
	if s.HTTPAddr != "127.0.0.1:8099" || s.Mode != "calm" {
		t.Errorf("settings %+v took the process's environment", s)
	}
}

func TestCheckReadsSecretsAndEnvironmentOnlySettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "ledger-token")
	if err := os.WriteFile(tokenFile, []byte("svc-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := parse(t, nil, "LEDGER_ADDR", "ledger:9090", "LEDGER_TOKEN_FILE", tokenFile,
		"TESTSVC_AUTH_SECRET", strings.Repeat("s", 32), "TESTSVC_AUTH_JWKS_RELOAD_INTERVAL", "2s")
	if err != nil {
		t.Fatal(err)
	}
	if s.Ledger.Token != "svc-token" || string(s.Auth.Secret) != strings.Repeat("s", 32) || s.Auth.Reload != 2*time.Second ||
		s.Auth.Prefix != "TESTSVC" || s.Ledger.TLS != nil {
		t.Errorf("settings %+v", s)
	}
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"unknown flag, in the flag package's words", []string{"--port", "1"}, minimal, "flag provided but not defined: --port"},
		{"a secret as a flag", []string{"--ledger-token", "t"}, minimal, "flag provided but not defined"},
		{"an argument", []string{"serve"}, minimal, `unexpected arguments ["serve"]`},
		{"no ledger address", nil, nil, "the ledger address is required: --ledger-addr or LEDGER_ADDR"},
		{"a period that is not one", []string{"--reconcile-interval", "soon"}, minimal, `reconcile interval "soon"`},
		{"a negative period", nil, append([]string{"TESTSVC_RECONCILE_INTERVAL", "-1s"}, minimal...), "reconcile interval"},
		{"a secret twice", nil, append([]string{"LEDGER_TOKEN", "a", "LEDGER_TOKEN_FILE", "/x"}, minimal...), "both set"},
		{"a bad reload period", nil, append([]string{"TESTSVC_AUTH_JWKS_RELOAD_INTERVAL", "often"}, minimal...), "TESTSVC_AUTH_JWKS_RELOAD_INTERVAL"},
		{"no token keys", nil, []string{"LEDGER_ADDR", "x:1"}, "TESTSVC_AUTH_JWKS_FILE"},
		{"no authentication off loopback", []string{"--http-addr", "0.0.0.0:1"}, []string{"LEDGER_ADDR", "x:1", "TESTSVC_AUTH", "none"}, "loopback"},
		{"an unknown auth mode", nil, append([]string{"TESTSVC_AUTH", "maybe"}, minimal...), "must be token or none"},
		{"an empty issuer", []string{"--auth-issuer", ""}, minimal, "must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parse(t, tt.args, tt.env...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	var s testSettings
	if err := Parse(testProgram, &s, []string{"--help"}, envOf(), &out, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	help := out.String()
	for _, want := range []string{
		"Usage: testsvc", "A service of the tests.",
		"--http-addr", "$TESTSVC_HTTP_ADDR", "default 127.0.0.1:8099",
		"--ledger-addr", "$LEDGER_ADDR", "--reconcile-interval", "--auth-jwks-file", "--mode", "$TESTSVC_MODE", "--version",
		"LEDGER_TOKEN[_FILE]", "TESTSVC_AUTH_SECRET[_FILE]", "TESTSVC_AUTH_JWKS_RELOAD_INTERVAL",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("--help lacks %q:\n%s", want, help)
		}
	}

	out.Reset()
	if err := Parse(testProgram, &s, []string{"--version"}, envOf(), &out, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--version: %v", err)
	}
	if got, want := strings.TrimSpace(out.String()), version.String("testsvc"); got != want {
		t.Errorf("--version printed %q, want %q", got, want)
	}
}
