package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// UserAgent is sent with every delivery so receivers can tell our requests
// apart in their logs and firewalls.
const UserAgent = "CreditLedger-Webhooks/1"

// Bounds on reading a response. The first ResponseExcerptLimit bytes are
// kept for the delivery log; up to drainLimit more are read and discarded
// so the connection can be reused; past that the connection is dropped
// rather than read.
const (
	ResponseExcerptLimit = 4 << 10
	drainLimit           = 64 << 10
)

// Message is one webhook to deliver.
type Message struct {
	// ID is sent as webhook-id: the event id (evt_…), the same on every
	// attempt, so receivers can drop duplicates of an at-least-once
	// delivery.
	ID string
	// Timestamp is sent as webhook-timestamp and signed. It is the time of
	// this attempt, not of the event: receivers refuse signatures more than
	// a few minutes old, and a retry may come days later. Zero means
	// time.Now().
	Timestamp time.Time
	// Body is the JSON payload, sent as is.
	Body []byte
}

// Attempt is the outcome of one delivery attempt, as recorded in the
// endpoint's delivery log.
type Attempt struct {
	// StatusCode is the response status, 0 when no response was received.
	StatusCode int
	// Latency is the time from sending the request to having read the
	// response (or failed).
	Latency time.Duration
	// Error says why the attempt failed, in words safe to show to the
	// endpoint's owner: "timeout", "connection refused", "address not
	// allowed", "redirect not followed", "http status 500"… Empty when OK.
	Error string
	// ResponseBody is the start of the response body, at most
	// ResponseExcerptLimit bytes, invalid UTF-8 replaced.
	ResponseBody string
	// Cause is the underlying error when there was no response, for the
	// operator's logs only: it may name internal addresses.
	Cause error
}

// OK reports whether the receiver accepted the webhook: a 2xx status.
func (a Attempt) OK() bool {
	return a.StatusCode >= 200 && a.StatusCode <= 299 && a.Error == ""
}

// Deliver makes one attempt to POST msg to url with the Standard Webhooks
// headers, signed by s, using c (made by NewClient). Whatever happens is in
// the returned Attempt; retrying is the caller's business. The status code
// alone decides success: a 2xx whose body cannot be read is still OK.
func Deliver(ctx context.Context, c *http.Client, s Signer, url string, msg Message) Attempt {
	if c == nil {
		return Attempt{Error: "internal error", Cause: errors.New("webhook: deliver: nil client")}
	}
	ts := msg.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	sig, err := s.Sign(msg.ID, ts, msg.Body)
	if err != nil {
		return Attempt{Error: "internal error", Cause: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(msg.Body))
	if err != nil {
		return Attempt{Error: "invalid url", Cause: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set(HeaderID, msg.ID)
	req.Header.Set(HeaderTimestamp, fmt.Sprint(ts.Unix()))
	req.Header.Set(HeaderSignature, sig)

	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return Attempt{Latency: time.Since(start), Error: describe(err), Cause: fmt.Errorf("webhook: deliver: %w", err)}
	}
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, ResponseExcerptLimit))
	_, _ = io.CopyN(io.Discard, resp.Body, drainLimit)
	_ = resp.Body.Close()

	a := Attempt{
		StatusCode:   resp.StatusCode,
		Latency:      time.Since(start),
		ResponseBody: strings.ToValidUTF8(string(excerpt), "\uFFFD"),
	}
	switch {
	case a.StatusCode >= 200 && a.StatusCode <= 299:
	case a.StatusCode >= 300 && a.StatusCode <= 399:
		a.Error = "redirect not followed"
	default:
		a.Error = fmt.Sprintf("http status %d", a.StatusCode)
	}
	return a
}

// describe turns a transport error into the few words shown to the
// endpoint's owner. It never includes the error's text, which can name
// resolved addresses and internal details.
func describe(err error) string {
	var (
		dnsErr    *net.DNSError
		netErr    net.Error
		verifyErr *tls.CertificateVerificationError
		authErr   x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		record    tls.RecordHeaderError
		alert     tls.AlertError
	)
	switch {
	case errors.Is(err, ErrAddressNotAllowed):
		return "address not allowed"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "host not found"
		}
		return "dns lookup failed"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable"
	case errors.As(err, &verifyErr), errors.As(err, &authErr),
		errors.As(err, &hostErr), errors.As(err, &invalid):
		return "tls certificate not valid"
	case errors.As(err, &record), errors.As(err, &alert):
		return "tls handshake failed"
	}
	return "request failed"
}
