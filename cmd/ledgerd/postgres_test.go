package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/creditledger/creditledger/internal/config"
	"github.com/creditledger/creditledger/internal/pgtest"
)

// ledgerd's tests get a throwaway PostgreSQL (or LEDGER_TEST_DATABASE_URL);
// without one they fail loudly.
func TestMain(m *testing.M) { pgtest.Main(m, nil) }

// withPassword makes a test database URL connect as user with a password.
// The test clusters trust local connections, so the password is never
// checked; it is there to prove it never reaches a log line.
func withPassword(t *testing.T, raw, user, pw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, pw)
	q := u.Query()
	q.Del("user")
	u.RawQuery = q.Encode()
	return u.String()
}

// postgresURLs returns a fresh empty database's URLs: the owner's, for
// migrations, and the runtime role's, for serving.
func postgresURLs(t *testing.T) (owner, runtime string) {
	t.Helper()
	owner = pgtest.Shared(t).NewDatabase(t, "")
	return owner, pgtest.RuntimeURL(owner)
}

// TestEndToEndPostgres is the end-to-end contract on PostgreSQL: the schema
// is applied by `ledgerd migrate` as the owner (twice: the second run is a
// no-op), then the same scenario as on the embedded store, served as the
// runtime role, then `ledgerd verify`.
func TestEndToEndPostgres(t *testing.T) {
	t.Parallel()
	const pw, ownerPW = "pw-Sup3rSecret-e2e", "pw-0wnerSecret-e2e"
	owner, runtime := postgresURLs(t)
	dbURL := withPassword(t, runtime, pgtest.RuntimeRole, pw)
	migrateURL := withPassword(t, owner, "postgres", ownerPW)
	env := map[string]string{
		"LEDGER_AUTH": "token", "LEDGER_AUTH_SECRET": e2eSecret,
		"LEDGER_RATE_LIMIT_SUBJECT_WRITES": "0", // restConcurrency: one subject at full speed
		"LEDGER_PAGE_TOKEN_KEY":            "000102030405060708090a0b0c0d0e0f", "LEDGER_DATABASE_URL": dbURL,
		"LEDGER_MIGRATE_DATABASE_URL": migrateURL,
	}
	getenv := func(k string) string { return env[k] }
	var migrateLog bytes.Buffer
	for range 2 {
		if err := run(context.Background(), []string{"migrate"}, getenv, io.Discard, &migrateLog); err != nil {
			t.Fatalf("ledgerd migrate: %v\n%s", err, migrateLog.String())
		}
	}
	d := startLedgerd(t, nil, env)
	scenario(t, d)
	restConcurrency(t, d, mintToken(t, getenv, "-sub", "load", "-workspace", "acme", "-scopes", "ledger:write,ledger:read"))
	assertStoreLogged(t, d, "postgres", config.RedactURL(dbURL))
	_, raw := d.logs.all()
	for _, leak := range []string{pw, dbURL, ownerPW, migrateURL} {
		if strings.Contains(raw, leak) || strings.Contains(migrateLog.String(), leak) {
			t.Errorf("a log line holds the database password or the full URL")
		}
	}
	assertVerifies(t, getenv)
}

// assertVerifies runs `ledgerd verify` on the store and wants it clean.
func assertVerifies(t *testing.T, getenv func(string) string) {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"verify"}, getenv, &out, &errOut); err != nil {
		t.Fatalf("ledgerd verify: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "ok:") {
		t.Fatalf("ledgerd verify printed no ok line:\n%s", out.String())
	}
	t.Logf("ledgerd verify: %s", strings.TrimSpace(out.String()))
}

