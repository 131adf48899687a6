package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledgertest"
	"github.com/creditledger/creditledger/ledgerclient"
)

const ws = "agency-1"

// ctl runs ledgerctl in-process against addr and returns stdout, stderr
// (with the line main would print) and the exit code.
func ctl(t testing.TB, addr string, args ...string) (string, string, int) {
	t.Helper()
	env := map[string]string{"LEDGER_ADDR": addr, "LEDGER_WORKSPACE": ws}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), append([]string{"--timeout", "5s"}, args...), func(k string) string { return env[k] }, &stdout, &stderr)
	if err != nil {
		stderr.WriteString(describe(err) + "\n")
	}
	return stdout.String(), stderr.String(), exitCode(err)
}

func mustCtl(t testing.TB, addr string, args ...string) string {
	t.Helper()
	out, errOut, code := ctl(t, addr, args...)
	if code != 0 {
		t.Fatalf("ledgerctl %q: exit %d: %s", args, code, errOut)
	}
	return out
}

func TestAgencyAndOperatorFlow(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	a := f.Addr

	if out := mustCtl(t, a, "settings", "set", "--credit-payments", "on"); !strings.Contains(out, "credit payments enabled") {
		t.Errorf("settings set: %q", out)
	}
	if out := mustCtl(t, a, "settings", "get"); !strings.Contains(out, "enabled") {
		t.Errorf("settings get: %q", out)
	}
	mustCtl(t, a, "packages", "create", "--id", "starter", "--name", "Starter", "--credits", "100", "--price", "USD 10")
	mustCtl(t, a, "packages", "create", "--id", "old", "--name", "Old", "--credits", "5", "--price", "USD:0.50")
	mustCtl(t, a, "packages", "archive", "old")
	if out := mustCtl(t, a, "packages", "list"); !strings.Contains(out, "starter") || strings.Contains(out, "old") || !strings.Contains(out, "USD 10") {
		t.Errorf("packages list: %q", out)
	}
	if out := mustCtl(t, a, "packages", "list", "--all"); !strings.Contains(out, "old") {
		t.Errorf("packages list --all: %q", out)
	}
	if out := mustCtl(t, a, "rates", "set", "usd", "9.5"); !strings.Contains(out, "1 USD = 9.5 credits") {
		t.Errorf("rates set: %q", out)
	}
	if out := mustCtl(t, a, "rates", "list"); !strings.Contains(out, "USD") || !strings.Contains(out, "9.5") {
		t.Errorf("rates list: %q", out)
	}
	if out := mustCtl(t, a, "quote", "USD", "3.51"); !strings.Contains(out, "= 34 credits") { // 33.345 → 34
		t.Errorf("quote: %q", out)
	}

	// Movements: a credit from a package, a refund, a debit; repeating a
	// command with its key replays.
	mustCtl(t, a, "credit", "--account", "client-1", "--package", "starter", "--idempotency-key", "k1", "--reference", "manual:1")
	out := mustCtl(t, a, "credit", "--account", "client-1", "--package", "starter", "--idempotency-key", "k1", "--reference", "manual:1")
	if !strings.Contains(out, "replayed") || !strings.Contains(out, "balance 100") {
		t.Errorf("repeated credit: %q", out)
	}
	mustCtl(t, a, "credit", "--account", "client-1", "--amount", "5", "--kind", "refund", "--idempotency-key", "k2")
	if out := mustCtl(t, a, "debit", "--account", "client-1", "--amount", "30", "--kind", "invoice_payment",
		"--idempotency-key", "k3", "--reference", "invoice:INV-1"); !strings.Contains(out, "posted OUT 30 credits (INVOICE_PAYMENT)") || !strings.Contains(out, "balance 75") {
		t.Errorf("debit: %q", out)
	}
	_, errOut, code := ctl(t, a, "debit", "--account", "client-1", "--amount", "1000", "--idempotency-key", "k4")
	if code != 1 || !strings.Contains(errOut, "refused: INSUFFICIENT_CREDITS") || !strings.Contains(errOut, "balance=75") {
		t.Errorf("debit over the balance: exit %d %q", code, errOut)
	}

	if out := mustCtl(t, a, "balance", "--account", "client-1"); !strings.Contains(out, "75 credits") || !strings.Contains(out, "version") {
		t.Errorf("balance: %q", out)
	}
	if out := mustCtl(t, a, "balance", "--account", "client-1", "--min-version", "3"); !strings.Contains(out, "75 credits") {
		t.Errorf("balance --min-version 3: %q", out)
	}
	if _, errOut, code := ctl(t, a, "balance", "--account", "client-1", "--min-version", "4"); code != 1 || !strings.Contains(errOut, "VERSION_MISMATCH") {
		t.Errorf("balance --min-version above the account's version: exit %d %q, want 1 and VERSION_MISMATCH", code, errOut)
	}
	hist := mustCtl(t, a, "history", "--account", "client-1")
	lines := strings.Split(strings.TrimSpace(hist), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "DATE") || !strings.Contains(lines[1], "Out") ||
		!strings.Contains(lines[1], "invoice:INV-1") || !strings.Contains(lines[1], "-30") || !strings.HasSuffix(lines[1], "75") {
		t.Errorf("history:\n%s", hist)
	}
	if out := mustCtl(t, a, "history", "--account", "client-1", "--type", "out"); strings.Count(out, "\n") != 2 {
		t.Errorf("history --type out:\n%s", out)
	}

	// history --csv is the server's export: see TestHoldsReversalsStatementsExport.

	if out := mustCtl(t, a, "accounts"); !strings.Contains(out, "client-1") || !strings.Contains(out, "75") {
		t.Errorf("accounts: %q", out)
	}
}

