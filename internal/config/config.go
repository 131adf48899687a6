// Package config is ledgerd's configuration: one Config struct loaded from
// command-line flags and LEDGER_* environment variables. A flag wins over
// the environment, the environment over the default.
//
// Secrets (LEDGER_AUTH_SECRET, LEDGER_PAGE_TOKEN_KEY) are read from the
// environment only: a flag would show them to anyone who can list processes.
package config

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// AuthMode selects how callers authenticate.
type AuthMode string

// Authentication modes.
const (
	// AuthNone is the development mode: no authentication at all. It must
	// be chosen explicitly (LEDGER_AUTH=none) and is announced loudly.
	AuthNone AuthMode = "none"
	// AuthToken requires signed bearer tokens: EdDSA or ES256 JWTs
	// verified with the keys of LEDGER_AUTH_JWKS_FILE or, in development,
	// HS256 JWTs signed with LEDGER_AUTH_SECRET.
	AuthToken AuthMode = "token"
)

// Bounds checked by Validate.
const (
	MinAuthSecretLength   = 32
	MinPageTokenKeyLength = 16
	MaxShutdownTimeout    = 10 * time.Minute
	MaxDBConns            = 1000
	// MaxTokenLifetime bounds LEDGER_AUTH_MAX_TOKEN_LIFETIME.
	MaxTokenLifetime = 30 * 24 * time.Hour
)

// Config is everything ledgerd can be told.
type Config struct {
	// DatabaseURL is the PostgreSQL connection string (URL or key=value);
	// empty selects the embedded store under DataDir.
	DatabaseURL string
	// DataDir holds the embedded store's file.
	DataDir string
	// GRPCAddr and HTTPAddr are the listen addresses; port 0 picks a free port.
	GRPCAddr string
	HTTPAddr string
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// MigrateOnStart applies the PostgreSQL migrations at start (otherwise
	// `ledgerd migrate` does). The embedded store always migrates on open.
	MigrateOnStart bool
	// PageTokenKey signs page tokens; replicas must share it. Empty: a
	// random key per process (tokens do not survive a restart).
	PageTokenKey []byte
	// Auth selects the authentication mode. With AuthToken, AuthJWKSFile
	// names the verification keys (production); AuthSecret is instead an
	// HS256 key (development only). The file is re-read when it changes.
	Auth         AuthMode
	AuthJWKSFile string
	AuthSecret   []byte
	// AuthIssuer and AuthAudience are the iss and aud every token must
	// carry; AuthMaxTokenLifetime bounds a token's exp − iat.
	AuthIssuer           string
	AuthAudience         string
	AuthMaxTokenLifetime time.Duration
	// AuthJWKSReload is how often the JWKS file is checked for changes.
	AuthJWKSReload time.Duration
	// ShutdownTimeout bounds the graceful drain.
	ShutdownTimeout time.Duration
	// DrainDelay is how long /readyz and gRPC health report NOT_SERVING
	// before the listeners close, so that load balancers stop routing
	// first. 0 (the default) closes at once.
	DrainDelay time.Duration
	// BatchMaxOps bounds the operations of one write batch; 0 keeps the
	// default (256).
	BatchMaxOps int
	// BatchPerWorkspace bounds the write batches of one workspace in
	// flight at once in this process; 0 keeps the default (2 on
	// PostgreSQL, 1 on the embedded store).
	BatchPerWorkspace int
	// DebugAddr, when set, serves net/http/pprof on its own listener
	// (profiling; keep it on loopback).
	DebugAddr string
	// DBMaxConns caps the PostgreSQL pool; 0 keeps the driver's default.
	DBMaxConns int
	// ReadDatabaseURLs are PostgreSQL read replicas (hot standbys of
	// DatabaseURL) for balances, histories, account lists, statements and
	// event pages; empty: the primary serves every read.
	ReadDatabaseURLs []string
	// ReadMaxLagBytes is how far (bytes of write-ahead log) a replica may
	// replay behind the primary and still serve reads; 0: 16 MiB.
	ReadMaxLagBytes int64
	// DatabasePooler is what DatabaseURL reaches PostgreSQL through:
	// PoolerNone (a direct connection) or PoolerTransaction (a pooler such
	// as pgbouncer, in transaction or session mode).
	DatabasePooler string
	// GRPCReflection registers the gRPC reflection service.
	GRPCReflection bool
	// MetricsAddr is the listen address of /metrics, kept apart from the
	// REST port so that only the scraper's network reaches it. Default
	// 127.0.0.1:9464; in a container set it to :9464 for Prometheus.
	MetricsAddr string
	// AuthNoneAllowRemote lets ledgerd listen on non-loopback addresses
	// with AuthNone. Without it, AuthNone refuses any address that is not
	// loopback (127.0.0.0/8, ::1, localhost).
	AuthNoneAllowRemote bool
	// TLSCertFile and TLSKeyFile (both or neither) turn TLS on for gRPC
	// and REST. The files are re-read when they change, without a restart.
	TLSCertFile string
	TLSKeyFile  string
	// TLSClientCAFile, when set (TLS on), makes the gRPC port require a
	// client certificate signed by one of its CAs (mTLS for internal
	// services). The REST port does not ask for client certificates:
	// portal backends authenticate with tokens.
	TLSClientCAFile string
	// TLSGatewayCertFile and TLSGatewayKeyFile (both or neither) are the
	// client certificate the REST gateway presents to the gRPC port when
	// TLSClientCAFile is set. Unset, the gateway presents the server's own
	// certificate, which must then be signed by a CA of TLSClientCAFile and
	// allow client authentication (extended key usage clientAuth).
	TLSGatewayCertFile string
	TLSGatewayKeyFile  string
	// Limits are the pending-request cap and the rate limits (limits.go).
	Limits Limits
	// Expiry is the expiry loop (expiry.go).
	Expiry Expiry
	// Webhooks is the delivery of events to webhook endpoints (webhooks.go).
	Webhooks Webhooks

	// PostgreSQL roles and row-level security (loadDatabaseRoles).

	// MigrateDatabaseURL is the owner's connection string, used by
	// `ledgerd migrate` and by MigrateOnStart; empty: DatabaseURL.
	MigrateDatabaseURL string
	// MigrateWait is how long `ledgerd migrate` keeps trying to reach a
	// PostgreSQL that is not up yet (refused, starting, recovering) before
	// it gives up; 0 tries once.
	MigrateWait time.Duration
	// RuntimeRole is the role migrate creates (or checks) and grants for
	// the service to connect as; empty: DefaultRuntimeRole (RuntimeRoleName).
	RuntimeRole string
	// RuntimeRolePassword, when set, becomes RuntimeRole's password.
	RuntimeRolePassword string
	// DBAllowPrivilegedRole lets the service run as a role that bypasses
	// row-level security (superuser, BYPASSRLS, owner of the tables).
	DBAllowPrivilegedRole bool
}

