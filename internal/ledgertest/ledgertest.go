// Package ledgertest runs the real CreditLedger for the tests of its
// consumers (ledgerclient, checkout, invoicing, ledgerctl, the portal):
// the gRPC server ledgerd serves (grpcserver.NewServer, with its
// interceptors, error mapping and authorization), over the real domain
// (ledger.Service), over the embedded store held in memory
// (sqlite.Memory), on a loopback port. A consumer's test therefore meets
// the ledger's own rules, never a second implementation of them that
// could drift.
//
// Around the server's own chain, the harness adds an interceptor that
// records every call (method, request, authorization, outcome) and
// injects faults: refuse the next calls of a method with a status, apply
// a call and then lose its answer (what retries with idempotency keys
// must survive), delay an answer, break the open event watches.
//
// Test setup (funding an account, switching credit payments on, setting
// rates) goes through the same handlers in process, without the wire:
// it obeys every rule, needs no token and is not recorded among the
// calls a test asserts on. Time is the harness's clock: Advance moves it
// and runs the expiry sweep that ledgerd runs on a timer.
package ledgertest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/creditledger/creditledger/internal/gateway"
	"github.com/creditledger/creditledger/internal/grpcserver"
	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/creditledger/creditledger/internal/store/sqlite"
	"github.com/creditledger/creditledger/internal/token"
)

// Server is a running ledger. Create it with Start; it stops when the
// test ends.
type Server struct {
	// Addr is the loopback address of the gRPC port (host:port), ready
	// for ledgerclient.Dial and the consumers' LEDGER_ADDR.
	Addr string
	// URL is the base URL of the REST gateway ("http://127.0.0.1:port"),
	// set with WithGateway.
	URL string
	// Service is the domain the server serves, for what a test cannot
	// reach through the API.
	Service *ledger.Service

	ledger   *grpcserver.LedgerServer
	settings *grpcserver.SettingsServer
	signer   *token.SigningKey // nil: authentication is off

	offset atomic.Int64 // how far Advance moved the clock, in nanoseconds
	seq    atomic.Int64 // numbers the setup's idempotency keys

	mu      sync.Mutex
	faults  map[string][]Fault
	calls   []Call
	watches map[*watch]struct{}
	// applying are the calls being applied under an After fault, by
	// method: each channel is closed when its call was.
	applying map[string][]chan struct{}
}

type options struct {
	auth    bool
	tls     *tls.Config
	gateway bool
}

// Option configures Start.
type Option func(*options)

// WithAuth makes the server verify bearer tokens as ledgerd does in
// production (EdDSA-signed JWTs, the per-method policy of SPEC §6);
// Token and its shortcuts mint them. Without it the server runs in
// ledgerd's explicit development mode: every call is allowed, and the
// audit fields come from the request body.
func WithAuth() Option { return func(o *options) { o.auth = true } }

// WithServerTLS serves gRPC over TLS with cfg (set ClientAuth and
// ClientCAs for mTLS).
func WithServerTLS(cfg *tls.Config) Option { return func(o *options) { o.tls = cfg } }

// WithGateway also serves the REST gateway (SPEC §4) on a loopback port,
// at URL. It dials the gRPC port like ledgerd's, so its calls are
// recorded and faulted like any other. Not with WithServerTLS.
func WithGateway() Option { return func(o *options) { o.gateway = true } }

// Start runs a ledger on a fresh in-memory store until the test ends.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.gateway && o.tls != nil {
		tb.Fatal("ledgertest: WithGateway and WithServerTLS together are not supported")
	}
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlite.Memory, sqlite.Options{})
	if err != nil {
		tb.Fatalf("ledgertest: open the store: %v", err)
	}
	tb.Cleanup(func() {
		if err := store.Close(); err != nil {
			tb.Errorf("ledgertest: close the store: %v", err)
		}
	})

	s := &Server{faults: map[string][]Fault{}, watches: map[*watch]struct{}{}, applying: map[string][]chan struct{}{}}
	reg := prometheus.NewRegistry()
	obs, err := grpcserver.NewObserver(reg)
	if err != nil {
		tb.Fatalf("ledgertest: %v", err)
	}
	// As ledgerd wires the embedded store: one batch in flight, since the
	// store has one writer (cmd/ledgerd/store.go).
	s.Service = ledger.NewService(store,
		ledger.WithClock(s.now), ledger.WithObserver(obs), ledger.WithWebhookStore(store),
		ledger.WithBatching(ledger.BatchOptions{MaxInFlight: 1, PerWorkspace: 1}))
	tb.Cleanup(s.Service.StopWatches)
	s.ledger, s.settings = grpcserver.NewLedgerServer(s.Service), grpcserver.NewSettingsServer(s.Service)

	var auth grpcserver.Authorizer = grpcserver.NoAuth{}
	if o.auth {
		auth = s.newAuth(tb)
	}
	var creds credentials.TransportCredentials
	if o.tls != nil {
		creds = credentials.NewTLS(o.tls)
	}
	srv, err := grpcserver.NewServer(s.Service, grpcserver.Options{
		Logger: zap.NewNop(), Registerer: reg, Authorizer: auth, Creds: creds,
		UnaryInterceptors:  []grpc.UnaryServerInterceptor{s.intercept},
		StreamInterceptors: []grpc.StreamServerInterceptor{s.interceptStream},
	})
	if err != nil {
		tb.Fatalf("ledgertest: %v", err)
	}
	lis, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("ledgertest: listen: %v", err)
	}
	s.Addr = lis.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	tb.Cleanup(func() {
		srv.Stop()
		<-done
	})
	if o.gateway {
		s.startGateway(tb, store.Ping)
	}
	return s
}

