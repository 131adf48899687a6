package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/creditledger/creditledger/internal/consumer/consumertest"
)

// testClient has a connection pool of its own (.golangci.yml's forbidigo
// rule says why tests need one).
var testClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}

// start runs stripe-dev in-process and returns its address once it logged
// "listening", with what it printed.
func start(t *testing.T, args []string, env map[string]string) (string, *consumertest.SyncBuffer) {
	t.Helper()
	r := consumertest.Start(t, run, args, env)
	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Errorf("stripe-dev stopped with %v", err)
		}
	})
	return r.Addr, r.Stdout
}

func TestServesWithTheGivenKeyAndPrintsWhatTheCheckoutNeeds(t *testing.T) {
	t.Parallel()
	addr, stdout := start(t, []string{"--addr", "127.0.0.1:0", "--webhook-url", "http://127.0.0.1:1/webhooks/payments"},
		map[string]string{"STRIPE_DEV_SECRET_KEY": "sk_test_given", "STRIPE_DEV_WEBHOOK_SECRET": "whsec_given"})
	out := stdout.String()
	for _, want := range []string{"no real payment", "CHECKOUT_STRIPE_API_URL=http://" + addr, "events go to http://127.0.0.1:1/webhooks/payments"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "whsec_given") || strings.Contains(out, "sk_test_given") {
		t.Errorf("stdout shows a secret it was given:\n%s", out)
	}
	for k, want := range map[string]int{"sk_test_given": 200, "sk_test_other": 401} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+addr+"/v1/events", nil)
		req.Header.Set("Authorization", "Bearer "+k)
		res, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("key %s: HTTP %d, want %d", k, res.StatusCode, want)
		}
	}
}

func TestPrintsTheWebhookSecretItMadeUp(t *testing.T) {
	t.Parallel()
	_, stdout := start(t, []string{"--addr", "127.0.0.1:0"}, nil)
	if out := stdout.String(); !strings.Contains(out, "webhook signing secret (CHECKOUT_STRIPE_WEBHOOK_SECRET): whsec_") ||
		!strings.Contains(out, "no --webhook-url") {
		t.Errorf("stdout:\n%s", out)
	}
}

func TestVersionAndConfigErrors(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(t.Context(), []string{"--version"}, func(string) string { return "" }, &out, io.Discard); !errors.Is(err, flag.ErrHelp) ||
		!strings.HasPrefix(out.String(), "stripe-dev ") {
		t.Errorf("--version: %q %v", out.String(), err)
	}
	out.Reset()
	if err := run(t.Context(), []string{"--help"}, func(string) string { return "" }, &out, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
	help := strings.Join(strings.Fields(out.String()), " ")
	wants := []string{
		"Usage: stripe-dev", "no real payment", "--addr", "$STRIPE_DEV_ADDR", "(default 127.0.0.1:12111)",
		"--webhook-url", "$STRIPE_DEV_WEBHOOK_URL", "--secret-key", "$STRIPE_DEV_SECRET_KEY[_FILE]", "--webhook-secret",
		"$STRIPE_DEV_WEBHOOK_SECRET[_FILE]", "--public-url", "$STRIPE_DEV_PUBLIC_URL", "--version",
	}
	for _, want := range wants {
		if !strings.Contains(help, want) {
			t.Errorf("--help lacks %q:\n%s", want, out.String())
		}
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"every interface", []string{"--addr", "0.0.0.0:12111"}, nil, "loopback"},
		{"a live key", []string{"--addr", "127.0.0.1:0", "--secret-key", "sk_live_x"}, nil, "test key"},
		{"a bad webhook URL", []string{"--addr", "127.0.0.1:0", "--webhook-url", "localhost:8081"}, nil, "webhook URL"},
		{"a secret twice", nil, map[string]string{"STRIPE_DEV_WEBHOOK_SECRET": "a", "STRIPE_DEV_WEBHOOK_SECRET_FILE": "/x"}, "both set"},
		{"an argument", []string{"serve"}, nil, "unexpected arguments"},
		{"a live key from a file's variable twice", nil, map[string]string{"STRIPE_DEV_SECRET_KEY": "sk_live_x", "STRIPE_DEV_SECRET_KEY_FILE": "/x"}, "both set"},
		{"a live key from the environment", []string{"--addr", "127.0.0.1:0"}, map[string]string{"STRIPE_DEV_SECRET_KEY": "sk_live_x"}, "test key"},
	}
	for _, tt := range tests {
		err := run(t.Context(), tt.args, func(k string) string { return tt.env[k] }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want %q", tt.name, err, tt.want)
		}
	}
}
