// Package gateway is the HTTP door of the ledger: the grpc-gateway REST mux
// (which dials ledgerd's own gRPC listener, so that REST calls go through
// exactly the same interceptors — auth, logging, metrics, error mapping — as
// gRPC calls), /healthz, /readyz and the OpenAPI document (/openapi.json);
// and the /metrics handler, served on a listener of its own.
package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	// ErrorInfo and BadRequest details must resolve when the gateway
	// marshals a status to JSON; importing the package registers them.
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/gen/openapiv2"
	"github.com/creditledger/creditledger/internal/grpcserver"
)

// Defaults of Options.
const (
	DefaultMaxBodyBytes    = 1 << 20
	DefaultRequestTimeout  = 30 * time.Second
	DefaultReadyTimeout    = 2 * time.Second
	maxResponseFromBackend = grpcserver.DefaultMaxSendMsgBytes
)

// Options configure New.
type Options struct {
	// GRPCAddr is ledgerd's own gRPC listener (its bound address). An
	// unspecified host (0.0.0.0, ::) is dialed on loopback.
	GRPCAddr string
	// Logger is required.
	Logger *zap.Logger
	// TLS, when set, is the client configuration for dialing GRPCAddr
	// (ledgerd's gRPC port serves TLS): it must verify the server and, when
	// the port requires client certificates, present one. Nil dials
	// plaintext.
	TLS *tls.Config
	// Ping reports whether the store answers; /readyz is 503 while it fails. Required.
	Ping func(ctx context.Context) error
	// Warning, when set, is appended to every /readyz body (development mode).
	Warning string
	// MaxBodyBytes bounds request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// RequestTimeout bounds each REST call; 0 means DefaultRequestTimeout.
	RequestTimeout time.Duration
}

// Handler serves the REST API, health and metrics.
type Handler struct {
	mux      *http.ServeMux
	conn     *grpc.ClientConn
	log      *zap.Logger
	ping     func(context.Context) error
	warning  string
	maxBody  int64
	timeout  time.Duration
	draining atomic.Bool
}

// New returns the HTTP handler. Call Close to release its gRPC connection.
func New(ctx context.Context, o Options) (*Handler, error) {
	if o.Logger == nil || o.Ping == nil || o.GRPCAddr == "" {
		return nil, errors.New("gateway: GRPCAddr, Logger and Ping are required")
	}
	h := &Handler{
		log: o.Logger, ping: o.Ping, warning: o.Warning,
		maxBody: o.MaxBodyBytes, timeout: o.RequestTimeout,
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	if h.timeout <= 0 {
		h.timeout = DefaultRequestTimeout
	}
	creds := insecure.NewCredentials()
	if o.TLS != nil {
		creds = credentials.NewTLS(o.TLS)
	}
	conn, err := grpc.NewClient(dialTarget(o.GRPCAddr),
		grpc.WithTransportCredentials(creds),
		grpc.WithUserAgent("ledgerd-gateway"),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxResponseFromBackend)),
	)
	if err != nil {
		return nil, fmt.Errorf("gateway: dial %s: %w", o.GRPCAddr, err)
	}
	h.conn = conn

	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, newAPIMarshaler(&runtime.JSONPb{
			MarshalOptions: protojson.MarshalOptions{EmitUnpopulated: false, UseProtoNames: false},
			// A payments API refuses what it does not understand: a
			// misspelt field is an error, not a silently ignored one.
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		})),
		// Only the request id goes to gRPC as metadata; the Authorization
		// header is forwarded by the gateway itself. Cookies and the like
		// are not.
		runtime.WithIncomingHeaderMatcher(func(key string) (string, bool) {
			if http.CanonicalHeaderKey(key) == "X-Request-Id" {
				return grpcserver.RequestIDHeader, true
			}
			return "", false
		}),
		// The request id header is set by this handler before the call;
		// gRPC response metadata is not echoed as HTTP headers.
		runtime.WithOutgoingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithOutgoingTrailerMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithErrorHandler(errorHandler),
		runtime.WithStreamErrorHandler(streamErrors),
		runtime.WithRoutingErrorHandler(routingError),
		runtime.WithMiddlewares(strictIntegers(bodyRoutes())),
	)
	if err := pb.RegisterCreditLedgerHandler(ctx, gw, conn); err != nil {
		_ = conn.Close()
		return nil, err
	}
	if err := pb.RegisterCreditSettingsHandler(ctx, gw, conn); err != nil {
		_ = conn.Close()
		return nil, err
	}
	if err := pb.RegisterCreditWebhooksHandler(ctx, gw, conn); err != nil {
		_ = conn.Close()
		return nil, err
	}

	h.mux = http.NewServeMux()
	h.mux.HandleFunc("GET /healthz", h.healthz)
	h.mux.HandleFunc("GET /readyz", h.readyz)
	h.mux.HandleFunc("GET "+OpenAPIPath, openAPI)
	h.mux.Handle("/", h.api(gw))
	return h, nil
}

