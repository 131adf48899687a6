package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/token"
)

// keyFile writes a development signing key (client and admin) and
// returns its path.
func keyFile(t testing.TB) string {
	t.Helper()
	k, err := token.GenerateKey(token.AlgEdDSA, "portal-test", []token.Role{token.RoleClient, token.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	b, err := k.PrivateJWK()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "portal.jwk")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func envOf(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

func TestConfigRefusesWhatWouldBeUnsafeOrIncomplete(t *testing.T) {
	t.Parallel()
	key := keyFile(t)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no signing key", nil, map[string]string{"PORTAL_DEV_SIGN_IN": "true"}, "signing key is required"},
		{"no sign-in at all", []string{"--signing-key-file", key}, nil, "identity provider"},
		{"development sign-in reachable from elsewhere", []string{"--signing-key-file", key, "--dev-sign-in", "--http-addr", "0.0.0.0:8090"}, nil, "loopback"},
		{"token lifetime too long", []string{"--signing-key-file", key, "--dev-sign-in", "--token-ttl", "48h"}, nil, "between 1m and 24h"},
		{"not a boolean", []string{"--signing-key-file", key}, map[string]string{"PORTAL_DEV_SIGN_IN": "yes please"}, "want true or false"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseConfig(tc.args, envOf(tc.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("parseConfig: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, envOf(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "portal ") {
		t.Fatalf("--version printed %q", out.String())
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunServesTheSignInAndStopsOnCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	env := envOf(map[string]string{"PORTAL_SIGNING_KEY_FILE": keyFile(t), "PORTAL_DEV_SIGN_IN": "true"})
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--http-addr", "127.0.0.1:0"}, env, io.Discard, &logs) }()
	var public string
	for deadline := time.Now().Add(10 * time.Second); public == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, line := range strings.Split(logs.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "listening" {
				public, _ = m["public_url"].(string)
			}
		}
	}
	if public == "" {
		t.Fatalf("no listening line; logs:\n%s", logs.String())
	}
	for path, want := range map[string]string{"/healthz": `"ok"`, "/signin": "Development sign-in", "/static/portal.css": "focus-visible"} {
		res, err := http.Get(public + path) //nolint:noctx // test
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: HTTP %d, body without %q", path, res.StatusCode, want)
		}
	}
	if !strings.Contains(logs.String(), "DEVELOPMENT SIGN-IN") {
		t.Error("the development sign-in is not announced in the log")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not stop")
	}
}
