package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/consumer/consumertest"
	"github.com/creditledger/creditledger/internal/invoicing"
	"github.com/creditledger/creditledger/internal/ledgertest"
	"github.com/creditledger/creditledger/internal/token"
)

// testClient has a connection pool of its own (.golangci.yml's forbidigo
// rule says why tests need one).
var testClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}

const ws = "agency-1"

// started is a run in progress.
type started struct {
	url  string
	stop func() error
}

// start runs the service in-process and waits for its "listening" log line.
func start(t *testing.T, env map[string]string) started {
	t.Helper()
	r := consumertest.Start(t, run, []string{"--http-addr", "127.0.0.1:0"}, env)
	return started{url: r.URL, stop: r.Stop}
}

// keys returns a fresh operators' key (admins and services) and its JWKS file.
func keys(t *testing.T) (token.SigningKey, string) {
	t.Helper()
	return consumertest.NewOpsKey(t)
}

func mint(t *testing.T, k token.SigningKey, role token.Role) string {
	t.Helper()
	return consumertest.MintWith(t, k, role, ws, "")
}

// bearer is the token the requests of a test carry ("" for none).
func post(t *testing.T, tok, url string, body, out any) (int, error) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(t.Context(), "POST", url, bytes.NewReader(b))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := testClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if out != nil {
		_ = json.NewDecoder(res.Body).Decode(out)
	}
	return res.StatusCode, nil
}

func get(t *testing.T, tok, url string, out any) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	_ = json.NewDecoder(res.Body).Decode(out)
	return res.StatusCode
}

