// Package grpcserver is the gRPC door of the ledger: the CreditLedger and
// CreditSettings services over a ledger.Service, the converters between the
// generated API types and the domain, the one function that turns errors
// into statuses, the interceptors (request id, metrics, logging, panic
// recovery, authentication and authorization) and the Prometheus observer
// of the domain's business events.
package grpcserver

import (
	"errors"
	"slices"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledger"
)

// Message size bounds (spec §6: bounded inputs). The largest valid request
// is a few tens of KiB; the largest response is a page of 500 transactions.
const (
	DefaultMaxRecvMsgBytes = 1 << 20
	DefaultMaxSendMsgBytes = 16 << 20
)

// Connection limits (spec §11): how many calls one connection may run at
// once, and how long idle or silent connections are kept.
const (
	// DefaultMaxConcurrentStreams bounds the concurrent calls of one
	// connection; further calls wait for a free stream on the client side.
	DefaultMaxConcurrentStreams = 100
	// DefaultMaxConnectionIdle closes a connection without calls for this long.
	DefaultMaxConnectionIdle = 5 * time.Minute
	// DefaultKeepaliveTime is how long a connection may be silent before
	// the server pings it; DefaultKeepaliveTimeout how long it waits for
	// the answer before closing it (a vanished client frees its resources).
	DefaultKeepaliveTime    = 1 * time.Minute
	DefaultKeepaliveTimeout = 20 * time.Second
)

// Options configure NewServer.
type Options struct {
	// Logger receives one line per request and the internal-error lines. Required.
	Logger *zap.Logger
	// Registerer receives the per-RPC metrics
	// (creditledger_grpc_server_handled_total{grpc_code,…},
	// creditledger_grpc_server_handling_seconds, …). Required.
	Registerer prometheus.Registerer
	// Authorizer decides who may call what. Required: development mode is
	// chosen explicitly with NoAuth, never by leaving this empty.
	Authorizer Authorizer
	// Health, when set, is registered as grpc.health.v1.Health.
	Health *health.Server
	// Reflection registers the reflection service (off by default, spec §6).
	Reflection bool
	// MaxRecvMsgBytes and MaxSendMsgBytes bound message sizes; 0 means the defaults.
	MaxRecvMsgBytes int
	MaxSendMsgBytes int
	// MaxConcurrentStreams bounds the concurrent calls per connection; 0
	// means DefaultMaxConcurrentStreams.
	MaxConcurrentStreams uint32
	// Keepalive sets the server's connection keepalive; a zero field takes
	// its default (DefaultMaxConnectionIdle, DefaultKeepaliveTime,
	// DefaultKeepaliveTimeout).
	Keepalive keepalive.ServerParameters
	// Creds are the transport credentials (TLS, mTLS); nil serves
	// plaintext.
	Creds credentials.TransportCredentials
	// RateLimits bound the calls per workspace and per subject
	// (ratelimit.go); the zero value turns them off.
	RateLimits RateLimits
	// UnaryInterceptors and StreamInterceptors run outermost, around the
	// server's own chain, so they see each call as its caller does
	// (internal/ledgertest injects faults and records calls there).
	UnaryInterceptors  []grpc.UnaryServerInterceptor
	StreamInterceptors []grpc.StreamServerInterceptor
}

// NewServer returns a gRPC server serving CreditLedger and CreditSettings
// over svc, with the interceptor chain (outermost first):
//
//	[Options' interceptors →] request id → metrics → log line → error to status → panic recovery → UTF-8 → auth → rate limits → handler
//
// so that metrics and the log line see the final status code, a panic
// becomes INTERNAL with its own log line, and a refused call is counted and
// logged like any other. Streaming calls (ExportTransactions) go through
// the same chain (stream.go), their request checked when it is received.
func NewServer(svc *ledger.Service, o Options) (*grpc.Server, error) {
	if o.Logger == nil || o.Registerer == nil || o.Authorizer == nil {
		return nil, errors.New("grpcserver: Logger, Registerer and Authorizer are required")
	}
	if o.MaxRecvMsgBytes <= 0 {
		o.MaxRecvMsgBytes = DefaultMaxRecvMsgBytes
	}
	if o.MaxSendMsgBytes <= 0 {
		o.MaxSendMsgBytes = DefaultMaxSendMsgBytes
	}
	if o.MaxConcurrentStreams == 0 {
		o.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if o.Keepalive.MaxConnectionIdle <= 0 {
		o.Keepalive.MaxConnectionIdle = DefaultMaxConnectionIdle
	}
	if o.Keepalive.Time <= 0 {
		o.Keepalive.Time = DefaultKeepaliveTime
	}
	if o.Keepalive.Timeout <= 0 {
		o.Keepalive.Timeout = DefaultKeepaliveTimeout
	}
	metrics := grpcprom.NewServerMetrics(
		grpcprom.WithServerCounterOptions(grpcprom.WithNamespace("creditledger")),
		grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramNamespace("creditledger"),
			grpcprom.WithHistogramBuckets([]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}),
		),
	)
	if err := o.Registerer.Register(metrics); err != nil {
		return nil, err
	}
	limiter, err := newRateLimiter(o.RateLimits, o.Registerer)
	if err != nil {
		return nil, err
	}
	chain := append(slices.Clone(o.UnaryInterceptors),
		requestIDInterceptor,
		metrics.UnaryServerInterceptor(),
		loggingInterceptor(o.Logger),
		statusInterceptor(o.Logger),
		recoveryInterceptor(),
		utf8Interceptor,
		authInterceptor(o.Authorizer),
	)
	streamChain := append(slices.Clone(o.StreamInterceptors),
		streamRequestID,
		metrics.StreamServerInterceptor(),
		streamLogging(o.Logger),
		streamStatus(o.Logger),
		streamRecovery(),
		streamUTF8,
		streamAuth(o.Authorizer),
	)
	if limiter != nil {
		chain = append(chain, rateLimitInterceptor(limiter))
		streamChain = append(streamChain, streamRateLimit(limiter))
	}
	codec, err := codecOption()
	if err != nil {
		return nil, err
	}
	serverOpts := []grpc.ServerOption{
		codec,
		grpc.MaxConcurrentStreams(o.MaxConcurrentStreams),
		grpc.KeepaliveParams(o.Keepalive),
	}
	if o.Creds != nil {
		serverOpts = append(serverOpts, grpc.Creds(o.Creds))
	}
	srv := grpc.NewServer(append(serverOpts,
		grpc.MaxRecvMsgSize(o.MaxRecvMsgBytes),
		grpc.MaxSendMsgSize(o.MaxSendMsgBytes),
		grpc.ConnectionTimeout(10*time.Second),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(chain...),
		grpc.ChainStreamInterceptor(streamChain...),
	)...)
	pb.RegisterCreditLedgerServer(srv, NewLedgerServer(svc))
	pb.RegisterCreditSettingsServer(srv, NewSettingsServer(svc))
	pb.RegisterCreditWebhooksServer(srv, NewWebhooksServer(svc))
	if o.Health != nil {
		healthpb.RegisterHealthServer(srv, o.Health)
	}
	if o.Reflection {
		reflection.Register(srv)
	}
	metrics.InitializeMetrics(srv)
	return srv, nil
}
