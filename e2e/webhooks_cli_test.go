package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/webhook"
)

// TestWebhooksWithLedgerctl: the agency's walk-through with the real
// binaries: an endpoint created with ledgerctl receives a credit's event,
// signed with the secret ledgerctl printed once; a failing receiver shows
// in `webhooks deliveries`; a disabled endpoint gets nothing until it is
// enabled again, then catches up; deleted, it is gone.
func TestWebhooksWithLedgerctl(t *testing.T) {
	t.Parallel()
	bin := binaries(t)
	p := startProc(t, filepath.Join(bin, exe("ledgerd")),
		[]string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"},
		envKV("LEDGER_AUTH", "none"), envKV("LEDGER_DATA_DIR", t.TempDir()), envKV("LEDGER_WEBHOOK_ALLOW_PRIVATE", "true"),
		envKV("LEDGER_WEBHOOK_INTERVAL", "50ms"), envKV("LEDGER_WEBHOOK_RETRY_BASE", "50ms"), envKV("LEDGER_WEBHOOK_TIMEOUT", "1s"),
		envKV("LEDGER_WEBHOOK_LEASE", "3s"))
	c := ctl{t: t, bin: filepath.Join(bin, exe("ledgerctl")), env: []string{envKV("LEDGER_ADDR", p.field(t, "grpc_addr")), envKV("LEDGER_WORKSPACE", "acme")}}

	var mu sync.Mutex
	var secret string
	var bodies []string
	failing := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if failing {
			http.Error(w, "not yet", http.StatusInternalServerError)
			return
		}
		if err := webhook.Verify(secret, r.Header, body); err != nil {
			t.Errorf("signature: %v", err)
		}
		bodies = append(bodies, string(body))
	}))
	defer srv.Close()
	received := func(n int) []string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			mu.Lock()
			got := append([]string(nil), bodies...)
			mu.Unlock()
			if len(got) >= n || time.Now().After(deadline) {
				return got
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	out := c.must("webhooks", "create", "--url", srv.URL+"/ledger", "--types", "transaction.posted,request.decided", "--description", "billing")
	m := regexp.MustCompile(`webhook endpoint (we_[0-9a-f]+): .*\nsigning secret \(shown once\): (whsec_\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("webhooks create printed %q", out)
	}
	id := m[1]
	mu.Lock()
	secret = m[2]
	mu.Unlock()
	if out := c.must("webhooks", "list"); !strings.Contains(out, id) || !strings.Contains(out, "request.decided,transaction.posted") || strings.Contains(out, secret) {
		t.Fatalf("webhooks list: %q", out)
	}

	c.must("credit", "--account", "alice", "--amount", "25", "--idempotency-key", "hook-1")
	// The receiver fails first: the log shows the 500s, and the retries.
	deadline := time.Now().Add(20 * time.Second)
	for {
		out := c.must("webhooks", "deliveries", id)
		if strings.Count(out, "500") >= 2 {
			if !strings.Contains(out, "transaction.posted") || !strings.Contains(out, "http status 500") {
				t.Fatalf("webhooks deliveries: %q", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed attempts logged: %q", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.must("webhooks", "update", id, "--disable")
	mu.Lock()
	failing = false
	mu.Unlock()
	time.Sleep(300 * time.Millisecond)
	if got := received(0); len(got) != 0 {
		t.Fatalf("a disabled endpoint received %q", got)
	}
	if out := c.must("webhooks", "update", id, "--enable"); !strings.Contains(out, "enabled") {
		t.Fatalf("webhooks update --enable: %q", out)
	}
	got := received(1)
	if len(got) != 1 || !strings.Contains(got[0], `"type":"transaction.posted"`) || !strings.Contains(got[0], `"account":"alice"`) {
		t.Fatalf("received %q", got)
	}
	// The receiver answers before the worker records the attempt: the
	// log shows the success soon after, not at once.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out := c.must("webhooks", "deliveries", id, "--limit", "1")
		if strings.Contains(out, "204") || strings.Contains(out, "200") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the last attempt is not a success: %q", out)
		}
	}
	c.must("webhooks", "delete", id)
	if out := c.must("webhooks", "list"); strings.Contains(out, id) {
		t.Fatalf("deleted endpoint still listed: %q", out)
	}
	if _, errOut, code := c.run("webhooks", "create", "--url", "ftp://example.com/"); code == 0 || !strings.Contains(errOut, "url") {
		t.Fatalf("a bad URL: exit %d, %q", code, errOut)
	}
}
