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
	"github.com/creditledger/creditledger/internal/store/postgres"
	"github.com/creditledger/creditledger/internal/token"
	"github.com/creditledger/creditledger/internal/webhook"
)

// devModeWarning is logged at start and shown on every /readyz body while
// authentication is off.
const devModeWarning = "WARNING: authentication is DISABLED (LEDGER_AUTH=none): any caller can read and move " +
	"every workspace's credits. Development only; set LEDGER_AUTH=token and LEDGER_AUTH_SECRET in any shared environment."

// hs256Warning is logged at start and shown on /readyz while tokens are
// verified with a shared secret.
const hs256Warning = "WARNING: tokens are verified with the HS256 development secret (LEDGER_AUTH_SECRET): whoever " +
	"holds it can mint every role for every workspace. Set LEDGER_AUTH_JWKS_FILE (EdDSA/ES256 keys, see `ledgerd keygen`) " +
	"in any shared environment."

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

	auth, warning, err := newAuthorizer(ctx, cfg, log)
	if err != nil {
		return err
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
	if pg, ok := store.(*postgres.Store); ok && pg.HasReplicas() {
		if err := metrics.RegisterReplicaCollector(reg, func() []metrics.ReplicaState {
			stats := pg.ReplicaStats()
			out := make([]metrics.ReplicaState, len(stats))
			for i, r := range stats {
				out[i] = metrics.ReplicaState{Name: r.Name, State: r.State, Usable: r.Usable, LagBytes: r.LagBytes}
			}
			return out
		}); err != nil {
			return err
		}
	}
	timed, err := metrics.InstrumentStore(store, reg)
	if err != nil {
		return err
	}
	storeHealth, err := metrics.NewHealth(reg)
	if err != nil {
		return err
	}
	if ws, ok := store.(ledger.WebhookStore); ok {
		opts = append(opts, ledger.WithWebhookStore(ws))
	}
	allowPrivate := cfg.Webhooks.AllowPrivate
	opts = append(opts, ledger.WithWebhookURLCheck(func(u string) error { return webhook.ValidateURL(u, allowPrivate) }))
	svc := ledger.NewService(timed, append(opts, ledger.WithObserver(obs), ledger.WithBatching(batching),
		ledger.WithMaxPendingRequests(cfg.Limits.MaxPendingRequests))...)
	if cfg.DebugAddr != "" {
		stop, err := serveDebug(ctx, cfg.DebugAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}

	// Stopped when the drain begins, and on any early return: before the
	// store closes (its Close was deferred earlier).
	stopExpiry := sync.OnceFunc(startExpiry(svc, cfg.Expiry.Interval, log))
	defer stopExpiry()
	stopWebhooks := sync.OnceFunc(startWebhooks(svc, store, cfg.Webhooks, obs, log))
	defer stopWebhooks()

	tr, err := newTransport(cfg, log)
	if err != nil {
		return err
	}

	healthSrv := health.NewServer()
	for _, s := range healthServices {
		healthSrv.SetServingStatus(s, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	grpcSrv, err := grpcserver.NewServer(svc, grpcserver.Options{
		Logger: log, Registerer: reg, Authorizer: auth, Health: healthSrv, Reflection: cfg.GRPCReflection, Creds: tr.grpc,
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
	metricsLis, err := lc.Listen(ctx, "tcp", cfg.MetricsAddr)
	if err != nil {
		_ = grpcLis.Close()
		_ = httpLis.Close()
		return fmt.Errorf("listen metrics on %s: %w", cfg.MetricsAddr, err)
	}
	gw, err := gateway.New(ctx, gateway.Options{
		GRPCAddr: grpcLis.Addr().String(), Logger: log, Ping: store.Ping, Warning: warning, TLS: tr.gateway,
	})
	if err != nil {
		_ = grpcLis.Close()
		_ = httpLis.Close()
		_ = metricsLis.Close()
		return err
	}
	defer func() { _ = gw.Close() }()
	httpSrv := gateway.NewHTTPServer(gw, log)
	httpSrv.TLSConfig = tr.http
	metricsSrv := gateway.NewHTTPServer(gateway.NewMetricsHandler(reg, log), log)

	errc := make(chan error, 3)
	go func() {
		if err := grpcSrv.Serve(grpcLis); err != nil {
			errc <- fmt.Errorf("gRPC server: %w", err)
		}
	}()
	go func() {
		serveHTTP := func() error { return httpSrv.Serve(httpLis) }
		if tr.http != nil {
			serveHTTP = func() error { return httpSrv.ServeTLS(httpLis, "", "") }
		}
		if err := serveHTTP(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("HTTP server: %w", err)
		}
	}()
	go func() {
		if err := metricsSrv.Serve(metricsLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("metrics server: %w", err)
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
		zap.String("http_addr", httpLis.Addr().String()),
		zap.String("metrics_addr", metricsLis.Addr().String()),
		zap.Bool("tls", tr.http != nil),
		zap.Bool("mtls", cfg.TLSClientCAFile != ""))

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: draining", zap.Duration("drain_delay", cfg.DrainDelay), zap.Duration("timeout", cfg.ShutdownTimeout))
	case serveErr = <-errc:
		log.Error("server failed; shutting down", zap.Error(serveErr))
	}

	// Stop taking new work: readiness and health report NOT_SERVING first,
	// and this replica sweeps and delivers no more (the others, if any, go
	// on; an attempt in flight ends, and its lease is released).
	stopHealth()
	healthDone.Wait()
	stopExpiry()
	stopWebhooks()
	svc.StopWatches()
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
	// Metrics stay up through the drain so that it can be watched.
	defer func() { _ = metricsSrv.Close() }()
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

// newAuthorizer returns the configured Authorizer and the warning /readyz
// shows, and keeps the JWKS file's keys current until ctx ends.
func newAuthorizer(ctx context.Context, cfg config.Config, log *zap.Logger) (grpcserver.Authorizer, string, error) {
	if cfg.Auth == config.AuthNone {
		log.Warn(devModeWarning)
		if cfg.AuthNoneAllowRemote {
			log.Warn("WARNING: " + config.EnvAuthNoneAllowRemote + "=true: the unauthenticated server may listen beyond loopback")
		}
		return grpcserver.NoAuth{}, devModeWarning, nil
	}
	opts := token.VerifierOptions{
		DevSecret: cfg.AuthSecret, Issuer: cfg.AuthIssuer, Audience: cfg.AuthAudience, MaxLifetime: cfg.AuthMaxTokenLifetime,
	}
	warning := ""
	if cfg.AuthJWKSFile != "" {
		ks, err := token.LoadJWKS(cfg.AuthJWKSFile)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", config.EnvAuthJWKSFile, err)
		}
		opts.Keys = ks
		log.Info("token verification keys loaded", zap.String("file", cfg.AuthJWKSFile), zap.Strings("kids", ks.IDs()))
	} else {
		warning = hs256Warning
		log.Warn(hs256Warning)
	}
	v, err := token.NewVerifier(opts)
	if err != nil {
		return nil, "", err
	}
	if cfg.AuthJWKSFile != "" {
		go token.WatchJWKS(ctx, cfg.AuthJWKSFile, cfg.AuthJWKSReload, v, func(ks *token.KeySet, err error) {
			if err != nil {
				log.Error("token keys not reloaded; the previous keys stay in use", zap.String("file", cfg.AuthJWKSFile), zap.Error(err))
				return
			}
			log.Info("token verification keys reloaded", zap.Strings("kids", ks.IDs()))
		})
	}
	return grpcserver.NewTokenAuth(v), warning, nil
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
