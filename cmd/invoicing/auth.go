package main

// This file is the same in cmd/checkout and cmd/invoicing; keep the two
// alike.

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

// readSecret returns the secret of the variable name, or of the file its
// name_FILE variable names, trimmed of surrounding white space (a trailing
// newline of `echo > file`). Both set is an error: which one wins would
// be a guess.
func readSecret(getenv func(string) string, name string) (string, error) {
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
	authToken = "token"
	authNone  = "none"
)

// authSettings configure the verification of the API's bearer tokens.
type authSettings struct {
	prefix   string // CHECKOUT or INVOICING
	mode     string // authToken or authNone
	jwksFile string
	secret   []byte // HS256, development only
	issuer   string
	audience string
	reload   time.Duration
}

func (s authSettings) env(suffix string) string { return s.prefix + "_AUTH" + suffix }

// check validates the settings; httpAddr must be loopback without authentication.
func (s authSettings) check(httpAddr string) error {
	switch s.mode {
	case authNone:
		if err := requireLoopback(httpAddr); err != nil {
			return fmt.Errorf("%s=none serves without authentication: %w", s.env(""), err)
		}
		return nil
	case authToken:
	default:
		return fmt.Errorf("%s %q: must be token or none (development only)", s.env(""), s.mode)
	}
	switch {
	case s.jwksFile != "" && len(s.secret) > 0:
		return fmt.Errorf("%s and %s are both set: verification keys come from the JWKS file; the HS256 secret is for development only",
			s.env("_JWKS_FILE"), s.env("_SECRET"))
	case s.jwksFile == "" && len(s.secret) == 0:
		return fmt.Errorf("%s=token needs %s (the token verification keys, as ledgerd's) or, for development only, an HS256 secret in %s (or %s=none on loopback)",
			s.env(""), s.env("_JWKS_FILE"), s.env("_SECRET"), s.env(""))
	case len(s.secret) > 0 && len(s.secret) < token.MinSecretLength:
		return fmt.Errorf("%s: at least %d bytes are required", s.env("_SECRET"), token.MinSecretLength)
	}
	if s.issuer == "" || s.audience == "" {
		return fmt.Errorf("%s and %s must not be empty", s.env("_ISSUER"), s.env("_AUDIENCE"))
	}
	if s.reload < 100*time.Millisecond || s.reload > time.Hour {
		return fmt.Errorf("%s %v: must be in [100ms, 1h]", s.env("_JWKS_RELOAD_INTERVAL"), s.reload)
	}
	return nil
}

// verifier returns the token verifier (nil with authNone) and, for a JWKS
// file, watches it until ctx ends; wg waits for the watcher.
func (s authSettings) verifier(ctx context.Context, log *zap.Logger, wg *sync.WaitGroup) (*token.Verifier, error) {
	switch {
	case s.mode == authNone:
		log.Warn("DEVELOPMENT MODE: the API is served WITHOUT AUTHENTICATION (" + s.env("") + "=none); anyone who reaches it acts on every account")
		return nil, nil
	case len(s.secret) > 0:
		log.Warn("DEVELOPMENT ONLY: tokens are verified with the HS256 secret of " + s.env("_SECRET") +
			"; whoever knows it can mint any role. Use " + s.env("_JWKS_FILE") + " in production")
		return token.NewVerifier(token.VerifierOptions{DevSecret: s.secret, Issuer: s.issuer, Audience: s.audience})
	}
	ks, err := token.LoadJWKS(s.jwksFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.env("_JWKS_FILE"), err)
	}
	v, err := token.NewVerifier(token.VerifierOptions{Keys: ks, Issuer: s.issuer, Audience: s.audience})
	if err != nil {
		return nil, err
	}
	log.Info("token verification keys loaded", zap.String("jwks_file", s.jwksFile), zap.Strings("kids", ks.IDs()))
	wg.Go(func() {
		token.WatchJWKS(ctx, s.jwksFile, s.reload, v, func(ks *token.KeySet, err error) {
			if err != nil {
				log.Error("token verification keys not reloaded; the previous ones stay in use", zap.Error(err))
				return
			}
			log.Info("token verification keys reloaded", zap.Strings("kids", ks.IDs()))
		})
	})
	return v, nil
}

// requireLoopback refuses a listen address reachable from elsewhere.
func requireLoopback(addr string) error {
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
