package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// ignoreVolatile leaves out of comparisons what depends on timing or on
// the exact transport error.
var ignoreVolatile = cmpopts.IgnoreFields(Attempt{}, "Latency", "Cause")

// testMessage is a message signed at a fixed time, so receivers verify it
// with VerifyAt at that time.
var testMessage = Message{
	ID:        "evt_2mV8kQ",
	Timestamp: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	Body:      []byte(`{"type":"credits.granted","data":{"account":"acc_1","amount":100}}`),
}

// localClient is the development client, allowed to reach the test
// servers on loopback.
func localClient(t testing.TB, opts ClientOptions) *http.Client {
	t.Helper()
	opts.AllowPrivate = true
	c := NewClient(opts)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// newReceiver starts an HTTP server on addr ("127.0.0.1:0" or "[::1]:0")
// and counts the requests it gets.
func newReceiver(t testing.TB, addr string, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	hits := new(atomic.Int32)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h(w, r)
	}))
	_ = srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, hits
}

func ok(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "thanks") }

func TestDeliverSendsSignedRequest(t *testing.T) {
	t.Parallel()
	secret := mustSecret(t)
	type received struct {
		Method, ContentType, UserAgent, ID, Timestamp string
		VerifyErr                                     error
	}
	got := make(chan received, 1)
	srv, _ := newReceiver(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading body: %v", err)
		}
		got <- received{
			Method:      r.Method,
			ContentType: r.Header.Get("content-type"),
			UserAgent:   r.Header.Get("user-agent"),
			ID:          r.Header.Get("webhook-id"),
			Timestamp:   r.Header.Get("webhook-timestamp"),
			VerifyErr:   VerifyAt(secret, r.Header, body, testMessage.Timestamp),
		}
		w.WriteHeader(http.StatusNoContent)
	})

	a := Deliver(context.Background(), localClient(t, ClientOptions{}), mustSigner(t, secret), srv.URL+"/hooks", testMessage)

	if diff := cmp.Diff(Attempt{StatusCode: http.StatusNoContent}, a, ignoreVolatile); diff != "" {
		t.Errorf("Attempt (-want +got):\n%s", diff)
	}
	if !a.OK() || a.Cause != nil || a.Latency <= 0 {
		t.Errorf("OK() = %v, Cause = %v, Latency = %v; want true, nil, > 0", a.OK(), a.Cause, a.Latency)
	}
	want := received{
		Method:      http.MethodPost,
		ContentType: "application/json",
		UserAgent:   "CreditLedger-Webhooks/1",
		ID:          testMessage.ID,
		Timestamp:   strconv.FormatInt(testMessage.Timestamp.Unix(), 10),
	}
	if diff := cmp.Diff(want, <-got, cmpopts.EquateErrors()); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
}

// TestClientAddressPolicy checks that the production client refuses
// non-public destinations before connecting, and that AllowPrivate lets
// the loopback ones through.
func TestClientAddressPolicy(t *testing.T) {
	t.Parallel()
	signer := mustSigner(t, mustSecret(t))
	for _, tc := range []struct {
		name string
		// listen is where a receiver runs, "" for none: the address is
		// off this machine and must never be connected to.
		listen string
		url    func(port string) string
	}{
		{"127.0.0.1", "127.0.0.1:0", func(p string) string { return "http://127.0.0.1:" + p + "/" }},
		{"localhost", "127.0.0.1:0", func(p string) string { return "http://localhost:" + p + "/" }},
		{"::1", "[::1]:0", func(p string) string { return "http://[::1]:" + p + "/" }},
		{"::ffff:127.0.0.1", "127.0.0.1:0", func(p string) string { return "http://[::ffff:127.0.0.1]:" + p + "/" }},
		{"10.0.0.1", "", func(string) string { return "http://10.0.0.1/" }},
		{"169.254.169.254", "", func(string) string { return "http://169.254.169.254/latest/meta-data/" }},
		{"100.64.0.1", "", func(string) string { return "https://100.64.0.1/" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			port, hits := "80", new(atomic.Int32)
			if tc.listen != "" {
				var srv *httptest.Server
				srv, hits = newReceiver(t, tc.listen, ok)
				port = strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
			}
			url := tc.url(port)

			// Any address the policy lets through here is a bug; the hook
			// stops the connect so that no packet leaves even then.
			refusing := newClient(ClientOptions{DialTimeout: time.Second}, func(ap netip.AddrPort) error {
				t.Errorf("policy let %s through", ap)
				return errors.New("stopped by test")
			})
			t.Cleanup(refusing.CloseIdleConnections)
			a := Deliver(context.Background(), refusing, signer, url, testMessage)
			if diff := cmp.Diff(Attempt{Error: "address not allowed"}, a, ignoreVolatile); diff != "" {
				t.Errorf("refused Attempt (-want +got):\n%s", diff)
			}
			if !errors.Is(a.Cause, ErrAddressNotAllowed) {
				t.Errorf("Cause = %v, want %v", a.Cause, ErrAddressNotAllowed)
			}
			if n := hits.Load(); n != 0 {
				t.Errorf("receiver got %d requests from the production client", n)
			}

			if tc.listen == "" {
				return
			}
			a = Deliver(context.Background(), localClient(t, ClientOptions{}), signer, url, testMessage)
			if diff := cmp.Diff(Attempt{StatusCode: http.StatusOK, ResponseBody: "thanks"}, a, ignoreVolatile); diff != "" {
				t.Errorf("AllowPrivate Attempt (-want +got):\n%s", diff)
			}
			if n := hits.Load(); n != 1 {
				t.Errorf("receiver got %d requests with AllowPrivate, want 1", n)
			}
		})
	}
}

