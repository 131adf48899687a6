package consumer

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/creditledger/creditledger/ledgerclient"
)

// RunFunc is a service's run: its whole life between main and the exit
// code, with what it reads and writes passed in so that tests run it
// in-process.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

// Main is a service's func main: run with the process's arguments,
// environment and output until SIGINT or SIGTERM. It exits 1 with
// "<name>: <error>" when run fails, 0 after --help or --version
// (flag.ErrHelp).
func Main(name string, run RunFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// NewLogger is a service's log: JSON lines on w at info level, each with
// the field service.
func NewLogger(w io.Writer, service string) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey, enc.EncodeTime = "ts", zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), zap.InfoLevel)
	return zap.New(core).With(zap.String("service", service))
}

// DialLedger connects to ledgerd as s says: with its bearer token, over
// TLS when configured (a plaintext connection is logged as a warning), and
// with each retried call logged.
func DialLedger(ctx context.Context, log *zap.Logger, s LedgerSettings) (*ledgerclient.Client, error) {
	opts := []ledgerclient.Option{
		ledgerclient.WithOnRetry(func(e ledgerclient.RetryEvent) {
			log.Warn("ledger call retried", zap.String("method", e.Method), zap.Int("attempt", e.Attempt),
				zap.String("code", e.Err.Code.String()), zap.Duration("wait", e.Wait))
		}),
		// The event streams stay open for hours: a ledger gone without
		// closing the connection is noticed within 40s, and the stream
		// resumed from the stored cursor.
		ledgerclient.WithDialOptions(grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second})),
	}
	if s.Token != "" {
		opts = append(opts, ledgerclient.WithToken(s.Token))
	}
	if s.TLS != nil {
		opts = append(opts, ledgerclient.WithTLS(s.TLS))
	} else {
		log.Warn("the connection to ledgerd is plaintext: set LEDGER_CA_FILE (and LEDGER_CLIENT_CERT_FILE/LEDGER_CLIENT_KEY_FILE for mTLS) outside development")
	}
	return ledgerclient.Dial(ctx, s.Addr, opts...)
}

// Deps are what Run hands a service's open function.
type Deps struct {
	Log    *zap.Logger
	Ledger *ledgerclient.Client
	// Verifier checks the API's bearer tokens; nil, with NoAuth, when the
	// API is served without authentication (development).
	Verifier Verifier
	NoAuth   bool
}

// Service is what a service's open function gives Run to serve (see
// ServeOptions).
type Service struct {
	Handler   http.Handler
	Reconcile func(ctx context.Context) error
	Follow    func(ctx context.Context) error
	// Close releases what open opened (its database), once served.
	Close func() error
	// Fields are added to the "listening" log line.
	Fields []zap.Field
}

// Reconciles adapts a reconciliation pass that reports what it settled
// (the report is the pass's own business) to Service.Reconcile.
func Reconciles[R any](pass func(context.Context) (R, error)) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := pass(ctx)
		return err
	}
}

// Run runs a service configured by s until ctx ends: it loads the token
// verification keys first (a bad key file fails the start before anything
// is opened), dials the ledger, has open build the service over them, and
// serves it (Serve) with s's address and reconciliation period.
func Run(ctx context.Context, p Program, s *Settings, stderr io.Writer, open func(context.Context, Deps) (Service, error)) error {
	log := NewLogger(stderr, p.Name)
	defer func() { _ = log.Sync() }()

	var watchers sync.WaitGroup
	ctx, stopWatching := context.WithCancel(ctx)
	defer func() { stopWatching(); watchers.Wait() }()
	v, err := s.Auth.Verifier(ctx, log, &watchers)
	if err != nil {
		return err
	}
	d := Deps{Log: log, NoAuth: v == nil}
	if v != nil {
		d.Verifier = v // never a nil *token.Verifier in the interface
	}
	if d.Ledger, err = DialLedger(ctx, log, s.Ledger); err != nil {
		return err
	}
	defer func() { _ = d.Ledger.Close() }()

	svc, err := open(ctx, d)
	if err != nil {
		return err
	}
	if svc.Close != nil {
		defer func() { _ = svc.Close() }()
	}
	return Serve(ctx, ServeOptions{
		Log: log, Addr: s.HTTPAddr, Handler: svc.Handler, Every: s.ReconcileInterval,
		Reconcile: svc.Reconcile, Follow: svc.Follow,
		ListeningFields: append([]zap.Field{
			zap.String("db", s.DB), zap.String("ledger_addr", s.Ledger.Addr), zap.String("auth", s.Auth.Mode),
		}, svc.Fields...),
	})
}
