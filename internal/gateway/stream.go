package gateway

import (
	"context"
	"math"
	"net/http"
	"strconv"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Streaming responses. ExportTransactions streams google.api.HttpBody
// messages (CSV); REST callers must get the CSV itself. grpc-gateway
// writes an HttpBody's data as the raw body, but only with a marshaler
// that knows HttpBody (for the Content-Type), and it writes a delimiter
// ("\n" unless the marshaler says otherwise) after every message, which
// would put a blank line into the CSV at every chunk boundary. It also
// writes a stream's error as {"error": status} instead of the status
// itself, and after the body has begun it appends that to the body.
//
// apiMarshaler fixes the first three; streamErrors the headers of an
// error before the body (WWW-Authenticate, Retry-After) and the error
// after it: the response is then cut off (the connection aborted), so a
// client sees a failed download, never a CSV with JSON at its end.

// apiMarshaler is the JSON marshaler of every route, plus HttpBody
// messages as raw bodies with their own content type, no delimiter
// between streamed messages, and stream errors as the bare status.
type apiMarshaler struct{ runtime.HTTPBodyMarshaler }

func newAPIMarshaler(json runtime.Marshaler) *apiMarshaler {
	return &apiMarshaler{runtime.HTTPBodyMarshaler{Marshaler: json}}
}

// Delimiter implements runtime.Delimited: streamed HttpBody chunks are
// parts of one body. (No RPC streams anything but HttpBody.)
func (m *apiMarshaler) Delimiter() []byte { return nil }

// ContentType implements runtime.Marshaler.
func (m *apiMarshaler) ContentType(v any) string {
	if _, ok := v.(*httpbody.HttpBody); ok {
		return m.HTTPBodyMarshaler.ContentType(v)
	}
	return m.Marshaler.ContentType(v)
}

// Marshal implements runtime.Marshaler. A stream's error chunk
// ({"error": status}) is written as the status alone, like every other
// error of the API.
//
// A stream of messages (WatchEvents) is newline-delimited JSON: each
// message ({"result": …}) ends with a newline. The delimiter cannot say
// so, since it also follows every chunk of a CSV export.
func (m *apiMarshaler) Marshal(v any) ([]byte, error) {
	if chunk, ok := v.(map[string]any); ok && len(chunk) == 1 {
		if _, ok := chunk["result"]; ok {
			b, err := m.HTTPBodyMarshaler.Marshal(v)
			if err != nil {
				return nil, err
			}
			return append(b, '\n'), nil
		}
	}
	if chunk, ok := v.(map[string]proto.Message); ok && len(chunk) == 1 {
		if st, ok := chunk["error"]; ok {
			return m.Marshaler.Marshal(st)
		}
	}
	return m.HTTPBodyMarshaler.Marshal(v)
}

// responseKey carries the call's trackedWriter to streamErrors.
type responseKey struct{}

// trackedWriter remembers whether the response has begun.
type trackedWriter struct {
	http.ResponseWriter
	begun bool
}

func (w *trackedWriter) WriteHeader(code int) {
	w.begun = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *trackedWriter) Write(b []byte) (int, error) {
	w.begun = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush.
func (w *trackedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// trackResponse wraps w for streamErrors and records it in r's context.
func trackResponse(w http.ResponseWriter, r *http.Request) (*trackedWriter, *http.Request) {
	tw := &trackedWriter{ResponseWriter: w}
	return tw, r.WithContext(context.WithValue(r.Context(), responseKey{}, tw))
}

// streamErrors is the gateway's StreamErrorHandler: it runs before the
// error is written. Before the body, it sets the headers errorHandler sets
// for unary calls; after, it aborts the response.
func streamErrors(ctx context.Context, err error) *status.Status {
	st := status.Convert(err)
	tw, _ := ctx.Value(responseKey{}).(*trackedWriter)
	if tw == nil {
		return st
	}
	if tw.begun {
		// The status line and part of the body are out: the only honest
		// signal left is to cut the response short.
		panic(http.ErrAbortHandler)
	}
	h := tw.Header()
	h.Del("Transfer-Encoding")
	if st.Code() == codes.Unauthenticated {
		h.Set("WWW-Authenticate", `Bearer realm="creditledger"`)
	}
	if d := retryDelay(st); d > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10))
	}
	return st
}
