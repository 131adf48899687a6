package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/creditledger/creditledger/internal/config"
	"github.com/creditledger/creditledger/internal/gateway"
	"github.com/creditledger/creditledger/internal/grpcserver"
	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/creditledger/creditledger/internal/metrics"
)

// devModeWarning is logged at start and shown on every /readyz body while
// authentication is off.
const devModeWarning = "WARNING: authentication is DISABLED (LEDGER_AUTH=none): any caller can read and move " +
	"every workspace's credits. Development only; set LEDGER_AUTH=token and LEDGER_AUTH_SECRET in any shared environment."

// pendingScrapeInterval bounds how often a scrape may count pending
// requests in the store.
const pendingScrapeInterval = 15 * time.Second

// healthInterval is how often the gRPC health status follows the store.
const healthInterval = 5 * time.Second

// services whose gRPC health status is reported ("" is the whole server).
var healthServices = []string{"", "creditledger.v1.CreditLedger", "creditledger.v1.CreditSettings"}

func serveCmd(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := config.Load(args, getenv, stderr)
	if err != nil {
		return err
	}
	tuneGC(getenv)
	log, err := newLogger(cfg.LogLevel, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("ledgerd stopped with an error", zap.Error(err))
		return err
	}
	return nil
}

// serve runs ledgerd until ctx is canceled, then drains and stops.
func serve(ctx context.Context, cfg config.Config, log *zap.Logger) error {
	log.Info("starting", zap.String("version", versionString()), zap.Any("config", cfg.Redacted()))

	var auth grpcserver.Authorizer
	warning := ""
	switch cfg.Auth {
	case config.AuthNone:
		auth, warning = grpcserver.NoAuth{}, devModeWarning
		log.Warn(devModeWarning)
	default:
		a, err := grpcserver.NewTokenAuth(cfg.AuthSecret, nil)
		if err != nil {
			return err
		}
		auth = a
	}
	opts := []ledger.Option{}
	if len(cfg.PageTokenKey) > 0 {
		opts = append(opts, ledger.WithPageTokenKey(cfg.PageTokenKey))
	} else {
		log.Warn("LEDGER_PAGE_TOKEN_KEY is not set: page tokens are signed with a random per-process key; " +
			"they stop working after a restart and are not accepted by other replicas")
	}

	store, batching, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("closing the store", zap.Error(err))
		}
	}()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	obs, err := grpcserver.NewObserver(reg)
	if err != nil {
		return err
	}
	if err := metrics.RegisterStoreCollectors(reg, store, pendingScrapeInterval); err != nil {
		return err
	}
	timed, err := metrics.InstrumentStore(store, reg)
	if err != nil {
		return err
	}
	storeHealth, err := metrics.NewHealth(reg)
	if err != nil {
		return err
	}
	svc := ledger.NewService(timed, append(opts, ledger.WithObserver(obs), ledger.WithBatching(batching),
		ledger.WithMaxPendingRequests(cfg.Limits.MaxPendingRequests))...)
	if cfg.DebugAddr != "" {
		stop, err := serveDebug(ctx, cfg.DebugAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}

	healthSrv := health.NewServer()
	for _, s := range healthServices {
		healthSrv.SetServingStatus(s, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	grpcSrv, err := grpcserver.NewServer(svc, grpcserver.Options{
		Logger: log, Registerer: reg, Authorizer: auth, Health: healthSrv, Reflection: cfg.GRPCReflection,
		RateLimits: grpcserver.RateLimits{
			Workspace:     grpcserver.Rate(cfg.Limits.RateWorkspace),
			Subject:       grpcserver.Rate(cfg.Limits.RateSubject),
			SubjectWrites: grpcserver.Rate(cfg.Limits.RateSubjectWrites),
			Submit:        grpcserver.Rate(cfg.Limits.RateSubmit),
		},
	})
	if err != nil {
		return err
	}

	var lc net.ListenConfig
	grpcLis, err := lc.Listen(ctx, "tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen gRPC on %s: %w", cfg.GRPCAddr, err)
	}
	httpLis, err := lc.Listen(ctx, "tcp", cfg.HTTPAddr)
	if err != nil {
		_ = grpcLis.Close()
		return fmt.Errorf("listen HTTP on %s: %w", cfg.HTTPAddr, err)
	}
	gw, err := gateway.New(ctx, gateway.Options{
		GRPCAddr: grpcLis.Addr().String(), Logger: log, Gatherer: reg, Ping: store.Ping, Warning: warning,
	})
	if err != nil {
		_ = grpcLis.Close()
		_ = httpLis.Close()
		return err
	}
	defer func() { _ = gw.Close() }()
	httpSrv := gateway.NewHTTPServer(gw, log)

	errc := make(chan error, 2)
	go func() {
		if err := grpcSrv.Serve(grpcLis); err != nil {
			errc <- fmt.Errorf("gRPC server: %w", err)
		}
	}()
	go func() {
		if err := httpSrv.Serve(httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("HTTP server: %w", err)
		}
	}()
	healthCtx, stopHealth := context.WithCancel(context.Background())
	var healthDone sync.WaitGroup
	healthDone.Add(1)
	go func() {
		defer healthDone.Done()
		followStore(healthCtx, store, healthSrv, storeHealth, log)
	}()

	log.Info("listening",
		zap.String("grpc_addr", grpcLis.Addr().String()),
		zap.String("http_addr", httpLis.Addr().String()))

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: draining", zap.Duration("drain_delay", cfg.DrainDelay), zap.Duration("timeout", cfg.ShutdownTimeout))
	case serveErr = <-errc:
		log.Error("server failed; shutting down", zap.Error(serveErr))
	}

	// Stop taking new work: readiness and health report NOT_SERVING first.
	stopHealth()
	healthDone.Wait()
	gw.Drain()
	healthSrv.Shutdown()
	if cfg.DrainDelay > 0 && serveErr == nil {
		time.Sleep(cfg.DrainDelay)
	}

	// Then drain in-flight calls: HTTP first (its calls ride on gRPC),
	// then gRPC, each within what is left of the shutdown timeout.
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := httpSrv.Shutdown(sctx); err != nil {
		log.Warn("HTTP drain incomplete; closing", zap.Error(err))
		_ = httpSrv.Close()
	}
	stopped := make(chan struct{})
	go func() {
		grpcSrv.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-sctx.Done():
		log.Warn("gRPC drain incomplete; stopping")
		grpcSrv.Stop()
		<-stopped
	}
	log.Info("stopped")
	return serveErr
}

// followStore keeps the gRPC health status in step with the store's Ping.
func followStore(ctx context.Context, store ledger.Store, hs *health.Server, up *metrics.Health, log *zap.Logger) {
	t := time.NewTicker(healthInterval)
	defer t.Stop()
	last := healthpb.HealthCheckResponse_UNKNOWN
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := store.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		up.Set(err == nil)
		st := healthpb.HealthCheckResponse_SERVING
		if err != nil {
			st = healthpb.HealthCheckResponse_NOT_SERVING
		}
		if st != last {
			if err != nil {
				log.Warn("store ping failed; gRPC health NOT_SERVING", zap.Error(err))
			} else {
				log.Info("store answers; gRPC health SERVING")
			}
			for _, s := range healthServices {
				hs.SetServingStatus(s, st)
			}
			last = st
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
