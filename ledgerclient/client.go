package ledgerclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
)

// Defaults of the call policy.
const (
	DefaultAttemptTimeout = 5 * time.Second
	DefaultCallTimeout    = 30 * time.Second
	DefaultMaxAttempts    = 5
	DefaultInitialBackoff = 50 * time.Millisecond
	DefaultMaxBackoff     = 2 * time.Second
)

// RetryEvent describes one retry, for logs and metrics.
type RetryEvent struct {
	Method  string        // full gRPC method name
	Attempt int           // the attempt that failed, 1-based
	Err     *Error        // why it failed
	Wait    time.Duration // backoff before the next attempt
}

// Option configures Dial.
type Option func(*options)

type options struct {
	token          string
	tlsConfig      *tls.Config
	attemptTimeout time.Duration
	callTimeout    time.Duration
	maxAttempts    int
	initialBackoff time.Duration
	maxBackoff     time.Duration
	onRetry        func(RetryEvent)
	dialOptions    []grpc.DialOption
}

// WithToken sends "authorization: Bearer <token>" on every call. Without
// WithTLS the token travels in clear text: only for loopback or a trusted
// network (a service mesh that encrypts).
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithTLS connects over TLS (mTLS when the config carries a client
// certificate). Without it the connection is plaintext.
func WithTLS(cfg *tls.Config) Option { return func(o *options) { o.tlsConfig = cfg } }

// WithAttemptTimeout bounds each attempt (default 5s). An attempt that runs
// out of time is retried with the same request.
func WithAttemptTimeout(d time.Duration) Option {
	return func(o *options) { o.attemptTimeout = d }
}

// WithCallTimeout bounds a whole call, retries included, when the caller's
// context has no deadline of its own (default 30s).
func WithCallTimeout(d time.Duration) Option { return func(o *options) { o.callTimeout = d } }

// WithMaxAttempts bounds the attempts per call (default 5; 1 disables retries).
func WithMaxAttempts(n int) Option { return func(o *options) { o.maxAttempts = n } }

// WithBackoff sets the first backoff and its cap (defaults 50ms and 2s).
// The backoff doubles per attempt; each wait is drawn uniformly from
// [d/2, d] (jitter), so that many clients do not retry in lockstep.
func WithBackoff(initial, maxBackoff time.Duration) Option {
	return func(o *options) { o.initialBackoff, o.maxBackoff = initial, maxBackoff }
}

// WithOnRetry calls fn before every retry (logging, metrics). fn must be quick.
func WithOnRetry(fn func(RetryEvent)) Option { return func(o *options) { o.onRetry = fn } }

// WithDialOptions adds gRPC dial options (interceptors, keepalive, …).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOptions = append(o.dialOptions, opts...) }
}

// Client is a connection to the ledger with the call policy applied. It is
// safe for concurrent use. Close it when done.
type Client struct {
	conn     *grpc.ClientConn
	ledger   pb.CreditLedgerClient
	settings pb.CreditSettingsClient
	webhooks pb.CreditWebhooksClient
	opts     options
}

// Dial returns a Client for target ("host:port" or any gRPC target). The
// connection is established lazily, on the first call; ctx is only checked
// here, calls take their own contexts.
func Dial(ctx context.Context, target string, opts ...Option) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if target == "" {
		return nil, errors.New("ledgerclient: empty target")
	}
	o := options{
		attemptTimeout: DefaultAttemptTimeout,
		callTimeout:    DefaultCallTimeout,
		maxAttempts:    DefaultMaxAttempts,
		initialBackoff: DefaultInitialBackoff,
		maxBackoff:     DefaultMaxBackoff,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.maxAttempts < 1 {
		o.maxAttempts = 1
	}
	if o.initialBackoff <= 0 {
		o.initialBackoff = DefaultInitialBackoff
	}
	if o.maxBackoff < o.initialBackoff {
		o.maxBackoff = o.initialBackoff
	}
	c := &Client{opts: o}
	dialOpts := []grpc.DialOption{grpc.WithChainUnaryInterceptor(c.intercept), grpc.WithChainStreamInterceptor(c.interceptStream)}
	if o.tlsConfig != nil {
		dialOpts = append(dialOpts, grpc.WithTransportCredentials(credentials.NewTLS(o.tlsConfig)))
	} else {
		dialOpts = append(dialOpts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if o.token != "" {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(bearer{token: o.token, secure: o.tlsConfig != nil}))
	}
	dialOpts = append(dialOpts, o.dialOptions...)
	conn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("ledgerclient: %w", err)
	}
	c.conn = conn
	c.ledger = pb.NewCreditLedgerClient(conn)
	c.settings = pb.NewCreditSettingsClient(conn)
	c.webhooks = pb.NewCreditWebhooksClient(conn)
	return c, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Ledger returns the generated CreditLedger client over the same
// connection and policy (retries, deadlines, typed errors).
func (c *Client) Ledger() pb.CreditLedgerClient { return c.ledger }

// Settings returns the generated CreditSettings client over the same
// connection and policy.
func (c *Client) Settings() pb.CreditSettingsClient { return c.settings }

// Webhooks returns the generated CreditWebhooks client over the same
// connection and policy.
func (c *Client) Webhooks() pb.CreditWebhooksClient { return c.webhooks }

// bearer is the per-RPC credential carrying the token.
type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity is true only when the client was configured
// with TLS: WithToken on a plaintext connection is an explicit choice.
func (b bearer) RequireTransportSecurity() bool { return b.secure }
