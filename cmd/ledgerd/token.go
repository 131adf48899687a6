package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/creditledger/creditledger/internal/config"
	"github.com/creditledger/creditledger/internal/token"
)

// envSigningKeyFile names the private JWK `ledgerd token` signs with.
const envSigningKeyFile = "LEDGER_AUTH_SIGNING_KEY_FILE" //nolint:gosec // G101: a variable's name, not a credential

// tokenCmd mints a bearer token and prints it on stdout: with a private
// key (a JWK written by `ledgerd keygen`) or, in development, with the
// HS256 secret of LEDGER_AUTH_SECRET.
func tokenCmd(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ledgerd token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sub := fs.String("sub", "", "subject: the calling service, admin or client (required)")
	ws := fs.String("workspace", "", "workspace the token is valid for (required)")
	acct := fs.String("account", "", "the client's account (required for -role client, refused otherwise)")
	role := fs.String("role", "", "client, admin or service (default: client with -account, else service)")
	scopes := fs.String("scopes", "", "comma-separated scopes (default: every scope of the role): "+strings.Join(token.Scopes, ", "))
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token (at most LEDGER_AUTH_MAX_TOKEN_LIFETIME, default 24h)")
	keyFile := fs.String("key", getenv(envSigningKeyFile), "private JWK to sign with ("+envSigningKeyFile+"); without it, the HS256 development secret of "+config.EnvAuthSecret)
	issuer := fs.String("issuer", or(getenv(config.EnvAuthIssuer), token.DefaultIssuer), "iss ("+config.EnvAuthIssuer+")")
	audience := fs.String("audience", or(getenv(config.EnvAuthAudience), token.DefaultAudience), "aud ("+config.EnvAuthAudience+")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("token: unexpected arguments: %q", fs.Args())
	}
	if *sub == "" || *ws == "" {
		return errors.New("token: -sub and -workspace are required")
	}
	maxTTL := token.DefaultMaxLifetime
	if v := getenv(config.EnvAuthMaxLifetime); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("token: %s: %q is not a duration", config.EnvAuthMaxLifetime, v)
		}
		maxTTL = d
	}
	if *ttl <= 0 || *ttl > maxTTL {
		return fmt.Errorf("token: -ttl must be in (0, %v]", maxTTL)
	}
	r := token.RoleService
	if *acct != "" {
		r = token.RoleClient
	}
	if *role != "" {
		var err error
		if r, err = token.ParseRole(*role); err != nil {
			return fmt.Errorf("token: %w", err)
		}
	}
	list := token.RoleScopes(r)
	if *scopes != "" {
		list = nil
		for _, s := range strings.Split(*scopes, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			if !slices.Contains(token.Scopes, s) {
				return fmt.Errorf("token: unknown scope %q", s)
			}
			list = append(list, s)
		}
	}
	c := token.New(*issuer, *audience, r, *sub, *ws, *acct, list, time.Now(), *ttl)
	var tok string
	var err error
	if *keyFile != "" {
		var k token.SigningKey
		if k, err = token.LoadSigningKey(*keyFile); err != nil {
			return fmt.Errorf("token: %w", err)
		}
		tok, err = token.Mint(k, c)
	} else {
		secret := getenv(config.EnvAuthSecret)
		if secret == "" {
			return fmt.Errorf("token: give -key (or %s), or for development set %s", envSigningKeyFile, config.EnvAuthSecret)
		}
		tok, err = token.MintDev([]byte(secret), c)
	}
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

// keygenCmd makes a signing key: the private JWK goes to -out (mode 0600,
// never overwritten), and its public half is added to the JWKS file ledgerd
// verifies with (-jwks, created if absent). Rotation is: keygen a new kid
// into the same JWKS, switch the minter to the new key, and remove the old
// kid from the JWKS once its last tokens have expired.
func keygenCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ledgerd keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	alg := fs.String("alg", token.AlgEdDSA, "EdDSA (Ed25519) or ES256 (P-256)")
	kid := fs.String("kid", "", "key id (required), e.g. portal-2026-12")
	roles := fs.String("roles", "", "comma-separated roles the key may mint: client, admin, service (required)")
	out := fs.String("out", "", "file for the private JWK (required; created with mode 0600)")
	jwks := fs.String("jwks", "", "JWKS file to add the public key to (created if absent)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *kid == "" || *roles == "" || *out == "" {
		return errors.New("keygen: -kid, -roles and -out are required")
	}
	var rs []token.Role
	for _, n := range strings.Split(*roles, ",") {
		r, err := token.ParseRole(strings.TrimSpace(n))
		if err != nil {
			return fmt.Errorf("keygen: %w", err)
		}
		rs = append(rs, r)
	}
	k, err := token.GenerateKey(*alg, *kid, rs)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	var set []byte
	if *jwks != "" {
		if set, err = token.AddToJWKS(*jwks, k); err != nil {
			return fmt.Errorf("keygen: %w", err)
		}
	}
	priv, err := k.PrivateJWK()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // G304: the operator names the file
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	if _, err := f.Write(append(priv, '\n')); err != nil {
		_ = f.Close()
		return fmt.Errorf("keygen: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	if *jwks != "" {
		if err := os.WriteFile(*jwks, append(set, '\n'), 0o644); err != nil { //nolint:gosec // G306: public keys
			return fmt.Errorf("keygen: %w", err)
		}
	}
	_, err = fmt.Fprintf(stdout, "key %s (%s, may mint %s): private key in %s%s\n", k.ID, k.Alg, *roles, *out,
		map[bool]string{true: ", public key added to " + *jwks, false: ""}[*jwks != ""])
	return err
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