// TLS reports whether the listeners serve TLS.
func (c Config) TLS() bool { return c.TLSCertFile != "" }

// Values of DatabasePooler.
const (
	// PoolerNone: the database URL reaches PostgreSQL directly.
	PoolerNone = "none"
	// PoolerTransaction: it reaches a pooler that may run each
	// transaction on another server connection (pgbouncer's
	// pool_mode = transaction), or one in session mode.
	PoolerTransaction = "transaction"
)

// DefaultMetricsAddr is where /metrics listens unless told otherwise:
// loopback only, so that nothing is exposed by default.
const DefaultMetricsAddr = "127.0.0.1:9464"

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		DataDir:         "./.data",
		DatabasePooler:  PoolerNone,
		MigrateWait:     DefaultMigrateWait,
		GRPCAddr:        "127.0.0.1:9090",
		HTTPAddr:        "127.0.0.1:8080",
		LogLevel:        "info",
		MetricsAddr:     DefaultMetricsAddr,
		Auth:            AuthToken,
		ShutdownTimeout: 20 * time.Second,

		AuthIssuer:           "creditledger",
		AuthAudience:         "creditledger",
		AuthMaxTokenLifetime: 24 * time.Hour,
		AuthJWKSReload:       10 * time.Second,
		Limits:               DefaultLimits(),
		Expiry:               DefaultExpiry(),
		Webhooks:             DefaultWebhooks(),
	}
}

