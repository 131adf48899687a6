package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/creditledger/creditledger/internal/config"
	"github.com/creditledger/creditledger/internal/grpcserver"
)

// maxTokenTTL keeps minted tokens short-lived: this command is for
// development and tests, not an identity provider.
const maxTokenTTL = 30 * 24 * time.Hour

// tokenCmd mints a bearer token signed with LEDGER_AUTH_SECRET and prints
// it on stdout.
func tokenCmd(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ledgerd token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sub := fs.String("sub", "", "subject: the calling service, admin or client (required)")
	ws := fs.String("workspace", "", "workspace the token is valid for (required)")
	acct := fs.String("account", "", "restrict the token to one client account")
	known := []string{
		grpcserver.ScopeLedgerWrite, grpcserver.ScopeLedgerRead, grpcserver.ScopeRequestsSubmit,
		grpcserver.ScopeRequestsDecide, grpcserver.ScopeSettingsAdmin,
	}
	scopes := fs.String("scopes", grpcserver.ScopeLedgerRead, "comma-separated scopes: "+strings.Join(known, ", "))
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token (at most 720h)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *sub == "" || *ws == "" {
		return errors.New("token: -sub and -workspace are required")
	}
	if *ttl <= 0 || *ttl > maxTokenTTL {
		return fmt.Errorf("token: -ttl must be in (0, %v]", maxTokenTTL)
	}
	secret := getenv(config.EnvAuthSecret)
	if secret == "" {
		return fmt.Errorf("token: %s is not set", config.EnvAuthSecret)
	}
	var list []string
	for _, s := range strings.Split(*scopes, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !slices.Contains(known, s) {
			return fmt.Errorf("token: unknown scope %q", s)
		}
		list = append(list, s)
	}
	now := time.Now()
	tok, err := grpcserver.MintToken([]byte(secret), grpcserver.Claims{
		Subject: *sub, Workspace: *ws, Account: *acct, Scopes: list,
		IssuedAt: now.Unix(), ExpiresAt: now.Add(*ttl).Unix(),
	})
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}