func dialLedger(t testing.TB, addr string) *ledgerclient.Client {
	t.Helper()
	c, err := ledgerclient.Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestRequestsQueue(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	a := f.Addr
	f.SetEnabled(t, ws, true)
	mustCtl(t, a, "packages", "create", "--id", "pro", "--name", "Pro", "--credits", "500", "--price", "USD 45")
	submit := func(account, key string) string {
		t.Helper()
		c := dialLedger(t, a)
		r, err := c.SubmitRequest(t.Context(), &pb.SubmitRequestRequest{
			Workspace: ws, Account: account, PackageId: "pro",
			PaymentMethod: pb.PaymentMethod_PAYMENT_METHOD_BANK_TRANSFER, PaymentReference: "SEPA-" + key, IdempotencyKey: key,
		})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetRequest().GetId()
	}
	r1, r2 := submit("client-1", "s1"), submit("client-2", "s2")

	out := mustCtl(t, a, "requests", "list")
	if !strings.Contains(out, r1) || !strings.Contains(out, r2) || !strings.Contains(out, "BANK_TRANSFER") || !strings.Contains(out, "PENDING") {
		t.Errorf("requests list:\n%s", out)
	}
	// Flags after the positional argument work too.
	if out := mustCtl(t, a, "requests", "accept", r1, "--by", "admin@agency"); !strings.Contains(out, "accepted") || !strings.Contains(out, "posted IN 500") {
		t.Errorf("accept: %q", out)
	}
	if out := mustCtl(t, a, "requests", "accept", r1, "--by", "admin@agency"); !strings.Contains(out, "replayed") {
		t.Errorf("accept again: %q", out)
	}
	mustCtl(t, a, "requests", "reject", "--by", "admin@agency", "--reason", "no transfer received", r2)
	_, errOut, code := ctl(t, a, "requests", "accept", r2, "--by", "admin@agency")
	if code != 1 || !strings.Contains(errOut, "REQUEST_ALREADY_DECIDED") {
		t.Errorf("accepting a rejected request: exit %d %q", code, errOut)
	}
	if out := mustCtl(t, a, "requests", "list"); strings.Contains(out, r1) || strings.Contains(out, r2) {
		t.Errorf("pending queue after decisions:\n%s", out)
	}
	if out := mustCtl(t, a, "requests", "list", "--status", "all", "--account", "client-2"); !strings.Contains(out, "REJECTED") {
		t.Errorf("client-2's requests:\n%s", out)
	}
	if bal, _ := f.Balance(t, ws, "client-1"); bal != 500 {
		t.Errorf("client-1 balance %d", bal)
	}
	if bal, _ := f.Balance(t, ws, "client-2"); bal != 0 {
		t.Errorf("client-2 balance %d", bal)
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no command", nil, 2, "no command"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"unknown flag", []string{"balance", "--acount", "a"}, 2, "flag provided but not defined"},
		{"missing account", []string{"balance"}, 2, "--account is required"},
		{"debit without key", []string{"debit", "--account", "a", "--amount", "1"}, 2, "--idempotency-key"},
		{"credit with amount and package", []string{"credit", "--account", "a", "--amount", "1", "--package", "p", "--idempotency-key", "k"}, 2, "--amount"},
		{"bad price", []string{"quote", "3.51"}, 2, "USD 3.51"},
		{"bad kind", []string{"history", "--account", "a", "--kind", "gift"}, 2, "unknown kind"},
		{"extra argument", []string{"accounts", "x"}, 2, "unexpected arguments"},
		{"refused: disabled", []string{"debit", "--account", "a", "--amount", "1", "--idempotency-key", "k"}, 1, "refused: CREDIT_PAYMENTS_DISABLED"},
		{"refused: no rate", []string{"quote", "EUR 1"}, 1, "refused: NO_CONVERSION_RATE"},
		{"not found", []string{"packages", "archive", "nope"}, 1, "refused: NOT_FOUND"},
		{"help", []string{"--help"}, 0, ""},
		{"command help", []string{"requests", "accept", "--help"}, 0, ""},
		{"help command", []string{"help", "history"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, errOut, code := ctl(t, f.Addr, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.stderr) {
				t.Errorf("exit %d, stderr %q; want %d containing %q", code, errOut, tt.code, tt.stderr)
			}
		})
	}
}

func TestUnavailableExitsThree(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	for range 5 {
		f.InjectFault("GetBalance", ledgertest.Fault{Code: codes.Unavailable})
	}
	_, errOut, code := ctl(t, f.Addr, "balance", "--account", "a")
	if code != 3 || !strings.Contains(errOut, "unavailable") {
		t.Errorf("exit %d %q, want 3", code, errOut)
	}
}

func TestHelpGoesToStdout(t *testing.T) {
	t.Parallel()
	out, _, code := ctl(t, "127.0.0.1:1", "history", "--help")
	if code != 0 || !strings.Contains(out, "usage: ledgerctl history") || !strings.Contains(out, "--csv") {
		t.Errorf("exit %d, stdout %q", code, out)
	}
}

func TestWorkspaceIsRequired(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"accounts"}, func(string) string { return "" }, &stdout, &stderr)
	if exitCode(err) != 2 || !strings.Contains(describe(err), "workspace is required") {
		t.Errorf("err %v", err)
	}
}

