package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/fakeledger"
	"github.com/creditledger/creditledger/internal/invoicing"
)

const ws = "agency-1"

// started is a run in progress.
type started struct {
	url  string
	stop func() error
}

// start runs the service in-process and waits for its "listening" log line.
func start(t *testing.T, env map[string]string) started {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"--http-addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, io.Discard, pw)
		_ = pw.Close()
		done <- err
	}()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var line struct {
				Msg      string `json:"msg"`
				HTTPAddr string `json:"http_addr"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				addr <- line.HTTPAddr
			}
		}
		close(addr)
		_, _ = io.Copy(io.Discard, pr)
	}()
	a, ok := <-addr
	if !ok {
		cancel()
		t.Fatalf("invoicing did not start: %v", <-done)
	}
	var stopped bool
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })
	return started{url: "http://" + a, stop: stop}
}

func post(t *testing.T, url string, body, out any) (int, error) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(t.Context(), "POST", url, bytes.NewReader(b))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if out != nil {
		_ = json.NewDecoder(res.Body).Decode(out)
	}
	return res.StatusCode, nil
}

func get(t *testing.T, url string, out any) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	_ = json.NewDecoder(res.Body).Decode(out)
	return res.StatusCode
}

// Not parallel: it replaces the package's exit function.
func TestCrashAfterDebitHookAndReconciliationOnStart(t *testing.T) {
	f := fakeledger.Start(t)
	f.SetEnabled(ws, true)
	f.SetRate(ws, "USD", "10")
	f.Fund(ws, "client-1", 100)
	env := map[string]string{"LEDGER_ADDR": f.Addr, "INVOICING_DB": filepath.Join(t.TempDir(), "inv.db")}

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
	if code, err := post(t, s.url+"/v1/workspaces/"+ws+"/invoices", invoicing.NewInvoice{
		Account: "client-1", Number: "INV-9",
		Amount: invoicing.Money{CurrencyCode: "USD", Units: 2},
	}, &inv); err != nil || code != 201 {
		t.Fatalf("create: %d %v", code, err)
	}
	if _, err := post(t, s.url+"/v1/workspaces/"+ws+"/invoices/"+inv.ID+"/pay-with-credit", nil, nil); err == nil {
		t.Fatal("pay answered; want the connection dropped by the crash")
	}
	if code := <-exited; code != 3 {
		t.Fatalf("exit code %d, want 3", code)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if txs := f.Transactions(ws, "client-1"); len(txs) != 2 || txs[1].GetType() != pb.TransactionType_TRANSACTION_TYPE_OUT {
		t.Fatalf("ledger entries %v, want the fund and one debit", txs)
	}

	s = start(t, env) // listening only after the start-up reconciliation
	var got invoicing.Invoice
	if code := get(t, s.url+"/v1/workspaces/"+ws+"/invoices/"+inv.ID, &got); code != 200 || got.Status != invoicing.StatusPaid {
		t.Fatalf("after restart: HTTP %d %+v, want PAID", code, got)
	}
	txs := f.Transactions(ws, "client-1")
	if len(txs) != 2 || got.TransactionID != txs[1].GetId() || txs[1].GetReference() != "invoice:INV-9" {
		t.Errorf("invoice %+v, ledger %v: want exactly one debit, the invoice's", got, txs)
	}
	if err := s.stop(); err != nil {
		t.Errorf("graceful stop: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no ledger address", nil, nil, "ledger address is required"},
		{"bad interval", []string{"--reconcile-interval", "soon"}, map[string]string{"LEDGER_ADDR": "x:1"}, "reconcile interval"},
		{"stray argument", []string{"serve"}, map[string]string{"LEDGER_ADDR": "x:1"}, "unexpected arguments"},
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