// startGateway serves the REST gateway in front of the gRPC port.
func (s *Server) startGateway(tb testing.TB, ping func(context.Context) error) {
	tb.Helper()
	gw, err := gateway.New(context.Background(), gateway.Options{GRPCAddr: s.Addr, Logger: zap.NewNop(), Ping: ping})
	if err != nil {
		tb.Fatalf("ledgertest: gateway: %v", err)
	}
	hs := httptest.NewServer(gw)
	tb.Cleanup(func() {
		hs.Close()
		_ = gw.Close()
	})
	s.URL = hs.URL
}

// now is the service's clock: the wall clock moved by Advance.
func (s *Server) now() time.Time { return time.Now().Add(time.Duration(s.offset.Load())) }

// Advance moves the ledger's clock forward by d and runs the expiry
// sweep, as ledgerd's sweeper does at its next tick: holds whose
// expire_time passed are EXPIRED (hold.expired), unspent credits whose
// grant expired are posted out (credits.expired). Tokens keep the wall
// clock: one minted before an Advance is still valid after it.
func (s *Server) Advance(tb testing.TB, d time.Duration) {
	tb.Helper()
	s.settle(tb)
	s.offset.Add(int64(d))
	if _, err := s.Service.ExpireDue(context.Background()); err != nil {
		tb.Fatalf("ledgertest: expiry sweep: %v", err)
	}
}

// newAuth returns the production authorizer over a key of this server's
// own, which Token signs with.
func (s *Server) newAuth(tb testing.TB) grpcserver.Authorizer {
	tb.Helper()
	k, err := token.GenerateKey(token.AlgEdDSA, "ledgertest", token.Roles)
	if err != nil {
		tb.Fatalf("ledgertest: %v", err)
	}
	jwks, err := token.PublicJWKS(k)
	if err != nil {
		tb.Fatalf("ledgertest: %v", err)
	}
	ks, err := token.ParseJWKS(jwks)
	if err != nil {
		tb.Fatalf("ledgertest: %v", err)
	}
	v, err := token.NewVerifier(token.VerifierOptions{Keys: ks})
	if err != nil {
		tb.Fatalf("ledgertest: %v", err)
	}
	s.signer = &k
	return grpcserver.NewTokenAuth(v)
}

// Token mints a bearer token the server accepts (WithAuth), valid for an
// hour, for role in workspace with every scope the role may hold;
// account is the client's for RoleClient, empty otherwise.
func (s *Server) Token(tb testing.TB, role token.Role, workspace, account string) string {
	tb.Helper()
	if s.signer == nil {
		tb.Fatal("ledgertest: Token needs a server started WithAuth")
	}
	c := token.New(token.DefaultIssuer, token.DefaultAudience, role, string(role)+"@"+workspace, workspace, account,
		token.RoleScopes(role), time.Now(), time.Hour)
	if account != "" {
		c.Subject = account + "@" + workspace
	}
	raw, err := token.Mint(*s.signer, c)
	if err != nil {
		tb.Fatalf("ledgertest: mint a %s token: %v", role, err)
	}
	return raw
}

// ServiceToken is Token for an internal service of workspace (checkout,
// invoicing, an operator's ledgerctl): it may move credits.
func (s *Server) ServiceToken(tb testing.TB, workspace string) string {
	tb.Helper()
	return s.Token(tb, token.RoleService, workspace, "")
}

// AdminToken is Token for one of the agency's administrators.
func (s *Server) AdminToken(tb testing.TB, workspace string) string {
	tb.Helper()
	return s.Token(tb, token.RoleAdmin, workspace, "")
}

// ClientToken is Token for the client that owns account.
func (s *Server) ClientToken(tb testing.TB, workspace, account string) string {
	tb.Helper()
	return s.Token(tb, token.RoleClient, workspace, account)
}

// setupKey is a fresh idempotency key for a setup write.
func (s *Server) setupKey(what string) string {
	return fmt.Sprintf("ledgertest:%s:%d", what, s.seq.Add(1))
}

// check fails the test when a setup call failed.
func check(tb testing.TB, what string, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("ledgertest: %s: %v", what, err)
	}
}