// Not parallel: it replaces the package's exit function.
func TestCrashAfterDebitHookAndReconciliationOnStart(t *testing.T) {
	f := ledgertest.Start(t)
	f.SetEnabled(t, ws, true)
	f.SetRate(t, ws, "USD", "10")
	f.Fund(t, ws, "client-1", 100)
	k, jwks := keys(t)
	svc := mint(t, k, token.RoleService)
	env := map[string]string{"LEDGER_ADDR": f.Addr, "INVOICING_DB": filepath.Join(t.TempDir(), "inv.db"), "INVOICING_AUTH_JWKS_FILE": jwks}

	exited := make(chan int, 1)
	exit = func(code int) {
		exited <- code
		panic(http.ErrAbortHandler) // the process "dies": the response is never written
	}
	t.Cleanup(func() { exit = func(int) { panic("exit after test") } })

	crashEnv := map[string]string{"INVOICING_CRASH_AFTER_DEBIT": "1"}
	for k, v := range env {
		crashEnv[k] = v
	}
	s := start(t, crashEnv)
	var inv invoicing.Invoice
	if code, err := post(t, "", s.url+"/v1/workspaces/"+ws+"/invoices", invoicing.NewInvoice{Account: "client-1"}, nil); err != nil || code != 401 {
		t.Fatalf("create without a token: %d %v, want 401", code, err)
	}
	if code, err := post(t, svc, s.url+"/v1/workspaces/"+ws+"/invoices", invoicing.NewInvoice{
		Account: "client-1", Number: "INV-9",
		Amount: invoicing.Money{CurrencyCode: "USD", Units: 2},
	}, &inv); err != nil || code != 201 {
		t.Fatalf("create: %d %v", code, err)
	}
	if _, err := post(t, svc, s.url+"/v1/workspaces/"+ws+"/invoices/"+inv.ID+"/pay-with-credit", nil, nil); err == nil {
		t.Fatal("pay answered; want the connection dropped by the crash")
	}
	if code := <-exited; code != 3 {
		t.Fatalf("exit code %d, want 3", code)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if txs := f.Transactions(t, ws, "client-1"); len(txs) != 2 || txs[1].GetType() != pb.TransactionType_TRANSACTION_TYPE_OUT {
		t.Fatalf("ledger entries %v, want the fund and one debit", txs)
	}

	s = start(t, env) // listening only after the start-up reconciliation
	var got invoicing.Invoice
	if code := get(t, svc, s.url+"/v1/workspaces/"+ws+"/invoices/"+inv.ID, &got); code != 200 || got.Status != invoicing.StatusPaid {
		t.Fatalf("after restart: HTTP %d %+v, want PAID", code, got)
	}
	txs := f.Transactions(t, ws, "client-1")
	if len(txs) != 2 || got.TransactionID != txs[1].GetId() || txs[1].GetReference() != "invoice:INV-9" {
		t.Errorf("invoice %+v, ledger %v: want exactly one debit, the invoice's", got, txs)
	}
	if err := s.stop(); err != nil {
		t.Errorf("graceful stop: %v", err)
	}
}

func TestAuthModes(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	tokFile := filepath.Join(t.TempDir(), "ledger-token")
	if err := os.WriteFile(tokFile, []byte("ledger-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := strings.Repeat("d", 32)
	devTok, err := token.MintDev([]byte(secret), token.New(token.DefaultIssuer, token.DefaultAudience, token.RoleAdmin, "a", ws, "",
		token.RoleScopes(token.RoleAdmin), time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		env      map[string]string
		tok      string
		anon, ok int
	}{
		{"development HS256 secret", map[string]string{"INVOICING_AUTH_SECRET": secret, "LEDGER_TOKEN_FILE": tokFile}, devTok, 401, 200},
		{"none, on loopback", map[string]string{"INVOICING_AUTH": "none"}, "", 200, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"LEDGER_ADDR": f.Addr, "INVOICING_DB": filepath.Join(t.TempDir(), "inv.db")}
			for k, v := range tt.env {
				env[k] = v
			}
			s := start(t, env)
			var out any
			if code := get(t, "", s.url+"/v1/workspaces/"+ws+"/invoices", &out); code != tt.anon {
				t.Errorf("without a token: HTTP %d, want %d", code, tt.anon)
			}
			if code := get(t, tt.tok, s.url+"/v1/workspaces/"+ws+"/invoices", &out); code != tt.ok {
				t.Errorf("with a token: HTTP %d, want %d", code, tt.ok)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	_, jwks := keys(t)
	base := func(kv ...string) map[string]string {
		m := map[string]string{"LEDGER_ADDR": "x:1", "INVOICING_AUTH_JWKS_FILE": jwks}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no ledger address", nil, nil, "ledger address is required"},
		{"bad interval", []string{"--reconcile-interval", "soon"}, base(), "reconcile interval"},
		{"stray argument", []string{"serve"}, base(), "unexpected arguments"},
		{"token flag is gone", []string{"--ledger-token", "t"}, base(), "flag provided but not defined"},
		{"no token keys", nil, base("INVOICING_AUTH_JWKS_FILE", ""), "INVOICING_AUTH_JWKS_FILE"},
		{"keys and a dev secret", nil, base("INVOICING_AUTH_SECRET", strings.Repeat("s", 32)), "both set"},
		{"short dev secret", nil, base("INVOICING_AUTH_JWKS_FILE", "", "INVOICING_AUTH_SECRET", "short"), "at least 32 bytes"},
		{"auth none on every interface", []string{"--http-addr", "0.0.0.0:8082"}, base("INVOICING_AUTH", "none"), "loopback"},
		{"unknown auth mode", nil, base("INVOICING_AUTH", "off"), "must be token or none"},
		{"ledger token twice", nil, base("LEDGER_TOKEN", "a", "LEDGER_TOKEN_FILE", "/x"), "both set"},
		{"empty issuer", []string{"--auth-issuer", ""}, base(), "must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := run(t.Context(), tt.args, func(k string) string { return tt.env[k] }, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	if err := run(t.Context(), []string{"--help"}, func(string) string { return "" }, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
}

// The running service follows the ledger's events of the workspaces it
// has invoices in, with its own ledger token.
func TestFollowsTheLedgersEvents(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t, ledgertest.WithAuth())
	ledgerTok := f.ServiceToken(t, ws)
	k, jwks := keys(t)
	env := map[string]string{
		"LEDGER_ADDR": f.Addr, "LEDGER_TOKEN": ledgerTok, "INVOICING_DB": filepath.Join(t.TempDir(), "inv.db"),
		"INVOICING_AUTH_JWKS_FILE": jwks,
	}
	s := start(t, env)
	if code, err := post(t, mint(t, k, token.RoleService), s.url+"/v1/workspaces/"+ws+"/invoices", invoicing.NewInvoice{
		Account: "client-1", Amount: invoicing.Money{CurrencyCode: "USD", Units: 2},
	}, nil); err != nil || code != 201 {
		t.Fatalf("create: %d %v", code, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(f.Calls("WatchEvents")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no watch of the invoice's workspace")
		}
		time.Sleep(10 * time.Millisecond)
	}
	w := f.Calls("WatchEvents")[0]
	req := w.Request.(*pb.WatchEventsRequest)
	if w.Authorization != "Bearer "+ledgerTok || req.GetWorkspace() != ws || !slices.Equal(req.GetTypes(), invoicing.EventTypes) {
		t.Errorf("watch %+v %v", w, req)
	}
}
