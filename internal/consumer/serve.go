package consumer

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
)

// ServeOptions configure Serve.
type ServeOptions struct {
	Log     *zap.Logger
	Addr    string       // listen address; port 0 picks one
	Handler http.Handler // the service's API
	// Listener, when set, is served instead of a new one on Addr: a
	// service whose handler must know its own address (the portal's
	// public URL) listens first (Listen), then builds its handler. Serve
	// closes it.
	Listener net.Listener
	// WriteTimeout bounds a response; default 60s.
	WriteTimeout time.Duration
	// Reconcile, when set, settles unfinished work; it runs once before
	// traffic is taken (bounded by StartTimeout) and then every Every.
	Reconcile    func(ctx context.Context) error
	Every        time.Duration // required with Reconcile
	StartTimeout time.Duration // default 30s
	// Follow, when set, runs from the start until the shutdown: the
	// follower of the ledger's events, which moves the service's state as
	// the ledger reports changes.
	Follow func(ctx context.Context) error
	// ListeningFields are added to the "listening" log line.
	ListeningFields []zap.Field
}

// Serve runs a service until ctx is done or its server fails: the
// follower of the ledger's events from the start, the reconciliation pass
// once before the API takes traffic and then periodically, the API; then
// a graceful shutdown that lets calls in flight finish (15s at most).
func Serve(ctx context.Context, o ServeOptions) error {
	if o.Listener != nil {
		defer func() { _ = o.Listener.Close() }() // http.Server closes it too: a second Close is harmless
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 30 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 60 * time.Second
	}
	if o.Reconcile != nil && o.Every <= 0 {
		return errors.New("serve: the reconciliation pass needs a positive period")
	}
	// Whatever ends Serve stops the follower and the reconciliation loop
	// before it returns: the caller closes the database next.
	ctx, stop := context.WithCancel(ctx)
	var background sync.WaitGroup
	defer func() { stop(); background.Wait() }()
	if o.Follow != nil {
		background.Go(func() {
			if err := o.Follow(ctx); err != nil && ctx.Err() == nil {
				o.Log.Error("the ledger's events are not followed; only reads and reconciliation move state", zap.Error(err))
			}
		})
	}
	if o.Reconcile != nil {
		// Bounded, so that an unreachable ledger does not block the start.
		startCtx, cancel := context.WithTimeout(ctx, o.StartTimeout)
		if err := o.Reconcile(startCtx); err != nil {
			o.Log.Warn("start-up reconciliation incomplete; the periodic pass continues", zap.Error(err))
		}
		cancel()
	}

	lis := o.Listener
	if lis == nil {
		var err error
		if lis, err = Listen(ctx, o.Addr); err != nil {
			return err
		}
	}
	srv := &http.Server{Handler: o.Handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: o.WriteTimeout}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lis) }()
	o.Log.Info("listening", append([]zap.Field{zap.String("http_addr", lis.Addr().String())}, o.ListeningFields...)...)

	if o.Reconcile != nil {
		background.Go(func() {
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
		})
	}

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	o.Log.Info("shutting down")
	shutCtx, cancelShut := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancelShut()
	return srv.Shutdown(shutCtx)
}

// Listen listens on addr (TCP; port 0 picks one), for ServeOptions.Listener.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	return (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
}
