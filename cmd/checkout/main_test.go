package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creditledger/creditledger/internal/checkout"
	"github.com/creditledger/creditledger/internal/fakeledger"
)

const ws = "agency-1"

// start runs the service in-process and waits for its "listening" log line.
func start(t *testing.T, env map[string]string) (string, func() error) {
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
		t.Fatalf("checkout did not start: %v", <-done)
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })
	return "http://" + a, stop
}

func do(t *testing.T, method, url string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(t.Context(), method, url, rd)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if out != nil {
		_ = json.NewDecoder(res.Body).Decode(out)
	}
	return res.StatusCode
}

func TestServeAndRestartKeepsState(t *testing.T) {
	t.Parallel()
	f := fakeledger.Start(t)
	f.SetEnabled(ws, true)
	f.SetRate(ws, "USD", "10")
	f.Fund(ws, "client-1", 100)
	env := map[string]string{"LEDGER_ADDR": f.Addr, "CHECKOUT_DB": filepath.Join(t.TempDir(), "checkout.db"), "CHECKOUT_RECONCILE_INTERVAL": "1h"}

	url, stop := start(t, env)
	if code := do(t, "PUT", url+"/v1/workspaces/"+ws+"/services/logo", map[string]any{
		"name": "Logo", "price": checkout.Money{CurrencyCode: "USD", Units: 5}, "credit_eligible": true,
	}, nil); code != 200 {
		t.Fatalf("put service: %d", code)
	}
	var o checkout.Order
	if code := do(t, "POST", url+"/v1/workspaces/"+ws+"/accounts/client-1/orders", map[string]string{"service_id": "logo"}, &o); code != 201 || o.Status != checkout.OrderConfirmed {
		t.Fatalf("buy: %d %+v", code, o)
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}

	url, _ = start(t, env)
	var got checkout.Order
	if code := do(t, "GET", url+"/v1/workspaces/"+ws+"/orders/"+o.ID, nil, &got); code != 200 || got.Status != checkout.OrderConfirmed || got.TransactionID != o.TransactionID {
		t.Errorf("after restart: %d %+v", code, got)
	}
	var health map[string]string
	if code := do(t, "GET", url+"/healthz", nil, &health); code != 200 || health["status"] != "ok" {
		t.Errorf("healthz: %d %v", code, health)
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
		{"bad interval", nil, map[string]string{"LEDGER_ADDR": "x:1", "CHECKOUT_RECONCILE_INTERVAL": "-1s"}, "reconcile interval"},
		{"unknown flag", []string{"--port", "1"}, map[string]string{"LEDGER_ADDR": "x:1"}, "flag provided but not defined"},
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
}