// Environment variable names.
const (
	EnvDatabaseURL     = "LEDGER_DATABASE_URL"
	EnvDataDir         = "LEDGER_DATA_DIR"
	EnvGRPCAddr        = "LEDGER_GRPC_ADDR"
	EnvHTTPAddr        = "LEDGER_HTTP_ADDR"
	EnvLogLevel        = "LEDGER_LOG_LEVEL"
	EnvMigrateOnStart  = "LEDGER_MIGRATE_ON_START"
	EnvPageTokenKey    = "LEDGER_PAGE_TOKEN_KEY" //nolint:gosec // G101: a variable's name, not a credential
	EnvAuth            = "LEDGER_AUTH"
	EnvAuthSecret      = "LEDGER_AUTH_SECRET" //nolint:gosec // G101: a variable's name, not a credential
	EnvAuthJWKSFile    = "LEDGER_AUTH_JWKS_FILE"
	EnvAuthIssuer      = "LEDGER_AUTH_ISSUER"
	EnvAuthAudience    = "LEDGER_AUTH_AUDIENCE"
	EnvAuthMaxLifetime = "LEDGER_AUTH_MAX_TOKEN_LIFETIME"
	EnvAuthJWKSReload  = "LEDGER_AUTH_JWKS_RELOAD_INTERVAL"
	EnvShutdownTimeout = "LEDGER_SHUTDOWN_TIMEOUT"
	EnvDrainDelay      = "LEDGER_DRAIN_DELAY"
	EnvBatchMaxOps     = "LEDGER_BATCH_MAX_OPS"
	EnvBatchPerWS      = "LEDGER_BATCH_PER_WORKSPACE"
	EnvDebugAddr       = "LEDGER_DEBUG_ADDR"
	EnvDBMaxConns      = "LEDGER_DB_MAX_CONNS"
	EnvReadDatabaseURL = "LEDGER_READ_DATABASE_URL"
	EnvReadMaxLag      = "LEDGER_READ_MAX_LAG_BYTES"
	EnvDatabasePooler  = "LEDGER_DATABASE_POOLER"
	EnvGRPCReflection  = "LEDGER_GRPC_REFLECTION"
	EnvMetricsAddr     = "LEDGER_METRICS_ADDR"
	// EnvAuthNoneAllowRemote is the explicit second setting that lets
	// LEDGER_AUTH=none listen beyond loopback.
	EnvAuthNoneAllowRemote = "LEDGER_AUTH_NONE_ALLOW_REMOTE"
	EnvTLSCertFile         = "LEDGER_TLS_CERT_FILE"
	EnvTLSKeyFile          = "LEDGER_TLS_KEY_FILE"
	EnvTLSClientCAFile     = "LEDGER_TLS_CLIENT_CA_FILE"
	EnvTLSGatewayCertFile  = "LEDGER_TLS_GATEWAY_CERT_FILE"
	EnvTLSGatewayKeyFile   = "LEDGER_TLS_GATEWAY_KEY_FILE"
)

// Load reads the environment through getenv, then the flags in args
// (subcommand already removed), and validates the result for serving.
// Usage and flag errors are written to usage. -h yields an error wrapping
// flag.ErrHelp.
func Load(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	return load(args, getenv, usage, true)
}

// LoadForMigrate reads the same flags and variables as Load but does not
// require the authentication settings: migrating serves no caller.
func LoadForMigrate(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	return load(args, getenv, usage, false)
}