func TestDeliverOutcomes(t *testing.T) {
	t.Parallel()
	signer := mustSigner(t, mustSecret(t))
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		opts    ClientOptions
		want    Attempt
	}{
		{
			name:    "200",
			handler: ok,
			want:    Attempt{StatusCode: 200, ResponseBody: "thanks"},
		},
		{
			name: "500",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "database down", http.StatusInternalServerError)
			},
			want: Attempt{StatusCode: 500, Error: "http status 500", ResponseBody: "database down\n"},
		},
		{
			name:    "404",
			handler: http.NotFound,
			want:    Attempt{StatusCode: 404, Error: "http status 404", ResponseBody: "404 page not found\n"},
		},
		{
			name: "long body kept in part",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, strings.Repeat("x", 1<<20))
			},
			want: Attempt{StatusCode: 200, ResponseBody: strings.Repeat("x", ResponseExcerptLimit)},
		},
		{
			name: "invalid utf-8 replaced",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				_, _ = w.Write([]byte("ok\xff"))
			},
			want: Attempt{StatusCode: 200, ResponseBody: "ok\uFFFD"},
		},
		{
			name:    "no response headers in time",
			handler: hangUntilDone,
			opts:    ClientOptions{ResponseHeaderTimeout: 100 * time.Millisecond},
			want:    Attempt{Error: "timeout"},
		},
		{
			name:    "no response in time",
			handler: hangUntilDone,
			opts:    ClientOptions{Timeout: 100 * time.Millisecond},
			want:    Attempt{Error: "timeout"},
		},
		{
			// The status decides: the receiver accepted the webhook.
			name: "body never ends",
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "accepted")
				w.(http.Flusher).Flush()
				hangUntilDone(w, r)
			},
			opts: ClientOptions{Timeout: 100 * time.Millisecond},
			want: Attempt{StatusCode: 200, ResponseBody: "accepted"},
		},
		{
			name: "connection closed",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					_ = conn.Close()
				}
			},
			want: Attempt{Error: "connection reset"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := newReceiver(t, "127.0.0.1:0", tc.handler)
			a := Deliver(context.Background(), localClient(t, tc.opts), signer, srv.URL, testMessage)
			if diff := cmp.Diff(tc.want, a, ignoreVolatile); diff != "" {
				t.Errorf("Attempt (-want +got):\n%s", diff)
			}
			if a.OK() != (tc.want.StatusCode == 200 && tc.want.Error == "") {
				t.Errorf("OK() = %v", a.OK())
			}
		})
	}
}

// hangUntilDone answers nothing until the client gives up. It reads the
// body first: only then does the server watch the connection and cancel
// the request's context when the client closes it.
func hangUntilDone(_ http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	<-r.Context().Done()
}

func TestDeliverDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	target, targetHits := newReceiver(t, "127.0.0.1:0", ok)
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			srv, _ := newReceiver(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+"/stolen", code)
			})
			a := Deliver(context.Background(), localClient(t, ClientOptions{}), mustSigner(t, mustSecret(t)), srv.URL, testMessage)
			want := Attempt{StatusCode: code, Error: "redirect not followed"}
			if diff := cmp.Diff(want, a, ignoreVolatile, cmpopts.IgnoreFields(Attempt{}, "ResponseBody")); diff != "" {
				t.Errorf("Attempt (-want +got):\n%s", diff)
			}
			if a.OK() {
				t.Error("OK() = true for a redirect")
			}
		})
	}
	t.Cleanup(func() {
		if n := targetHits.Load(); n != 0 {
			t.Errorf("redirect target got %d requests", n)
		}
	})
}

func TestDeliverFailsBeforeSending(t *testing.T) {
	t.Parallel()
	signer := mustSigner(t, mustSecret(t))
	closedPort := func(t testing.TB) string {
		t.Helper()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		return "http://" + addr + "/"
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		signer Signer
		url    func(testing.TB) string
		want   Attempt
	}{
		{"connection refused", context.Background(), signer, closedPort, Attempt{Error: "connection refused"}},
		{"canceled", canceled, signer, closedPort, Attempt{Error: "canceled"}},
		{"no secret", context.Background(), Signer{}, closedPort, Attempt{Error: "internal error"}},
		{"bad url", context.Background(), signer, func(testing.TB) string { return "http://[::1" }, Attempt{Error: "invalid url"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := Deliver(tc.ctx, localClient(t, ClientOptions{}), tc.signer, tc.url(t), testMessage)
			if diff := cmp.Diff(tc.want, a, ignoreVolatile); diff != "" {
				t.Errorf("Attempt (-want +got):\n%s", diff)
			}
			if a.Cause == nil || a.OK() {
				t.Errorf("Cause = nil or OK() = true for a failed attempt: %+v", a)
			}
		})
	}
}

func TestDeliverTLS(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(ok))
	// The refused handshake below is expected; keep it out of the output.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	signer := mustSigner(t, mustSecret(t))

	a := Deliver(context.Background(), localClient(t, ClientOptions{}), signer, srv.URL, testMessage)
	if diff := cmp.Diff(Attempt{Error: "tls certificate not valid"}, a, ignoreVolatile); diff != "" {
		t.Errorf("untrusted certificate: Attempt (-want +got):\n%s", diff)
	}

	trusting := localClient(t, ClientOptions{})
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	trusting.Transport.(*http.Transport).TLSClientConfig.RootCAs = pool
	a = Deliver(context.Background(), trusting, signer, srv.URL, testMessage)
	if diff := cmp.Diff(Attempt{StatusCode: 200, ResponseBody: "thanks"}, a, ignoreVolatile); diff != "" {
		t.Errorf("trusted certificate: Attempt (-want +got):\n%s", diff)
	}
}

func TestClientIgnoresProxyEnvironment(t *testing.T) {
	t.Parallel()
	if p := NewClient(ClientOptions{}).Transport.(*http.Transport).Proxy; p != nil {
		t.Error("Transport.Proxy is set; deliveries must not go through a proxy from the environment")
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	opErr := func(err error) error {
		return fmt.Errorf("Post: %w", &net.OpError{Op: "dial", Net: "tcp", Err: err})
	}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"address", opErr(fmt.Errorf("%w: 10.0.0.1 is private", ErrAddressNotAllowed)), "address not allowed"},
		{"deadline", context.DeadlineExceeded, "timeout"},
		{"canceled", context.Canceled, "canceled"},
		{"dns not found", &net.DNSError{Err: "no such host", Name: "internal.corp", IsNotFound: true}, "host not found"},
		{"dns failure", &net.DNSError{Err: "server misbehaving", Name: "internal.corp", Server: "10.0.0.53:53"}, "dns lookup failed"},
		{"dns timeout", &net.DNSError{Err: "i/o timeout", IsTimeout: true}, "timeout"},
		{"refused", opErr(syscall.ECONNREFUSED), "connection refused"},
		{"reset", opErr(syscall.ECONNRESET), "connection reset"},
		{"eof", io.EOF, "connection reset"},
		{"unreachable", opErr(syscall.EHOSTUNREACH), "host unreachable"},
		{"unknown authority", x509.UnknownAuthorityError{}, "tls certificate not valid"},
		{"wrong host", x509.HostnameError{Host: "internal.corp"}, "tls certificate not valid"},
		{"plain http", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, "tls handshake failed"},
		{"other", errors.New("dial tcp 10.1.2.3:443: something internal"), "request failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := describe(tc.err); got != tc.want {
				t.Errorf("describe(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}