// NewMetricsHandler serves g on GET /metrics (and nothing else), for the
// metrics listener: the registry the interceptors and the observer use,
// with the Go runtime and process collectors.
func NewMetricsHandler(g prometheus.Gatherer, log *zap.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog: zap.NewStdLog(log), Timeout: 10 * time.Second,
	}))
	return mux
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Drain makes /readyz answer 503 from now on, so load balancers stop
// sending new requests before the servers shut down.
func (h *Handler) Drain() { h.draining.Store(true) }

// Close releases the connection to the gRPC server.
func (h *Handler) Close() error { return h.conn.Close() }

// OpenAPIPath is where the REST API's OpenAPI document is served.
const OpenAPIPath = "/openapi.json"

// openAPI serves the OpenAPI 2.0 document of the REST API, generated from
// the protos and embedded in the binary. It needs no token: it describes
// the API, it reveals no data.
func openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(openapiv2.JSON)
}

// healthz says the process is alive; it checks nothing else.
func (h *Handler) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz is 200 only while the store answers and the server is not draining.
func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	code, body := http.StatusOK, "ready\n"
	if h.draining.Load() {
		code, body = http.StatusServiceUnavailable, "draining\n"
	} else {
		ctx, cancel := context.WithTimeout(r.Context(), DefaultReadyTimeout)
		defer cancel()
		if err := h.ping(ctx); err != nil {
			h.log.Warn("readiness: store ping failed", zap.Error(err))
			code, body = http.StatusServiceUnavailable, "store unavailable\n"
		}
	}
	if h.warning != "" {
		body += h.warning + "\n"
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

// api bounds a REST call (body size, duration) and gives it a request id
// that travels to gRPC and back to the caller, even when the gateway
// itself refuses the request.
func (h *Handler) api(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !grpcserver.ValidRequestID(id) {
			id = uuid.NewString()
			r.Header.Set("X-Request-Id", id)
		}
		w.Header().Set("X-Request-Id", id)
		if field, ok := validURL(r); !ok {
			// gRPC would refuse to marshal the string and answer INTERNAL.
			writeStatus(w, http.StatusBadRequest, invalidUTF8(field))
			return
		}
		if r.ContentLength > h.maxBody {
			writeStatus(w, http.StatusRequestEntityTooLarge, tooLarge(h.maxBody))
			return
		}
		// The body is read here, whole and bounded, so that a chunked body
		// (no Content-Length) over the limit gets the same 413 rather than
		// the decoder's error, and so that the strict-integer check can
		// look at it before protojson does.
		if r.Body != nil && r.Body != http.NoBody {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
			var tooBig *http.MaxBytesError
			switch {
			case errors.As(err, &tooBig):
				writeStatus(w, http.StatusRequestEntityTooLarge, tooLarge(h.maxBody))
				return
			case err != nil:
				writeStatus(w, http.StatusBadRequest, status.New(codes.InvalidArgument, "the request body could not be read"))
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		timeout := h.timeout
		if watchRoute(r) {
			// A watch streams until the caller leaves; it resumes from its
			// last sequence should the stream end.
			timeout = MaxWatch
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(MaxWatch + 10*time.Second))
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		tw, r := trackResponse(w, r.WithContext(ctx))
		next.ServeHTTP(tw, r)
	})
}

// MaxWatch bounds one REST watch of events: the caller then watches again
// from its last sequence.
const MaxWatch = time.Hour

// watchRoute reports whether r is a watch of events (…/events:watch).
func watchRoute(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/workspaces/") && strings.HasSuffix(r.URL.Path, "/events:watch")
}

// validURL reports whether every path segment and query parameter of r is
// valid UTF-8 once unescaped, and names the first that is not.
func validURL(r *http.Request) (string, bool) {
	if !utf8.ValidString(r.URL.Path) {
		return "path", false
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return "query", true // grpc-gateway answers a malformed query itself
	}
	for k, vs := range q {
		if !utf8.ValidString(k) {
			return "query", false
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return k, false
			}
		}
	}
	return "", true
}