func load(args []string, getenv func(string) string, usage io.Writer, serving bool) (Config, error) {
	c := Default()
	var errs []error
	env := func(name string, parse func(string) error) {
		if v := getenv(name); v != "" {
			if err := parse(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
	}
	str := func(dst *string) func(string) error { return func(v string) error { *dst = v; return nil } }
	boolean := func(dst *bool) func(string) error {
		return func(v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%q is not a boolean", v)
			}
			*dst = b
			return nil
		}
	}
	var auth, pageKey string
	env(EnvDatabaseURL, str(&c.DatabaseURL))
	env(EnvDataDir, str(&c.DataDir))
	env(EnvGRPCAddr, str(&c.GRPCAddr))
	env(EnvHTTPAddr, str(&c.HTTPAddr))
	env(EnvLogLevel, str(&c.LogLevel))
	env(EnvMigrateOnStart, boolean(&c.MigrateOnStart))
	env(EnvPageTokenKey, str(&pageKey))
	env(EnvAuth, str(&auth))
	env(EnvAuthSecret, func(v string) error { c.AuthSecret = []byte(v); return nil })
	duration := func(dst *time.Duration) func(string) error {
		return func(v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%q is not a duration (e.g. 20s)", v)
			}
			*dst = d
			return nil
		}
	}
	env(EnvShutdownTimeout, duration(&c.ShutdownTimeout))
	env(EnvAuthJWKSFile, str(&c.AuthJWKSFile))
	env(EnvAuthIssuer, str(&c.AuthIssuer))
	env(EnvAuthAudience, str(&c.AuthAudience))
	env(EnvAuthMaxLifetime, duration(&c.AuthMaxTokenLifetime))
	env(EnvAuthJWKSReload, duration(&c.AuthJWKSReload))
	env(EnvDrainDelay, duration(&c.DrainDelay))
	integer := func(dst *int) func(string) error {
		return func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%q is not an integer", v)
			}
			*dst = n
			return nil
		}
	}
	env(EnvDBMaxConns, integer(&c.DBMaxConns))
	env(EnvReadDatabaseURL, func(v string) error { c.ReadDatabaseURLs = strings.Fields(v); return nil })
	env(EnvReadMaxLag, func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", v)
		}
		c.ReadMaxLagBytes = n
		return nil
	})
	env(EnvDatabasePooler, str(&c.DatabasePooler))
	env(EnvBatchMaxOps, integer(&c.BatchMaxOps))
	env(EnvBatchPerWS, integer(&c.BatchPerWorkspace))
	env(EnvDebugAddr, func(v string) error { c.DebugAddr = v; return nil })
	env(EnvGRPCReflection, boolean(&c.GRPCReflection))
	env(EnvMetricsAddr, str(&c.MetricsAddr))
	env(EnvAuthNoneAllowRemote, boolean(&c.AuthNoneAllowRemote))
	env(EnvTLSCertFile, str(&c.TLSCertFile))
	env(EnvTLSKeyFile, str(&c.TLSKeyFile))
	env(EnvTLSClientCAFile, str(&c.TLSClientCAFile))
	env(EnvTLSGatewayCertFile, str(&c.TLSGatewayCertFile))
	env(EnvTLSGatewayKeyFile, str(&c.TLSGatewayKeyFile))
	errs = append(errs, c.Limits.fromEnv(getenv)...)
	errs = append(errs, c.Expiry.fromEnv(getenv)...)
	errs = append(errs, c.Webhooks.fromEnv(getenv)...)
	errs = append(errs, loadDatabaseRoles(&c, getenv)...)
	if auth != "" {
		c.Auth = AuthMode(auth)
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}

	// Flags start from the environment's values, so a flag wins when given.
	fs := flag.NewFlagSet("ledgerd", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "PostgreSQL URL; empty selects the embedded store ("+EnvDatabaseURL+"; prefer the variable: flags are visible to other users)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory of the embedded store ("+EnvDataDir+")")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", c.GRPCAddr, "gRPC listen address ("+EnvGRPCAddr+")")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "HTTP (REST, health) listen address ("+EnvHTTPAddr+")")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "Prometheus /metrics listen address ("+EnvMetricsAddr+")")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error ("+EnvLogLevel+")")
	fs.BoolVar(&c.MigrateOnStart, "migrate-on-start", c.MigrateOnStart, "apply PostgreSQL migrations at start ("+EnvMigrateOnStart+")")
	fs.StringVar((*string)(&c.Auth), "auth", string(c.Auth), "authentication: token or none (development only) ("+EnvAuth+")")
	fs.StringVar(&c.AuthJWKSFile, "auth-jwks-file", c.AuthJWKSFile, "JWKS file of the token verification keys, re-read on change ("+EnvAuthJWKSFile+"; development alternative: an HS256 secret in "+EnvAuthSecret+")")
	fs.StringVar(&c.AuthIssuer, "auth-issuer", c.AuthIssuer, "required iss of tokens ("+EnvAuthIssuer+")")
	fs.StringVar(&c.AuthAudience, "auth-audience", c.AuthAudience, "required aud of tokens ("+EnvAuthAudience+")")
	fs.DurationVar(&c.AuthMaxTokenLifetime, "auth-max-token-lifetime", c.AuthMaxTokenLifetime, "longest exp - iat accepted ("+EnvAuthMaxLifetime+")")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "graceful drain bound ("+EnvShutdownTimeout+")")
	fs.DurationVar(&c.DrainDelay, "drain-delay", c.DrainDelay, "report NOT_SERVING this long before closing the listeners ("+EnvDrainDelay+")")
	fs.IntVar(&c.BatchMaxOps, "batch-max-ops", c.BatchMaxOps, "most operations in one write batch, 0 for the default ("+EnvBatchMaxOps+")")
	fs.IntVar(&c.BatchPerWorkspace, "batch-per-workspace", c.BatchPerWorkspace, "write batches of one workspace in flight at once, 0 for the default ("+EnvBatchPerWS+")")
	fs.StringVar(&c.DebugAddr, "debug-addr", c.DebugAddr, "serve net/http/pprof on this address; empty: off ("+EnvDebugAddr+")")
	fs.IntVar(&c.DBMaxConns, "db-max-conns", c.DBMaxConns, "PostgreSQL pool size, 0 for the default ("+EnvDBMaxConns+")")
	fs.StringVar(&c.DatabasePooler, "database-pooler", c.DatabasePooler, "what the database URL reaches PostgreSQL through: none, or transaction for a pooler such as pgbouncer ("+EnvDatabasePooler+")")
	fs.BoolVar(&c.GRPCReflection, "grpc-reflection", c.GRPCReflection, "register gRPC reflection ("+EnvGRPCReflection+")")
	fs.BoolVar(&c.AuthNoneAllowRemote, "auth-none-allow-remote", c.AuthNoneAllowRemote, "with --auth=none, allow non-loopback listen addresses ("+EnvAuthNoneAllowRemote+")")
	fs.StringVar(&c.TLSCertFile, "tls-cert-file", c.TLSCertFile, "server certificate (PEM); with --tls-key-file turns TLS on ("+EnvTLSCertFile+")")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", c.TLSKeyFile, "server private key (PEM) ("+EnvTLSKeyFile+")")
	fs.StringVar(&c.TLSClientCAFile, "tls-client-ca-file", c.TLSClientCAFile, "CA certificates (PEM); set, gRPC requires client certificates they sign ("+EnvTLSClientCAFile+")")
	fs.StringVar(&c.TLSGatewayCertFile, "tls-gateway-cert-file", c.TLSGatewayCertFile, "client certificate of the REST gateway towards gRPC; default the server's ("+EnvTLSGatewayCertFile+")")
	fs.StringVar(&c.TLSGatewayKeyFile, "tls-gateway-key-file", c.TLSGatewayKeyFile, "key of --tls-gateway-cert-file ("+EnvTLSGatewayKeyFile+")")
	c.Limits.flags(fs)
	c.Expiry.flags(fs)
	c.Webhooks.flags(fs)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if pageKey != "" {
		key, err := decodeKey(pageKey)
		if err != nil {
			return Config{}, fmt.Errorf("%s: %w", EnvPageTokenKey, err)
		}
		c.PageTokenKey = key
	}
	if err := c.validate(serving); err != nil {
		return Config{}, err
	}
	return c, nil
}

