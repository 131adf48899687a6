package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const secret = "0123456789abcdef0123456789abcdef"

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoad(t *testing.T) {
	t.Parallel()
	base := Default()
	base.AuthSecret = []byte(secret)
	with := func(f func(*Config)) Config {
		c := base
		f(&c)
		return c
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    Config
		wantErr string // substring; "" means success
	}{
		{
			name: "defaults with a secret",
			env:  map[string]string{EnvAuthSecret: secret},
			want: base,
		},
		{
			name:    "token auth is the default and needs keys",
			env:     map[string]string{},
			wantErr: "LEDGER_AUTH=token needs LEDGER_AUTH_JWKS_FILE",
		},
		{
			name: "keys from a JWKS file, with issuer, audience and lifetime",
			env: map[string]string{
				EnvAuthJWKSFile: "/etc/ledger/jwks.json", EnvAuthIssuer: "https://id.example", EnvAuthAudience: "ledger-prod",
				EnvAuthMaxLifetime: "1h",
			},
			want: with(func(c *Config) {
				c.AuthSecret, c.AuthJWKSFile, c.AuthIssuer, c.AuthAudience, c.AuthMaxTokenLifetime = nil, "/etc/ledger/jwks.json", "https://id.example", "ledger-prod", time.Hour
			}),
		},
		{
			name:    "a JWKS file and a development secret together",
			env:     map[string]string{EnvAuthJWKSFile: "/etc/ledger/jwks.json", EnvAuthSecret: secret},
			wantErr: "both set",
		},
		{name: "endless tokens", env: map[string]string{EnvAuthSecret: secret, EnvAuthMaxLifetime: "8760h"}, wantErr: "LEDGER_AUTH_MAX_TOKEN_LIFETIME"},
		{name: "empty audience", args: []string{"--auth-audience="}, env: map[string]string{EnvAuthSecret: secret}, wantErr: "LEDGER_AUTH_AUDIENCE"},
		{
			name: "development mode only when asked for",
			env:  map[string]string{EnvAuth: "none"},
			want: with(func(c *Config) { c.Auth = AuthNone; c.AuthSecret = nil }),
		},
		{
			name: "every variable",
			env: map[string]string{
				EnvDatabaseURL: "postgres://ledger:pw@db:5432/ledger?sslmode=disable", EnvDataDir: "/var/lib/ledger",
				EnvGRPCAddr: "0.0.0.0:9000", EnvHTTPAddr: "0.0.0.0:8000", EnvLogLevel: "debug", EnvMigrateOnStart: "true",
				EnvPageTokenKey: "00112233445566778899aabbccddeeff", EnvAuth: "token", EnvAuthSecret: secret,
				EnvShutdownTimeout: "5s", EnvDrainDelay: "2s", EnvBatchMaxOps: "64", EnvDBMaxConns: "32", EnvGRPCReflection: "true",
				EnvMetricsAddr: ":9464", EnvTLSCertFile: "/tls/tls.crt", EnvTLSKeyFile: "/tls/tls.key", EnvTLSClientCAFile: "/tls/ca.crt",
				EnvTLSGatewayCertFile: "/tls/gw.crt", EnvTLSGatewayKeyFile: "/tls/gw.key", EnvAuthNoneAllowRemote: "true",
				EnvWebhooks: "false", EnvWebhookInterval: "250ms", EnvWebhookAllowPrivate: "true", EnvMigrateWait: "5s",
				EnvWebhookTimeout: "1s", EnvWebhookRetryBase: "50ms", EnvWebhookLease: "3s",
				EnvDatabasePooler: "transaction",
			},
			want: Config{
				DatabaseURL: "postgres://ledger:pw@db:5432/ledger?sslmode=disable", DataDir: "/var/lib/ledger",
				GRPCAddr: "0.0.0.0:9000", HTTPAddr: "0.0.0.0:8000", LogLevel: "debug", MigrateOnStart: true,
				PageTokenKey: []byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff},
				Auth:         AuthToken, AuthSecret: []byte(secret), ShutdownTimeout: 5 * time.Second, DrainDelay: 2 * time.Second, BatchMaxOps: 64,
				DBMaxConns: 32, GRPCReflection: true, DatabasePooler: PoolerTransaction,
				AuthIssuer: "creditledger", AuthAudience: "creditledger", AuthMaxTokenLifetime: 24 * time.Hour, AuthJWKSReload: 10 * time.Second,
				MetricsAddr: ":9464", TLSCertFile: "/tls/tls.crt", TLSKeyFile: "/tls/tls.key", TLSClientCAFile: "/tls/ca.crt",
				TLSGatewayCertFile: "/tls/gw.crt", TLSGatewayKeyFile: "/tls/gw.key", AuthNoneAllowRemote: true,
				Limits: DefaultLimits(), Expiry: DefaultExpiry(),
				Webhooks:    Webhooks{Enabled: false, Interval: 250 * time.Millisecond, AllowPrivate: true, Timeout: time.Second, RetryBase: 50 * time.Millisecond, Lease: 3 * time.Second},
				MigrateWait: 5 * time.Second,
			},
		},
		{
			name: "flag wins over environment",
			args: []string{"--grpc-addr", "127.0.0.1:0", "--http-addr=127.0.0.1:0", "--log-level", "warn", "--batch-max-ops=0", "--auth", "none"},
			env:  map[string]string{EnvGRPCAddr: "10.0.0.1:1", EnvLogLevel: "debug", EnvBatchMaxOps: "8", EnvAuth: "token"},
			want: with(func(c *Config) {
				c.GRPCAddr, c.HTTPAddr, c.LogLevel, c.Auth, c.AuthSecret = "127.0.0.1:0", "127.0.0.1:0", "warn", AuthNone, nil
			}),
		},
		{
			name: "base64 page token key",
			env:  map[string]string{EnvAuthSecret: secret, EnvPageTokenKey: "q83vASNFZ4mrze8BI0VniQ=="},
			want: with(func(c *Config) {
				c.PageTokenKey = []byte{0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89}
			}),
		},
		{
			name: "key=value database string",
			env:  map[string]string{EnvAuthSecret: secret, EnvDatabaseURL: "host=/tmp dbname=ledger password=s3cret"},
			want: with(func(c *Config) { c.DatabaseURL = "host=/tmp dbname=ledger password=s3cret" }),
		},
		{name: "short page token key", env: map[string]string{EnvAuthSecret: secret, EnvPageTokenKey: "abcd"}, wantErr: "LEDGER_PAGE_TOKEN_KEY: at least 16 bytes"},
		{name: "garbage page token key", env: map[string]string{EnvAuthSecret: secret, EnvPageTokenKey: "!!!"}, wantErr: "must be hex or base64"},
		{name: "short secret", env: map[string]string{EnvAuthSecret: "short"}, wantErr: "LEDGER_AUTH_SECRET"},
		{name: "unknown auth mode", env: map[string]string{EnvAuth: "basic"}, wantErr: `auth "basic": must be token or none`},
		{name: "bad duration", env: map[string]string{EnvShutdownTimeout: "soon"}, wantErr: "LEDGER_SHUTDOWN_TIMEOUT"},
		{name: "zero shutdown timeout", args: []string{"--shutdown-timeout=0s"}, env: map[string]string{EnvAuth: "none"}, wantErr: "shutdown timeout"},
		{name: "negative drain delay", args: []string{"--drain-delay=-1s"}, env: map[string]string{EnvAuth: "none"}, wantErr: "drain delay"},
		{name: "bad bool", env: map[string]string{EnvGRPCReflection: "perhaps"}, wantErr: "LEDGER_GRPC_REFLECTION"},
		{name: "bad count", env: map[string]string{EnvBatchMaxOps: "many"}, wantErr: "LEDGER_BATCH_MAX_OPS"},
		{name: "negative batch", env: map[string]string{EnvAuth: "none", EnvBatchMaxOps: "-1"}, wantErr: "batch max ops"},
		{name: "bad int", env: map[string]string{EnvDBMaxConns: "many"}, wantErr: "LEDGER_DB_MAX_CONNS"},
		{name: "negative pool", env: map[string]string{EnvAuth: "none", EnvDBMaxConns: "-1"}, wantErr: "db max conns"},
		{name: "unknown pooler", env: map[string]string{EnvAuth: "none", EnvDatabasePooler: "pgbouncer"}, wantErr: `database pooler "pgbouncer"`},
		{
			name: "pooler by flag",
			args: []string{"--database-pooler", "transaction"},
			env:  map[string]string{EnvAuth: "none"},
			want: with(func(c *Config) { c.Auth, c.AuthSecret, c.DatabasePooler = AuthNone, nil, PoolerTransaction }),
		},
		{name: "bad log level", env: map[string]string{EnvAuth: "none", EnvLogLevel: "loud"}, wantErr: "log level"},
		{name: "bad address", env: map[string]string{EnvAuth: "none", EnvGRPCAddr: "9090"}, wantErr: "grpc addr"},
		{name: "bad port", env: map[string]string{EnvAuth: "none", EnvHTTPAddr: ":99999"}, wantErr: "http addr"},
		{name: "same port twice", env: map[string]string{EnvAuth: "none", EnvGRPCAddr: ":8080", EnvHTTPAddr: "127.0.0.1:8080"}, wantErr: "must differ"},
		{name: "metrics on the http port", env: map[string]string{EnvAuth: "none", EnvMetricsAddr: "127.0.0.1:8080"}, wantErr: "metrics addr must differ"},
		{name: "bad metrics address", env: map[string]string{EnvAuth: "none", EnvMetricsAddr: "metrics"}, wantErr: "metrics addr"},
		{
			name: "metrics address by flag",
			args: []string{"--metrics-addr", "127.0.0.1:0"},
			env:  map[string]string{EnvAuthSecret: secret},
			want: with(func(c *Config) { c.MetricsAddr = "127.0.0.1:0" }),
		},
		{name: "tls cert without key", env: map[string]string{EnvAuthSecret: secret, EnvTLSCertFile: "/c"}, wantErr: "LEDGER_TLS_CERT_FILE and LEDGER_TLS_KEY_FILE: set both or neither"},
		{name: "tls key without cert", env: map[string]string{EnvAuthSecret: secret, EnvTLSKeyFile: "/k"}, wantErr: "set both or neither"},
		{name: "client CA without TLS", env: map[string]string{EnvAuthSecret: secret, EnvTLSClientCAFile: "/ca"}, wantErr: "LEDGER_TLS_CLIENT_CA_FILE needs TLS"},
		{
			name: "gateway cert without client CA",
			env: map[string]string{
				EnvAuthSecret: secret, EnvTLSCertFile: "/c", EnvTLSKeyFile: "/k", EnvTLSGatewayCertFile: "/g", EnvTLSGatewayKeyFile: "/gk",
			},
			wantErr: "only used with LEDGER_TLS_CLIENT_CA_FILE",
		},
		{
			name: "gateway key without cert",
			env: map[string]string{
				EnvAuthSecret: secret, EnvTLSCertFile: "/c", EnvTLSKeyFile: "/k", EnvTLSClientCAFile: "/ca", EnvTLSGatewayKeyFile: "/gk",
			},
			wantErr: "LEDGER_TLS_GATEWAY_CERT_FILE and LEDGER_TLS_GATEWAY_KEY_FILE",
		},
		{
			name: "mTLS flags",
			args: []string{"--tls-cert-file=/c", "--tls-key-file=/k", "--tls-client-ca-file=/ca"},
			env:  map[string]string{EnvAuthSecret: secret},
			want: with(func(c *Config) { c.TLSCertFile, c.TLSKeyFile, c.TLSClientCAFile = "/c", "/k", "/ca" }),
		},
		{name: "not a database URL", env: map[string]string{EnvAuth: "none", EnvDatabaseURL: "mysql-server"}, wantErr: "database URL"},
		{name: "no data dir for the embedded store", args: []string{"--data-dir="}, env: map[string]string{EnvAuth: "none"}, wantErr: "data dir"},
		{name: "unknown flag", args: []string{"--colour"}, env: map[string]string{EnvAuth: "none"}, wantErr: "flag provided but not defined"},
		{name: "stray argument", args: []string{"extra"}, env: map[string]string{EnvAuth: "none"}, wantErr: "unexpected arguments"},
		{name: "placeholder runtime role password", env: map[string]string{EnvAuth: "none", EnvRuntimeRolePassword: "CHANGE-ME-APP"}, wantErr: "placeholder"},
		{name: "short runtime role password", env: map[string]string{EnvAuth: "none", EnvRuntimeRolePassword: "app"}, wantErr: "at least 16"},
		{name: "migrate wait not a duration", env: map[string]string{EnvAuth: "none", EnvMigrateWait: "soon"}, wantErr: "LEDGER_MIGRATE_WAIT"},
		{name: "migrate wait too long", env: map[string]string{EnvAuth: "none", EnvMigrateWait: "2h"}, wantErr: "between 0s and 1h"},
		{name: "secrets are not flags", args: []string{"--auth-secret", secret}, env: map[string]string{EnvAuth: "none"}, wantErr: "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Load(tt.args, envOf(tt.env), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestAuthNoneBindsLoopbackOnly: without authentication every listener
// stays on loopback unless the second setting says otherwise.
func TestAuthNoneBindsLoopbackOnly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string // "" means accepted
	}{
		{name: "defaults", env: map[string]string{}},
		{name: "localhost", env: map[string]string{EnvGRPCAddr: "localhost:9090", EnvHTTPAddr: "LOCALHOST:8080"}},
		{name: "ipv6 loopback", env: map[string]string{EnvGRPCAddr: "[::1]:9090", EnvMetricsAddr: "127.0.0.2:9464"}},
		{name: "all interfaces", env: map[string]string{EnvGRPCAddr: "0.0.0.0:9090"}, wantErr: `grpc addr "0.0.0.0:9090" is not a loopback address`},
		{name: "empty host", env: map[string]string{EnvHTTPAddr: ":8080"}, wantErr: `http addr ":8080" is not a loopback address`},
		{name: "ipv6 any", env: map[string]string{EnvHTTPAddr: "[::]:8080"}, wantErr: "http addr"},
		{name: "host ip", env: map[string]string{EnvMetricsAddr: "10.1.2.3:9464"}, wantErr: "metrics addr"},
		{name: "hostname", env: map[string]string{EnvGRPCAddr: "ledger.internal:9090"}, wantErr: "grpc addr"},
		{name: "mapped ipv4 any", env: map[string]string{EnvGRPCAddr: "[::ffff:0.0.0.0]:9090"}, wantErr: "grpc addr"},
		{name: "debug listener", env: map[string]string{EnvDebugAddr: ":6060"}, wantErr: "debug addr"},
		{
			name: "explicitly allowed",
			env:  map[string]string{EnvGRPCAddr: "0.0.0.0:9090", EnvHTTPAddr: ":8080", EnvMetricsAddr: ":9464", EnvAuthNoneAllowRemote: "true"},
		},
		{name: "allow set to false", env: map[string]string{EnvGRPCAddr: "0.0.0.0:9090", EnvAuthNoneAllowRemote: "false"}, wantErr: "grpc addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.env[EnvAuth] = "none"
			_, err := Load(nil, envOf(tt.env), io.Discard)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
			// The message names both ways out.
			for _, want := range []string{"LEDGER_AUTH=token", "LEDGER_AUTH_NONE_ALLOW_REMOTE=true"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %s", err, want)
				}
			}
		})
	}
	// Token mode listens wherever it is told.
	if _, err := Load(nil, envOf(map[string]string{EnvAuthSecret: secret, EnvGRPCAddr: "0.0.0.0:9090", EnvHTTPAddr: ":8080"}), io.Discard); err != nil {
		t.Errorf("token mode on all interfaces: %v", err)
	}
	// Migrating listens nowhere.
	if _, err := LoadForMigrate(nil, envOf(map[string]string{EnvAuth: "none", EnvGRPCAddr: "0.0.0.0:9090"}), io.Discard); err != nil {
		t.Errorf("migrate: %v", err)
	}
}

