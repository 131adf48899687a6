// Package tlsreload keeps a certificate and its key loaded from PEM files
// and picks up new files without a restart, for certificates that a
// certificate manager renews in place.
//
// The files are checked at most once per interval (default 2s), on the
// next handshake that needs the certificate: one stat of each file, so a
// handshake pays nothing more in the common case. A changed modification
// time or size triggers a reload. A new pair that cannot be loaded (half
// written, key and certificate not matching, unparsable) is reported once
// and the previous certificate stays in use.
package tlsreload

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// DefaultInterval is how often, at most, the files are checked for a change.
const DefaultInterval = 2 * time.Second

// Option configures Load.
type Option func(*Cert)

// WithInterval sets how often, at most, the files are checked (default
// DefaultInterval; 0 checks on every handshake).
func WithInterval(d time.Duration) Option { return func(c *Cert) { c.interval = d } }

// WithErrorFunc calls fn when changed files cannot be loaded (the previous
// certificate stays in use). fn is called once per change, not per handshake.
func WithErrorFunc(fn func(error)) Option { return func(c *Cert) { c.onError = fn } }

// WithReloadFunc calls fn with the new leaf after each successful reload.
func WithReloadFunc(fn func(*x509.Certificate)) Option { return func(c *Cert) { c.onReload = fn } }

// withClock replaces time.Now (tests).
func withClock(now func() time.Time) Option { return func(c *Cert) { c.now = now } }

// Cert is a certificate and key pair reloaded from files. Its methods are
// safe for concurrent use; plug GetCertificate or GetClientCertificate
// into a tls.Config.
type Cert struct {
	certFile, keyFile string
	interval          time.Duration
	now               func() time.Time
	onError           func(error)
	onReload          func(*x509.Certificate)

	mu      sync.Mutex
	cert    *tls.Certificate
	prev    *tls.Certificate // the certificate before the last reload
	loaded  stamp            // the files' stamp when cert was read
	failed  stamp            // the last stamp that could not be loaded
	checked time.Time
}

// stamp identifies a version of the two files.
type stamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

// Load reads the pair once (an error here is fatal for the caller: there
// is no previous certificate to fall back on).
func Load(certFile, keyFile string, opts ...Option) (*Cert, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tlsreload: a certificate file and a key file are both required")
	}
	c := &Cert{certFile: certFile, keyFile: keyFile, interval: DefaultInterval, now: time.Now}
	for _, o := range opts {
		o(c)
	}
	st, err := c.stat()
	if err != nil {
		return nil, err
	}
	cert, err := c.read()
	if err != nil {
		return nil, err
	}
	c.cert, c.loaded, c.checked = cert, st, c.now()
	return c, nil
}

// Certificate returns the current certificate, reloading the files first
// when they changed and the interval has passed since the last check.
func (c *Cert) Certificate() *tls.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if now.Sub(c.checked) < c.interval {
		return c.cert
	}
	c.checked = now
	st, err := c.stat()
	if err != nil {
		c.fail(st, err)
		return c.cert
	}
	if st == c.loaded || st == c.failed {
		return c.cert
	}
	cert, err := c.read()
	if err != nil {
		c.fail(st, err)
		return c.cert
	}
	c.prev, c.cert, c.loaded, c.failed = c.cert, cert, st, stamp{}
	if c.onReload != nil {
		c.onReload(cert.Leaf)
	}
	return c.cert
}

// GetCertificate serves tls.Config.GetCertificate (servers).
func (c *Cert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.Certificate(), nil
}

// GetClientCertificate serves tls.Config.GetClientCertificate (clients
// presenting a certificate for mTLS).
func (c *Cert) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return c.Certificate(), nil
}

// IsCurrent reports whether der (a DER certificate) is the certificate in
// use or the one it replaced last: a peer that loaded its copy just before
// a reload still matches.
func (c *Cert) IsCurrent(der []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range []*tls.Certificate{c.cert, c.prev} {
		if k != nil && len(k.Certificate) > 0 && bytes.Equal(k.Certificate[0], der) {
			return true
		}
	}
	return false
}

// fail reports err once per stamp.
func (c *Cert) fail(st stamp, err error) {
	if st == c.failed && st != (stamp{}) {
		return
	}
	c.failed = st
	if c.onError != nil {
		c.onError(fmt.Errorf("keeping the previous certificate: %w", err))
	}
}

func (c *Cert) stat() (stamp, error) {
	cs, err := os.Stat(c.certFile)
	if err != nil {
		return stamp{}, fmt.Errorf("tlsreload: certificate file: %w", err)
	}
	ks, err := os.Stat(c.keyFile)
	if err != nil {
		return stamp{}, fmt.Errorf("tlsreload: key file: %w", err)
	}
	return stamp{certMod: cs.ModTime(), keyMod: ks.ModTime(), certSize: cs.Size(), keySize: ks.Size()}, nil
}

func (c *Cert) read() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return nil, fmt.Errorf("tlsreload: load %s and %s: %w", c.certFile, c.keyFile, err)
	}
	if cert.Leaf == nil {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("tlsreload: parse %s: %w", c.certFile, err)
		}
		cert.Leaf = leaf
	}
	return &cert, nil
}