// decodeKey reads a key written as hex or base64 (standard or URL
// alphabet, padded or not). Hex is tried first.
func decodeKey(s string) ([]byte, error) {
	if b, err := hex.DecodeString(s); err == nil {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("must be hex or base64")
}

var logLevels = []string{"debug", "info", "warn", "error"}

// Validate checks every field, as serving needs them, and reports all
// problems at once.
func (c Config) Validate() error { return c.validate(true) }

func (c Config) validate(serving bool) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.DatabaseURL == "" {
		if c.DataDir == "" {
			bad("data dir: required when no database URL is set")
		}
	} else if err := checkDatabaseURL(c.DatabaseURL); err != nil {
		bad("database URL: %v", err)
	}
	gp, gErr := checkAddr(c.GRPCAddr)
	if gErr != nil {
		bad("grpc addr %q: %v", c.GRPCAddr, gErr)
	}
	hp, hErr := checkAddr(c.HTTPAddr)
	if hErr != nil {
		bad("http addr %q: %v", c.HTTPAddr, hErr)
	}
	if gErr == nil && hErr == nil && gp != 0 && gp == hp && sameHost(c.GRPCAddr, c.HTTPAddr) {
		bad("grpc addr and http addr must differ")
	}
	mp, mErr := checkAddr(c.MetricsAddr)
	if mErr != nil {
		bad("metrics addr %q: %v", c.MetricsAddr, mErr)
	}
	if mErr == nil && mp != 0 && ((gErr == nil && mp == gp && sameHost(c.MetricsAddr, c.GRPCAddr)) ||
		(hErr == nil && mp == hp && sameHost(c.MetricsAddr, c.HTTPAddr))) {
		bad("metrics addr must differ from the grpc and http addrs")
	}
	if serving && c.Auth == AuthNone && !c.AuthNoneAllowRemote {
		for _, a := range []struct{ name, addr string }{
			{"grpc addr", c.GRPCAddr}, {"http addr", c.HTTPAddr}, {"metrics addr", c.MetricsAddr}, {"debug addr", c.DebugAddr},
		} {
			if a.addr != "" && !IsLoopback(a.addr) {
				bad("%s %q is not a loopback address: with %s=none (no authentication) ledgerd listens on loopback only "+
					"(127.0.0.1, ::1, localhost); set %s=token, or %s=true to expose the unauthenticated server on purpose",
					a.name, a.addr, EnvAuth, EnvAuth, EnvAuthNoneAllowRemote)
			}
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("%s and %s: set both or neither", EnvTLSCertFile, EnvTLSKeyFile)
	}
	if (c.TLSGatewayCertFile == "") != (c.TLSGatewayKeyFile == "") {
		bad("%s and %s: set both or neither", EnvTLSGatewayCertFile, EnvTLSGatewayKeyFile)
	}
	if c.TLSCertFile == "" && c.TLSKeyFile == "" {
		if c.TLSClientCAFile != "" {
			bad("%s needs TLS: set %s and %s", EnvTLSClientCAFile, EnvTLSCertFile, EnvTLSKeyFile)
		}
	}
	if c.TLSGatewayCertFile != "" && c.TLSClientCAFile == "" {
		bad("%s is only used with %s (mTLS on gRPC)", EnvTLSGatewayCertFile, EnvTLSClientCAFile)
	}
	if !contains(logLevels, c.LogLevel) {
		bad("log level %q: must be one of %v", c.LogLevel, logLevels)
	}
	switch c.Auth {
	case AuthNone:
	case AuthToken:
		switch {
		case c.AuthJWKSFile != "" && len(c.AuthSecret) > 0:
			bad("%s and %s are both set: verification keys come from the JWKS file; the HS256 secret is for development only",
				EnvAuthJWKSFile, EnvAuthSecret)
		case c.AuthJWKSFile == "" && len(c.AuthSecret) == 0 && serving:
			bad("%s=token needs %s (the verification keys; see `ledgerd keygen`) or, for development only, an HS256 secret in %s (or %s=none)",
				EnvAuth, EnvAuthJWKSFile, EnvAuthSecret, EnvAuth)
		case len(c.AuthSecret) > 0 && len(c.AuthSecret) < MinAuthSecretLength:
			bad("%s: at least %d bytes are required", EnvAuthSecret, MinAuthSecretLength)
		}
		if c.AuthIssuer == "" || c.AuthAudience == "" {
			bad("%s and %s must not be empty", EnvAuthIssuer, EnvAuthAudience)
		}
		if c.AuthJWKSReload < 100*time.Millisecond || c.AuthJWKSReload > time.Hour {
			bad("%s %v: must be in [100ms, 1h]", EnvAuthJWKSReload, c.AuthJWKSReload)
		}
		if c.AuthMaxTokenLifetime <= 0 || c.AuthMaxTokenLifetime > MaxTokenLifetime {
			bad("%s %v: must be in (0, %v]", EnvAuthMaxLifetime, c.AuthMaxTokenLifetime, MaxTokenLifetime)
		}
	default:
		bad("auth %q: must be token or none", c.Auth)
	}
	if len(c.PageTokenKey) > 0 && len(c.PageTokenKey) < MinPageTokenKeyLength {
		bad("%s: at least %d bytes are required", EnvPageTokenKey, MinPageTokenKeyLength)
	}
	if c.ShutdownTimeout <= 0 || c.ShutdownTimeout > MaxShutdownTimeout {
		bad("shutdown timeout %v: must be in (0, %v]", c.ShutdownTimeout, MaxShutdownTimeout)
	}
	if c.DrainDelay < 0 || c.DrainDelay > MaxShutdownTimeout {
		bad("drain delay %v: must be in [0, %v]", c.DrainDelay, MaxShutdownTimeout)
	}
	if c.DBMaxConns < 0 || c.DBMaxConns > MaxDBConns {
		bad("db max conns %d: must be 0 (default) to %d", c.DBMaxConns, MaxDBConns)
	}
	if len(c.ReadDatabaseURLs) > 0 && c.DatabaseURL == "" {
		bad("%s needs %s: read replicas follow a PostgreSQL primary (the embedded store has none)", EnvReadDatabaseURL, EnvDatabaseURL)
	}
	if c.ReadMaxLagBytes < 0 {
		bad("%s %d: must be ≥ 0 (0: the default, 16 MiB)", EnvReadMaxLag, c.ReadMaxLagBytes)
	}
	if c.DatabasePooler != PoolerNone && c.DatabasePooler != PoolerTransaction {
		bad("database pooler %q: must be %s (a direct connection) or %s (a pooler such as pgbouncer in between)",
			c.DatabasePooler, PoolerNone, PoolerTransaction)
	}
	if c.BatchMaxOps < 0 || c.BatchMaxOps > 4096 {
		bad("batch max ops %d: must be 0 (default) to 4096", c.BatchMaxOps)
	}
	if c.BatchPerWorkspace < 0 || c.BatchPerWorkspace > 64 {
		bad("batch per workspace %d: must be 0 (default) to 64", c.BatchPerWorkspace)
	}
	if err := c.Limits.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Webhooks.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Expiry.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func checkAddr(addr string) (int, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, errors.New("must be host:port")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return 0, errors.New("port must be 0-65535")
	}
	return p, nil
}

// IsLoopback reports whether a listen address (host:port) binds to
// loopback only: an IP in 127.0.0.0/8 or ::1, or the name localhost. An
// empty host, 0.0.0.0, ::, any other IP or name is not.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

func sameHost(a, b string) bool {
	ha, _, _ := net.SplitHostPort(a)
	hb, _, _ := net.SplitHostPort(b)
	return ha == hb || ha == "" || hb == "" || ha == "0.0.0.0" || hb == "0.0.0.0"
}

// checkDatabaseURL accepts a postgres:// or postgresql:// URL, or a
// libpq key=value string. Errors never echo the string: it may hold a password.
func checkDatabaseURL(s string) error {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		if _, err := url.Parse(s); err != nil {
			return errors.New("not a valid URL")
		}
		return nil
	}
	if strings.Contains(s, "=") {
		return nil
	}
	return errors.New("must be a postgres:// URL or key=value connection string")
}

