package portal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxResponse bounds what the portal reads of one API answer (a page of
// history, a catalog): far more than any legitimate page.
const maxResponse = 8 << 20

// APIError is a refusal or failure of one of the APIs the portal calls:
// the ledger's gateway status ({"code", "message", "details": [ErrorInfo]})
// or the consumers' {"error": {"code", "message", "metadata"}}, reduced to
// what a page needs.
type APIError struct {
	Service  string // ledger, checkout, invoicing
	Status   int    // HTTP status; 0 when the service did not answer
	Reason   string // INSUFFICIENT_CREDITS, CREDIT_PAYMENTS_DISABLED, …
	Message  string
	Metadata map[string]string
	cause    error
}

func (e *APIError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %v", e.Service, e.cause)
	}
	return fmt.Sprintf("%s: HTTP %d %s: %s", e.Service, e.Status, e.Reason, e.Message)
}

func (e *APIError) Unwrap() error { return e.cause }

// reasonOf is the machine reason of err, or "" for a non-API error.
func reasonOf(err error) string {
	var e *APIError
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// statusOf is the HTTP status of an API error, or 0.
func statusOf(err error) int {
	var e *APIError
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// api calls one JSON HTTP API with a bearer token.
type api struct {
	name string // for errors and logs
	base string // http://127.0.0.1:8080, no trailing slash
	hc   *http.Client
}

// call sends method path with body (JSON-encoded unless nil) and decodes
// a 2xx answer into out (when not nil). header adds request headers
// (an Idempotency-Key).
func (a *api) call(ctx context.Context, tok, method, path string, body, out any, header ...string) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	res, err := a.send(ctx, tok, method, path, rd, header...)
	if err != nil {
		return err
	}
	defer func() { _ = res.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxResponse))
	if err != nil {
		return &APIError{Service: a.name, cause: err}
	}
	if res.StatusCode/100 != 2 {
		return a.decodeError(res.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &APIError{Service: a.name, Status: res.StatusCode, cause: fmt.Errorf("decode %s %s: %w", method, path, err)}
	}
	return nil
}

// send is the raw request; the caller closes the body. A transport
// failure is an APIError with status 0.
func (a *api) send(ctx context.Context, tok, method, path string, body io.Reader, header ...string) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body) //nolint:gosec // G704: the base is configured, every path segment escaped
	if err != nil {
		cancel()
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] != "" {
			req.Header.Set(header[i], header[i+1])
		}
	}
	res, err := a.hc.Do(req) //nolint:gosec // G704: as above
	if err != nil {
		cancel()
		return nil, &APIError{Service: a.name, Reason: "UNAVAILABLE", Message: a.name + " did not answer", cause: err}
	}
	res.Body = cancelOnClose{res.Body, cancel}
	return res, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// decodeError reads either error shape.
func (a *api) decodeError(status int, data []byte) error {
	e := &APIError{Service: a.name, Status: status}
	var ledger struct {
		Message string `json:"message"`
		Details []struct {
			Type     string            `json:"@type"`
			Reason   string            `json:"reason"`
			Metadata map[string]string `json:"metadata"`
		} `json:"details"`
		Error *struct {
			Code     string            `json:"code"`
			Message  string            `json:"message"`
			Metadata map[string]string `json:"metadata"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &ledger) == nil {
		switch {
		case ledger.Error != nil:
			e.Reason, e.Message, e.Metadata = ledger.Error.Code, ledger.Error.Message, ledger.Error.Metadata
		default:
			e.Message = ledger.Message
			for _, d := range ledger.Details {
				if strings.HasSuffix(d.Type, "google.rpc.ErrorInfo") {
					e.Reason, e.Metadata = d.Reason, d.Metadata
				}
			}
		}
	}
	if e.Reason == "" {
		e.Reason = httpReason(status)
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}

func httpReason(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return "UNAVAILABLE"
	default:
		return "HTTP_" + strconv.Itoa(status)
	}
}

// Int64 reads an int64 given as a JSON string (protojson) or number.
type Int64 int64

// UnmarshalJSON accepts "12", 12 and null.
func (n *Int64) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*n = 0
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("int64 %q: %w", s, err)
	}
	*n = Int64(v)
	return nil
}

// Money is a price as the ledger (protojson google.type.Money) and the
// consumers (snake_case) give it; it reads both.
type Money struct {
	Currency string
	Units    int64
	Nanos    int32
}

// UnmarshalJSON reads {"currencyCode","units","nanos"} or the snake_case form.
func (m *Money) UnmarshalJSON(b []byte) error {
	var raw struct {
		CurrencyCode  string `json:"currencyCode"`
		CurrencyCode2 string `json:"currency_code"`
		Units         Int64  `json:"units"`
		Nanos         int32  `json:"nanos"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	m.Currency = raw.CurrencyCode + raw.CurrencyCode2
	m.Units, m.Nanos = int64(raw.Units), raw.Nanos
	return nil
}

// ledgerJSON is the protojson shape the gateway accepts.
func (m Money) ledgerJSON() map[string]any {
	return map[string]any{"currencyCode": m.Currency, "units": strconv.FormatInt(m.Units, 10), "nanos": m.Nanos}
}

// Decimal renders the amount alone, with at least two decimals: "3.51",
// "49.99", "10.00", "0.125".
func (m Money) Decimal() string {
	frac := strings.TrimRight(fmt.Sprintf("%09d", m.Nanos), "0")
	for len(frac) < 2 {
		frac += "0"
	}
	return strconv.FormatInt(m.Units, 10) + "." + frac
}

// String renders "USD 3.51".
func (m Money) String() string {
	if m.Currency == "" {
		return ""
	}
	return m.Currency + " " + m.Decimal()
}

func pathEsc(s string) string { return url.PathEscape(s) }