func TestTokenFromEnvironment(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t, ledgertest.WithAuth())
	env := map[string]string{"LEDGER_ADDR": f.Addr, "LEDGER_WORKSPACE": ws, "LEDGER_TOKEN": f.AdminToken(t, ws)}
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"settings", "get"}, func(k string) string { return env[k] }, &stdout, &stderr); err != nil {
		t.Fatalf("with token: %v", err)
	}
	_, errOut, code := ctl(t, f.Addr, "settings", "get")
	if code != 1 || !strings.Contains(errOut, "UNAUTHENTICATED") {
		t.Errorf("without token: exit %d %q", code, errOut)
	}
}

func TestVerifyRunsLedgerdVerify(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ok := script("ledgerd-ok", `echo "args: $*"; echo "data dir: $LEDGER_DATA_DIR"`)
	bad := script("ledgerd-bad", `echo "1 problem" >&2; exit 1`)

	out, _, code := ctl(t, "127.0.0.1:1", "verify", "--ledgerd", ok, "--", "--json")
	if code != 0 || !strings.Contains(out, "args: verify --json") {
		t.Errorf("verify ok: exit %d %q", code, out)
	}
	_, errOut, code := ctl(t, "127.0.0.1:1", "verify", "--ledgerd", bad)
	if code != 1 || !strings.Contains(errOut, "1 problem") || !strings.Contains(errOut, "ledgerd verify failed") {
		t.Errorf("verify with problems: exit %d %q", code, errOut)
	}
	_, errOut, code = ctl(t, "127.0.0.1:1", "verify", "--ledgerd", filepath.Join(dir, "missing"))
	if code != 3 || !strings.Contains(errOut, "ledgerd verify") {
		t.Errorf("verify without ledgerd: exit %d %q", code, errOut)
	}
}
