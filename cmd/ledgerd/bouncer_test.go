package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/creditledger/creditledger/internal/config"
	"github.com/creditledger/creditledger/internal/pgtest"
)

// TestServeThroughPgBouncer: behind pgbouncer in transaction mode, `ledgerd
// migrate` (as the owner) works as is; `ledgerd serve` refuses to start
// until told about the pooler, naming the setting, then serves the
// end-to-end scenario as the runtime role, and `ledgerd verify` passes.
func TestServeThroughPgBouncer(t *testing.T) {
	t.Parallel()
	owner, _ := postgresURLs(t)
	b := pgtest.Shared(t).Bouncer(t)
	env := map[string]string{
		"LEDGER_AUTH": "token", "LEDGER_AUTH_SECRET": e2eSecret,
		"LEDGER_PAGE_TOKEN_KEY":       "000102030405060708090a0b0c0d0e0f",
		"LEDGER_MIGRATE_DATABASE_URL": b.URL(owner), "LEDGER_DATABASE_URL": b.URL(pgtest.RuntimeURL(owner)),
	}
	getenv := func(k string) string { return env[k] }
	var logs bytes.Buffer
	if err := run(context.Background(), []string{"migrate"}, getenv, io.Discard, &logs); err != nil {
		t.Fatalf("ledgerd migrate through pgbouncer: %v\n%s", err, logs.String())
	}
	err := run(context.Background(), []string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, getenv, io.Discard, &logs)
	if err == nil || !strings.Contains(err.Error(), config.EnvDatabasePooler+"=transaction") {
		t.Fatalf("serve through pgbouncer without %s: %v, want a refusal naming the setting", config.EnvDatabasePooler, err)
	}
	env[config.EnvDatabasePooler] = "transaction"
	d := startLedgerd(t, nil, env)
	scenario(t, d)
	assertVerifies(t, getenv)
}