func invalidUTF8(field string) *status.Status {
	st := status.New(codes.InvalidArgument, "the request URL is not valid UTF-8")
	if d, err := st.WithDetails(
		&errdetails.ErrorInfo{Domain: grpcserver.ErrorDomain, Reason: grpcserver.WireReason(pb.ErrorReason_ERROR_REASON_INVALID_ARGUMENT)},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{
			Field: field, Description: "must be valid UTF-8",
		}}},
	); err == nil {
		st = d
	}
	return st
}

// routingError answers what no route serves: 404 for an unknown path, 405
// (not grpc-gateway's 501) for a known path with another method.
func routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	if httpStatus == http.StatusMethodNotAllowed {
		writeStatus(w, http.StatusMethodNotAllowed, status.New(codes.Unimplemented, "method not allowed on this route"))
		return
	}
	runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, httpStatus)
}

func tooLarge(limit int64) *status.Status {
	st := status.New(codes.InvalidArgument, "the request body exceeds "+strconv.FormatInt(limit, 10)+" bytes")
	if d, err := st.WithDetails(&errdetails.ErrorInfo{
		Domain: grpcserver.ErrorDomain, Reason: grpcserver.WireReason(pb.ErrorReason_ERROR_REASON_REQUEST_TOO_LARGE),
		Metadata: map[string]string{"max_bytes": strconv.FormatInt(limit, 10)},
	}); err == nil {
		st = d
	}
	return st
}

var errorMarshaler = &runtime.JSONPb{MarshalOptions: protojson.MarshalOptions{EmitUnpopulated: false, UseProtoNames: false}}

// errorHandler writes the gateway's JSON status ({"code", "message",
// "details": [ErrorInfo, BadRequest…]}) with the HTTP status of the gRPC
// code. It differs from runtime.DefaultHTTPErrorHandler in one point: the
// WWW-Authenticate challenge of a 401 is a valid Bearer challenge rather
// than the status message.
func errorHandler(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
	httpCode := 0
	var hs *runtime.HTTPStatusError
	if errors.As(err, &hs) {
		httpCode, err = hs.HTTPStatus, hs.Err
	}
	st := status.Convert(err)
	if httpCode == 0 {
		httpCode = runtime.HTTPStatusFromCode(st.Code())
	}
	if st.Code() == codes.Unauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="creditledger"`)
	}
	if d := retryDelay(st); d > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10))
	}
	writeStatus(w, httpCode, st)
}

// retryDelay is the google.rpc.RetryInfo delay of st (a rate limit's 429
// carries it as Retry-After), or 0.
func retryDelay(st *status.Status) time.Duration {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}

func writeStatus(w http.ResponseWriter, httpCode int, st *status.Status) {
	w.Header().Del("Trailer")
	w.Header().Del("Transfer-Encoding")
	p := st.Proto()
	// A message may quote the request (a query parameter); JSON needs it
	// valid UTF-8.
	p.Message = strings.ToValidUTF8(p.Message, "\uFFFD")
	buf, err := errorMarshaler.Marshal(p)
	if err != nil {
		buf = []byte(`{"code":13,"message":"failed to marshal error message"}`)
		httpCode = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpCode)
	_, _ = w.Write(buf)
}

// dialTarget turns a listen address into one to dial: a wildcard host is
// reached on loopback.
func dialTarget(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// NewHTTPServer returns an http.Server for h with bounded header size and
// timeouts, so that slow or idle clients cannot hold connections forever.
func NewHTTPServer(h http.Handler, log *zap.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      DefaultRequestTimeout + 10*time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(log),
	}
}
