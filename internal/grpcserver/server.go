// Package grpcserver is the gRPC door of the ledger: the CreditLedger and
// CreditSettings services over a ledger.Service, the converters between the
// generated API types and the domain, the one function that turns errors
// into statuses, the interceptors (request id, metrics, logging, panic
// recovery, authentication and authorization) and the Prometheus observer
// of the domain's business events.
package grpcserver

import (
	"errors"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
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
	// RateLimits bound the calls per workspace and per subject
	// (ratelimit.go); the zero value turns them off.
	RateLimits RateLimits
}

// NewServer returns a gRPC server serving CreditLedger and CreditSettings
// over svc, with the interceptor chain (outermost first):
//
//	request id → metrics → log line → error to status → panic recovery → auth → rate limits → handler
//
// so that metrics and the log line see the final status code, a panic
// becomes INTERNAL with its own log line, and a refused call is counted and
// logged like any other.
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
	chain := []grpc.UnaryServerInterceptor{
		requestIDInterceptor,
		metrics.UnaryServerInterceptor(),
		loggingInterceptor(o.Logger),
		statusInterceptor(o.Logger),
		recoveryInterceptor(),
		authInterceptor(o.Authorizer),
	}
	if limiter != nil {
		chain = append(chain, rateLimitInterceptor(limiter))
	}
	srv := grpc.NewServer(
		grpc.MaxRecvMsgSize(o.MaxRecvMsgBytes),
		grpc.MaxSendMsgSize(o.MaxSendMsgBytes),
		grpc.ConnectionTimeout(10*time.Second),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(chain...),
	)
	pb.RegisterCreditLedgerServer(srv, NewLedgerServer(svc))
	pb.RegisterCreditSettingsServer(srv, NewSettingsServer(svc))
	if o.Health != nil {
		healthpb.RegisterHealthServer(srv, o.Health)
	}
	if o.Reflection {
		reflection.Register(srv)
	}
	metrics.InitializeMetrics(srv)
	return srv, nil
}
