package webhook

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// Default timeouts of NewClient: short enough that a worker is never held
// long by one receiver, long enough for a TLS handshake across the world.
const (
	DefaultDialTimeout           = 5 * time.Second
	DefaultTLSHandshakeTimeout   = 5 * time.Second
	DefaultResponseHeaderTimeout = 10 * time.Second
	DefaultTimeout               = 15 * time.Second
)

// maxResponseHeaderBytes bounds the headers a receiver may send back; we
// read none of them.
const maxResponseHeaderBytes = 64 << 10

// ClientOptions configures NewClient. The zero value is the production
// setting: public addresses only, default timeouts.
type ClientOptions struct {
	// AllowPrivate lets deliveries reach loopback, private and other
	// non-public addresses. For development and tests only.
	AllowPrivate bool

	// DialTimeout bounds DNS resolution and the TCP connect.
	DialTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake.
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for the response status and
	// headers once the request is written.
	ResponseHeaderTimeout time.Duration
	// Timeout bounds the whole request, reading the response body
	// included.
	Timeout time.Duration
}

// withDefaults returns o with every unset or negative timeout replaced by
// its default.
func (o ClientOptions) withDefaults() ClientOptions {
	set := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	set(&o.DialTimeout, DefaultDialTimeout)
	set(&o.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout)
	set(&o.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
	set(&o.Timeout, DefaultTimeout)
	return o
}

// NewClient returns an HTTP client for deliveries: it refuses non-public
// destinations (unless opts.AllowPrivate) at connect time, follows no
// redirects, ignores proxy settings from the environment and times out.
// Refused destinations fail with an error wrapping ErrAddressNotAllowed.
func NewClient(opts ClientOptions) *http.Client {
	return newClient(opts, nil)
}

// newClient is NewClient with a hook run on each address the policy lets
// through, just before connecting. Tests use it to make sure no packet
// leaves for an address outside this machine even if the policy were
// wrong.
func newClient(opts ClientOptions, beforeConnect func(netip.AddrPort) error) *http.Client {
	opts = opts.withDefaults()
	dialer := &net.Dialer{
		Timeout:   opts.DialTimeout,
		KeepAlive: 30 * time.Second,
		Control:   dialControl(opts.AllowPrivate, beforeConnect),
	}
	transport := &http.Transport{
		// Proxy stays nil: a proxy from the environment would make the
		// connection, and the address check would only see the proxy.
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    opts.TLSHandshakeTimeout,
		ResponseHeaderTimeout:  opts.ResponseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        90 * time.Second,
	}
	return &http.Client{
		Transport: transport,
		Timeout:   opts.Timeout,
		// A redirect could lead anywhere after the URL was validated; the
		// 3xx response is returned as is and counts as a failed attempt.
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// dialControl returns a net.Dialer.Control function. It runs after DNS
// resolution and socket creation but before connect, for every address the
// dialer tries, so it sees the address actually used whatever the name
// resolved to at validation time.
func dialControl(allowPrivate bool, beforeConnect func(netip.AddrPort) error) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		if network != "tcp4" && network != "tcp6" {
			return fmt.Errorf("%w: network %s", ErrAddressNotAllowed, network)
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: unparsable address %q", ErrAddressNotAllowed, address)
		}
		if !allowPrivate {
			if err := checkAddr(ap.Addr()); err != nil {
				return err
			}
		}
		if beforeConnect != nil {
			return beforeConnect(ap)
		}
		return nil
	}
}