// EmbeddedPath is the embedded store's file.
func (c Config) EmbeddedPath() string { return filepath.Join(c.DataDir, "ledger.db") }

// Redacted returns the configuration for logging: the database password and
// the secrets never appear, only whether they are set.
func (c Config) Redacted() map[string]any {
	set := func(b []byte, unset string) string {
		if len(b) == 0 {
			return unset
		}
		return "set"
	}
	return map[string]any{
		"database_url":            RedactURL(c.DatabaseURL),
		"data_dir":                c.DataDir,
		"grpc_addr":               c.GRPCAddr,
		"http_addr":               c.HTTPAddr,
		"log_level":               c.LogLevel,
		"migrate_on_start":        c.MigrateOnStart,
		"page_token_key":          set(c.PageTokenKey, "random per process"),
		"auth":                    string(c.Auth),
		"auth_secret":             set(c.AuthSecret, "unset"),
		"auth_jwks_file":          c.AuthJWKSFile,
		"auth_issuer":             c.AuthIssuer,
		"auth_audience":           c.AuthAudience,
		"auth_max_token_lifetime": c.AuthMaxTokenLifetime.String(),
		"shutdown_timeout":        c.ShutdownTimeout.String(),
		"drain_delay":             c.DrainDelay.String(),
		"batch_max_ops":           c.BatchMaxOps,
		"batch_per_ws":            c.BatchPerWorkspace,
		"debug_addr":              c.DebugAddr,
		"db_max_conns":            c.DBMaxConns,
		"read_database_urls":      redactURLs(c.ReadDatabaseURLs),
		"read_max_lag_bytes":      c.ReadMaxLagBytes,
		"database_pooler":         c.DatabasePooler,
		"grpc_reflection":         c.GRPCReflection,
		"metrics_addr":            c.MetricsAddr,
		"tls":                     c.TLS(),
		"tls_cert_file":           c.TLSCertFile,
		"tls_client_ca":           c.TLSClientCAFile,
		"tls_gateway_cert":        c.TLSGatewayCertFile,
		"auth_none_remote":        c.AuthNoneAllowRemote,
		"limits":                  c.Limits.redacted(),
		"expiry":                  c.Expiry.redacted(),
		"webhooks":                c.Webhooks.redacted(),
	}
}

