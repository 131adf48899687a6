package gateway

import (
	"context"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/creditledger/creditledger/internal/grpcserver"
	"github.com/creditledger/creditledger/internal/grpcserver/fakestore"
	"github.com/creditledger/creditledger/internal/ledger"
)

// TestRESTRateLimited: a rate limit's refusal is 429 with Retry-After (the
// RetryInfo delay rounded up to whole seconds) and the same JSON details
// as over gRPC.
func TestRESTRateLimited(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) // frozen: nothing refills
	store := fakestore.New()
	reg := prometheus.NewRegistry()
	log := zap.NewNop()
	srv, err := grpcserver.NewServer(ledger.NewService(store), grpcserver.Options{
		Logger: log, Registerer: reg, Authorizer: grpcserver.NoAuth{},
		RateLimits: grpcserver.RateLimits{
			Subject: grpcserver.Rate{PerSecond: 0.4, Burst: 2}, // a token every 2.5 s
			Now:     func() time.Time { return now },
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	gw, err := New(context.Background(), Options{GRPCAddr: lis.Addr().String(), Logger: log, Ping: store.Ping})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Close() })
	hs := httptest.NewServer(gw)
	t.Cleanup(hs.Close)

	url := hs.URL + "/v1/workspaces/acme/accounts/alice/balance"
	for i := range 2 {
		if r := do(t, "GET", url, "", nil); r.code != 200 || r.header.Get("Retry-After") != "" {
			t.Fatalf("call %d: %d %v %s", i, r.code, r.header, r.raw)
		}
	}
	r := do(t, "GET", url, "", nil)
	info := detail(t, r.body, "google.rpc.ErrorInfo")
	if r.code != 429 || r.header.Get("Retry-After") != "3" || info["reason"] != "RATE_LIMITED" ||
		detail(t, r.body, "google.rpc.RetryInfo")["retryDelay"] != "2.500s" {
		t.Fatalf("over the limit: %d Retry-After %q %s", r.code, r.header.Get("Retry-After"), r.raw)
	}
	if md, _ := info["metadata"].(map[string]any); md["retry_after_seconds"] != "3" {
		t.Fatalf("metadata %v", info["metadata"])
	}
}
