// Package serve runs the reference consumer services (checkout,
// invoicing): their REST API, the follower of the ledger's events, and a
// reconciliation pass that settles what a crash or an unreachable ledger
// left unfinished, at start and then periodically, until the context
// ends, then a graceful shutdown.
package serve

import (
	"context"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// Options configure Run.
type Options struct {
	Log     *zap.Logger
	Addr    string       // listen address; port 0 picks one
	Handler http.Handler // the service's API
	// Reconcile settles unfinished work; it runs once before traffic is
	// taken (bounded by StartTimeout) and then every Every.
	Reconcile    func(ctx context.Context) error
	Every        time.Duration
	StartTimeout time.Duration // default 30s
	// Follow, when set, runs from the start until the shutdown: the
	// follower of the ledger's events, which moves the service's state as
	// the ledger reports changes.
	Follow func(ctx context.Context) error
	// ListeningFields are added to the "listening" log line.
	ListeningFields []zap.Field
}

// Run serves until ctx is done or the server fails.
func Run(ctx context.Context, o Options) error {
	if o.StartTimeout <= 0 {
		o.StartTimeout = 30 * time.Second
	}
	if o.Follow != nil {
		fctx, stop := context.WithCancel(ctx)
		followed := make(chan struct{})
		go func() {
			defer close(followed)
			if err := o.Follow(fctx); err != nil && fctx.Err() == nil {
				o.Log.Error("the ledger's events are not followed; only reads and reconciliation move state", zap.Error(err))
			}
		}()
		defer func() { stop(); <-followed }()
	}
	// Bounded, so that an unreachable ledger does not block the start.
	startCtx, cancel := context.WithTimeout(ctx, o.StartTimeout)
	if err := o.Reconcile(startCtx); err != nil {
		o.Log.Warn("start-up reconciliation incomplete; the periodic pass continues", zap.Error(err))
	}
	cancel()

	lis, err := (&net.ListenConfig{}).Listen(ctx, "tcp", o.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: o.Handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lis) }()
	o.Log.Info("listening", append([]zap.Field{zap.String("http_addr", lis.Addr().String())}, o.ListeningFields...)...)

	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(o.Every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := o.Reconcile(ctx); err != nil && ctx.Err() == nil {
					o.Log.Warn("reconciliation pass failed", zap.Error(err))
				}
			}
		}
	}()

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	o.Log.Info("shutting down")
	shutCtx, cancelShut := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancelShut()
	err = srv.Shutdown(shutCtx)
	<-done
	return err
}