// restConcurrency drives the REST gateway from many clients at once: 16
// identical requests with one key post once and all answer the same
// transaction; 8 clients × 25 credits and debits (never more than the
// balance) all succeed and end with the exact balance at version 201.
func restConcurrency(t *testing.T, d *ledgerd, tok string) {
	t.Helper()
	const acct = "rest-load"
	var wg sync.WaitGroup
	ids := make([]string, 16)
	codes := make([]int, 16)
	for i := range 16 {
		wg.Go(func() {
			r := d.rest(t, "POST", "/v1/workspaces/acme/accounts/"+acct+":credit", tok, `{"amount":"500","idempotencyKey":"same-key-16"}`)
			codes[i] = r.code
			if tx, ok := r.body["transaction"].(map[string]any); ok {
				ids[i] = str(tx["id"])
			}
		})
	}
	wg.Wait()
	for i := range 16 {
		if codes[i] != 200 || ids[i] == "" || ids[i] != ids[0] {
			t.Fatalf("same key ×16 over REST: reply %d = HTTP %d, transaction %q (first %q)", i, codes[i], ids[i], ids[0])
		}
	}

	var mu sync.Mutex
	sum := int64(500)
	for w := range 8 {
		wg.Go(func() {
			for i := range 25 {
				op, amount := "credit", int64(1+(w+i)%7)
				if (w+i)%3 == 0 {
					op = "debit"
				}
				r := d.rest(t, "POST", fmt.Sprintf("/v1/workspaces/acme/accounts/%s:%s", acct, op), tok,
					fmt.Sprintf(`{"amount":"%d","idempotencyKey":"rest-%d-%d"}`, amount, w, i))
				if r.code != 200 {
					t.Errorf("%s over REST: HTTP %d %s", op, r.code, r.raw)
					return
				}
				mu.Lock()
				if op == "debit" {
					amount = -amount
				}
				sum += amount
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	b := d.rest(t, "GET", "/v1/workspaces/acme/accounts/"+acct+"/balance", tok, "")
	if b.code != 200 || b.body["balance"] != fmt.Sprint(sum) || b.body["version"] != "201" {
		t.Fatalf("after REST load: %s, want balance %d version 201", b.raw, sum)
	}
}

// TestReplicasShareOneDatabase runs two ledgerd replicas on one PostgreSQL
// database, as a deployment does: concurrent requests with one key sent to
// both post once; postings spread over both keep one unbroken chain; a page
// token minted by one replica is honoured by the other (shared key).
func TestReplicasShareOneDatabase(t *testing.T) {
	t.Parallel()
	owner, runtime := postgresURLs(t)
	env := map[string]string{
		"LEDGER_AUTH": "none", "LEDGER_PAGE_TOKEN_KEY": "0f0e0d0c0b0a09080706050403020100",
		"LEDGER_DATABASE_URL": runtime, "LEDGER_MIGRATE_DATABASE_URL": owner, "LEDGER_MIGRATE_ON_START": "true",
	}
	a := startLedgerd(t, nil, env)
	b := startLedgerd(t, nil, env)
	replicas := []*ledgerd{a, b}
	if r := a.rest(t, "PATCH", "/v1/workspaces/acme/settings", "", `{"creditPaymentsEnabled":true}`); r.code != 200 {
		t.Fatalf("settings: %d %s", r.code, r.raw)
	}

	var wg sync.WaitGroup
	ids := make([]string, 16)
	for i := range 16 {
		wg.Go(func() {
			r := replicas[i%2].rest(t, "POST", "/v1/workspaces/acme/accounts/shared:credit", "", `{"amount":"1000","idempotencyKey":"one-key-two-replicas"}`)
			if tx, ok := r.body["transaction"].(map[string]any); ok && r.code == 200 {
				ids[i] = str(tx["id"])
			} else {
				t.Errorf("credit via replica %d: %d %s", i%2, r.code, r.raw)
			}
		})
	}
	wg.Wait()
	for i := range ids {
		if ids[i] != ids[0] {
			t.Fatalf("one key posted twice across replicas: %q vs %q", ids[i], ids[0])
		}
	}

	var mu sync.Mutex
	sum := int64(1000)
	for w := range 8 {
		wg.Go(func() {
			for i := range 20 {
				op, amount := "credit", int64(1+(w*i)%5)
				if i%2 == 1 {
					op = "debit"
				}
				r := replicas[(w+i)%2].rest(t, "POST", "/v1/workspaces/acme/accounts/shared:"+op, "",
					fmt.Sprintf(`{"amount":"%d","idempotencyKey":"rep-%d-%d"}`, amount, w, i))
				if r.code != 200 {
					t.Errorf("%s via replica %d: %d %s", op, (w+i)%2, r.code, r.raw)
					return
				}
				mu.Lock()
				if op == "debit" {
					amount = -amount
				}
				sum += amount
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for i, d := range replicas {
		r := d.rest(t, "GET", "/v1/workspaces/acme/accounts/shared/balance", "", "")
		if r.body["balance"] != fmt.Sprint(sum) || r.body["version"] != "161" {
			t.Fatalf("replica %d reads %s, want balance %d at version 161", i, r.raw, sum)
		}
	}

	// Walk the history page by page, alternating replicas.
	seen, token := 0, ""
	for page := 0; ; page++ {
		path := "/v1/workspaces/acme/accounts/shared/transactions?pageSize=50"
		if token != "" {
			path += "&pageToken=" + token
		}
		r := replicas[page%2].rest(t, "GET", path, "", "")
		rows, _ := r.body["transactions"].([]any)
		if r.code != 200 {
			t.Fatalf("page %d via replica %d: %d %s", page, page%2, r.code, r.raw)
		}
		for _, row := range rows {
			if v := row.(map[string]any)["accountVersion"]; v != fmt.Sprint(161-seen) {
				t.Fatalf("entry %d has version %v, want %d", seen, v, 161-seen)
			}
			seen++
		}
		if token = str(r.body["nextPageToken"]); token == "" {
			break
		}
	}
	if seen != 161 {
		t.Fatalf("history has %d entries, want 161", seen)
	}
	assertVerifies(t, func(k string) string { return env[k] })
}

// TestServeRefusesAPrivilegedRole: serving as a role that row-level
// security does not hold (here the owner, a superuser) is refused, unless
// explicitly allowed, and then announced at error level.
func TestServeRefusesAPrivilegedRole(t *testing.T) {
	t.Parallel()
	owner, _ := postgresURLs(t)
	env := map[string]string{
		"LEDGER_AUTH": "none", "LEDGER_DATABASE_URL": owner, "LEDGER_MIGRATE_ON_START": "true",
	}
	getenv := func(k string) string { return env[k] }
	var logs bytes.Buffer
	err := run(context.Background(), []string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, getenv, io.Discard, &logs)
	if err == nil || !strings.Contains(err.Error(), "row-level security") || !strings.Contains(err.Error(), "superuser") {
		t.Fatalf("serve as the owner: %v, want a refusal", err)
	}
	// verify may run as the owner.
	assertVerifies(t, getenv)

	env["LEDGER_DB_ALLOW_PRIVILEGED_ROLE"] = "true"
	d := startLedgerd(t, nil, env)
	lines, _ := d.logs.all()
	found := false
	for _, l := range lines {
		if l["level"] == "error" && strings.Contains(fmt.Sprint(l["msg"]), "BYPASSES ROW-LEVEL SECURITY") {
			found = true
		}
	}
	if !found {
		t.Errorf("no error-level line says that row-level security is bypassed")
	}
}