func redactURLs(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = RedactURL(u)
	}
	return out
}

var dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// RedactURL hides the password of a PostgreSQL URL or key=value string
// (in the userinfo and in a password query parameter).
func RedactURL(s string) string {
	if s == "" {
		return ""
	}
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		u, err := url.Parse(s)
		if err != nil {
			return "<unparsable database URL>"
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	return dsnPassword.ReplaceAllString(s, "${1}xxxxx")
}

// ---------------------------------------------------------------------------
// PostgreSQL roles and row-level security. Environment only: the migrate
// URL and the role's password are credentials, which flags would show to
// anyone who can list processes.

// Environment variables of the PostgreSQL roles.
const (
	EnvMigrateDatabaseURL    = "LEDGER_MIGRATE_DATABASE_URL"
	EnvMigrateWait           = "LEDGER_MIGRATE_WAIT"
	EnvRuntimeRole           = "LEDGER_RUNTIME_ROLE"
	EnvRuntimeRolePassword   = "LEDGER_RUNTIME_ROLE_PASSWORD" //nolint:gosec // G101: a variable's name, not a credential
	EnvDBAllowPrivilegedRole = "LEDGER_DB_ALLOW_PRIVILEGED_ROLE"
)

// DefaultMigrateWait is how long `ledgerd migrate` waits for PostgreSQL to
// come up by default: a container started with its database.
const DefaultMigrateWait = 60 * time.Second

// DefaultRuntimeRole is the role the service connects as by default.
const DefaultRuntimeRole = "creditledger_app"

var roleName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// loadDatabaseRoles reads the role settings into c and returns what is wrong.
func loadDatabaseRoles(c *Config, getenv func(string) string) []error {
	var errs []error
	c.MigrateDatabaseURL = getenv(EnvMigrateDatabaseURL)
	if v := getenv(EnvMigrateWait); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > time.Hour {
			errs = append(errs, fmt.Errorf("%s: %q: want a duration between 0s and 1h, like 60s", EnvMigrateWait, v))
		}
		c.MigrateWait = d
	}
	c.RuntimeRole = getenv(EnvRuntimeRole)
	c.RuntimeRolePassword = getenv(EnvRuntimeRolePassword)
	if v := getenv(EnvDBAllowPrivilegedRole); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a boolean", EnvDBAllowPrivilegedRole, v))
		}
		c.DBAllowPrivilegedRole = b
	}
	if c.MigrateDatabaseURL != "" {
		if err := checkDatabaseURL(c.MigrateDatabaseURL); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvMigrateDatabaseURL, err))
		}
	}
	// The deploy examples' placeholders must never become a password.
	if strings.Contains(strings.ToUpper(c.RuntimeRolePassword), "CHANGE-ME") {
		errs = append(errs, fmt.Errorf("%s: still the placeholder of the deploy examples; set a real password (e.g. openssl rand -hex 24)",
			EnvRuntimeRolePassword))
	} else if p := c.RuntimeRolePassword; p != "" && len(p) < 16 {
		errs = append(errs, fmt.Errorf("%s: at least 16 characters are required", EnvRuntimeRolePassword))
	}
	// A plain lower-case name: no quoting surprises, not a reserved pg_ role.
	if c.RuntimeRole != "" && (!roleName.MatchString(c.RuntimeRole) || strings.HasPrefix(c.RuntimeRole, "pg_")) {
		errs = append(errs, fmt.Errorf("%s %q: must be 1 to 63 of a-z, 0-9 and _, not starting with a digit or pg_",
			EnvRuntimeRole, c.RuntimeRole))
	}
	return errs
}

// MigrateURL is the connection string migrations run with: the owner's.
func (c Config) MigrateURL() string {
	if c.MigrateDatabaseURL != "" {
		return c.MigrateDatabaseURL
	}
	return c.DatabaseURL
}

// RuntimeRoleName is RuntimeRole, or DefaultRuntimeRole when unset.
func (c Config) RuntimeRoleName() string {
	if c.RuntimeRole != "" {
		return c.RuntimeRole
	}
	return DefaultRuntimeRole
}