func TestLoadForMigrateNeedsNoSecret(t *testing.T) {
	t.Parallel()
	c, err := LoadForMigrate([]string{"--database-url", "postgres://db/ledger"}, envOf(nil), io.Discard)
	if err != nil || c.DatabaseURL != "postgres://db/ledger" {
		t.Fatalf("LoadForMigrate = %+v, %v", c, err)
	}
	if _, err := LoadForMigrate(nil, envOf(map[string]string{EnvAuthSecret: "short"}), io.Discard); err == nil {
		t.Fatal("a short secret that is set is still refused")
	}
	if _, err := Load(nil, envOf(nil), io.Discard); err == nil {
		t.Fatal("serving without a secret in token mode must fail")
	}
}

func TestLoadHelp(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	_, err := Load([]string{"-h"}, envOf(nil), &out)
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "-grpc-addr") {
		t.Fatalf("help: %v\n%s", err, out.String())
	}
}

func TestErrorsNeverEchoTheDatabaseURL(t *testing.T) {
	t.Parallel()
	_, err := Load(nil, envOf(map[string]string{EnvAuth: "none", EnvDatabaseURL: "postgres://u:hunter2@[bad"}), io.Discard)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error = %v", err)
	}
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"postgres://ledger:hunter2@db:5432/ledger?sslmode=disable", "postgres://ledger:xxxxx@db:5432/ledger?sslmode=disable"},
		{"postgresql://db/ledger?user=u&password=hunter2", "postgresql://db/ledger?password=xxxxx&user=u"},
		{"postgres://db/ledger", "postgres://db/ledger"},
		{"host=/tmp user=u password=hunter2 dbname=l", "host=/tmp user=u password=xxxxx dbname=l"},
		{"host=/tmp password = 'hun ter2' dbname=l", "host=/tmp password = xxxxx dbname=l"},
		{"postgres://u:hunter2@[bad", "<unparsable database URL>"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	c := Default()
	c.DatabaseURL = "postgres://ledger:hunter2@db/ledger"
	c.AuthSecret = []byte(secret)
	c.PageTokenKey = []byte("0123456789abcdef-key")
	r := c.Redacted()
	s := fmt.Sprint(r)
	for _, leak := range []string{"hunter2", secret, "0123456789abcdef-key"} {
		if strings.Contains(s, leak) {
			t.Errorf("Redacted() leaks %q: %s", leak, s)
		}
	}
	if r["auth_secret"] != "set" || r["page_token_key"] != "set" || r["grpc_addr"] != "127.0.0.1:9090" {
		t.Errorf("Redacted() = %v", r)
	}
	if Default().Redacted()["page_token_key"] != "random per process" {
		t.Error("an unset page token key must say so")
	}
}
