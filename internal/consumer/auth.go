package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/creditledger/creditledger/internal/token"
)

// maxSecretFile bounds a *_FILE secret: a token or a key, not a document.
const maxSecretFile = 64 << 10

// ReadSecret returns the secret of the variable name, or of the file its
// name_FILE variable names, trimmed of surrounding white space (a trailing
// newline of `echo > file`). Both set is an error: which one wins would
// be a guess.
func ReadSecret(getenv func(string) string, name string) (string, error) {
	v, path := getenv(name), getenv(name+"_FILE")
	switch {
	case v != "" && path != "":
		return "", fmt.Errorf("%s and %s_FILE are both set: give one", name, name)
	case path == "":
		return strings.TrimSpace(v), nil
	}
	f, err := os.Open(path) //nolint:gosec // G304: the operator names the secret's file
	if err != nil {
		return "", fmt.Errorf("%s_FILE: %w", name, err)
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("%s_FILE: %w", name, err)
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("%s_FILE: larger than %d bytes", name, maxSecretFile)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s_FILE: %s is empty", name, path)
	}
	return s, nil
}

// Authentication modes of the service's own API.
const (
	AuthToken = "token"
	AuthNone  = "none"
)

// AuthSettings configure the verification of the API's bearer tokens:
// flags and <PREFIX>_AUTH… variables (kong tags, see Parse), and Load's
// from the environment only.
type AuthSettings struct {
	Mode     string        `name:"auth" env:"${prefix}_AUTH" default:"token" placeholder:"token|none" help:"authentication of the API: token, or none (development, loopback only)"`
	JWKSFile string        `name:"auth-jwks-file" env:"${prefix}_AUTH_JWKS_FILE" placeholder:"FILE" help:"JWKS file of the token verification keys, re-read on change"`
	Issuer   string        `name:"auth-issuer" env:"${prefix}_AUTH_ISSUER" default:"${token_issuer}" placeholder:"ISSUER" help:"required iss of tokens"`
	Audience string        `name:"auth-audience" env:"${prefix}_AUTH_AUDIENCE" default:"${token_audience}" placeholder:"AUDIENCE" help:"required aud of tokens"`
	Prefix   string        `kong:"-"` // CHECKOUT or INVOICING: the variables are <Prefix>_AUTH…
	Secret   []byte        `kong:"-"` // HS256, development only
	Reload   time.Duration `kong:"-"`
}

// Load reads the settings that come from the environment only:
// <prefix>_AUTH_JWKS_RELOAD_INTERVAL (default 10s), how often the JWKS
// file is checked for changes, and the development secret
// <prefix>_AUTH_SECRET (or _FILE).
func (s *AuthSettings) Load(prefix string, getenv func(string) string) error {
	s.Prefix = prefix
	reload := getenv(s.Env("_JWKS_RELOAD_INTERVAL"))
	if reload == "" {
		reload = "10s"
	}
	var err error
	if s.Reload, err = time.ParseDuration(reload); err != nil {
		return fmt.Errorf("%s %q: want a duration like 10s", s.Env("_JWKS_RELOAD_INTERVAL"), reload)
	}
	secret, err := ReadSecret(getenv, s.Env("_SECRET"))
	s.Secret = []byte(secret)
	return err
}

// Env names the setting <Prefix>_AUTH<suffix>.
func (s AuthSettings) Env(suffix string) string { return s.Prefix + "_AUTH" + suffix }

// Check validates the settings; httpAddr must be loopback without authentication.
func (s AuthSettings) Check(httpAddr string) error {
	switch s.Mode {
	case AuthNone:
		if err := RequireLoopback(httpAddr); err != nil {
			return fmt.Errorf("%s=none serves without authentication: %w", s.Env(""), err)
		}
		return nil
	case AuthToken:
	default:
		return fmt.Errorf("%s %q: must be token or none (development only)", s.Env(""), s.Mode)
	}
	switch {
	case s.JWKSFile != "" && len(s.Secret) > 0:
		return fmt.Errorf("%s and %s are both set: verification keys come from the JWKS file; the HS256 secret is for development only",
			s.Env("_JWKS_FILE"), s.Env("_SECRET"))
	case s.JWKSFile == "" && len(s.Secret) == 0:
		return fmt.Errorf("%s=token needs %s (the token verification keys, as ledgerd's) or, for development only, an HS256 secret in %s (or %s=none on loopback)",
			s.Env(""), s.Env("_JWKS_FILE"), s.Env("_SECRET"), s.Env(""))
	case len(s.Secret) > 0 && len(s.Secret) < token.MinSecretLength:
		return fmt.Errorf("%s: at least %d bytes are required", s.Env("_SECRET"), token.MinSecretLength)
	}
	if s.Issuer == "" || s.Audience == "" {
		return fmt.Errorf("%s and %s must not be empty", s.Env("_ISSUER"), s.Env("_AUDIENCE"))
	}
	if s.Reload < 100*time.Millisecond || s.Reload > time.Hour {
		return fmt.Errorf("%s %v: must be in [100ms, 1h]", s.Env("_JWKS_RELOAD_INTERVAL"), s.Reload)
	}
	return nil
}

// Verifier returns the token verifier (nil with AuthNone) and, for a JWKS
// file, watches it until ctx ends; wg waits for the watcher.
func (s AuthSettings) Verifier(ctx context.Context, log *zap.Logger, wg *sync.WaitGroup) (*token.Verifier, error) {
	switch {
	case s.Mode == AuthNone:
		log.Warn("DEVELOPMENT MODE: the API is served WITHOUT AUTHENTICATION (" + s.Env("") + "=none); anyone who reaches it acts on every account")
		return nil, nil
	case len(s.Secret) > 0:
		log.Warn("DEVELOPMENT ONLY: tokens are verified with the HS256 secret of " + s.Env("_SECRET") +
			"; whoever knows it can mint any role. Use " + s.Env("_JWKS_FILE") + " in production")
		return token.NewVerifier(token.VerifierOptions{DevSecret: s.Secret, Issuer: s.Issuer, Audience: s.Audience})
	}
	ks, err := token.LoadJWKS(s.JWKSFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Env("_JWKS_FILE"), err)
	}
	v, err := token.NewVerifier(token.VerifierOptions{Keys: ks, Issuer: s.Issuer, Audience: s.Audience})
	if err != nil {
		return nil, err
	}
	log.Info("token verification keys loaded", zap.String("jwks_file", s.JWKSFile), zap.Strings("kids", ks.IDs()))
	wg.Go(func() {
		token.WatchJWKS(ctx, s.JWKSFile, s.Reload, v, func(ks *token.KeySet, err error) {
			if err != nil {
				log.Error("token verification keys not reloaded; the previous ones stay in use", zap.Error(err))
				return
			}
			log.Info("token verification keys reloaded", zap.Strings("kids", ks.IDs()))
		})
	})
	return v, nil
}

// RequireLoopback refuses a listen address reachable from elsewhere.
func RequireLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return errors.New("it listens only on a loopback address (127.0.0.1, ::1), not " + addr)
}
