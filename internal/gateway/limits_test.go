package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/grpcserver"
)

// doChunked sends body without a Content-Length (chunked transfer coding).
func doChunked(t *testing.T, method, url, body string) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// io.MultiReader hides the length from net/http, so it streams chunks.
	req, err := http.NewRequestWithContext(ctx, method, url, io.MultiReader(strings.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{code: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("body %q: %v", raw, err)
		}
	}
	return r
}

func TestChunkedBodyTooLarge(t *testing.T) {
	t.Parallel()
	e := start(t, grpcserver.NoAuth{}, "") // MaxBodyBytes 4096
	url := e.url + "/v1/workspaces/acme/accounts/alice:credit"

	r := doChunked(t, "POST", url, `{"amount":"5","idempotencyKey":"k","reference":"`+strings.Repeat("x", 5000)+`"}`)
	if r.code != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked oversized body: %d %s", r.code, r.raw)
	}
	if ei := detail(t, r.body, "google.rpc.ErrorInfo"); ei["reason"] != "REQUEST_TOO_LARGE" || r.header.Get("X-Request-Id") == "" {
		t.Errorf("chunked oversized body: %s", r.raw)
	}

	// A chunked body under the limit is served.
	if r := doChunked(t, "POST", url, `{"amount":"5","idempotencyKey":"k2"}`); r.code != 200 || r.body["balance"] != "5" {
		t.Errorf("chunked small body: %d %s", r.code, r.raw)
	}
}

func TestStrictIntegers(t *testing.T) {
	t.Parallel()
	e := start(t, grpcserver.NoAuth{}, "")
	acct := e.url + "/v1/workspaces/acme/accounts/alice"
	if r := do(t, "PATCH", e.url+"/v1/workspaces/acme/settings", `{"creditPaymentsEnabled":true}`, nil); r.code != 200 {
		t.Fatalf("settings: %d %s", r.code, r.raw)
	}

	refused := []struct {
		name, method, url, body, field string
	}{
		{"exponent number", "POST", acct + ":credit", `{"amount":1e3,"idempotencyKey":"a1"}`, "amount"},
		{"exponent string", "POST", acct + ":credit", `{"amount":"1e3","idempotencyKey":"a2"}`, "amount"},
		{"capital exponent", "POST", acct + ":credit", `{"amount":"1E3","idempotencyKey":"a3"}`, "amount"},
		{"zero fraction", "POST", acct + ":credit", `{"amount":1000.0,"idempotencyKey":"a4"}`, "amount"},
		{"leading zero", "POST", acct + ":credit", `{"amount":"0100","idempotencyKey":"a5"}`, "amount"},
		{"plus sign", "POST", acct + ":credit", `{"amount":"+100","idempotencyKey":"a6"}`, "amount"},
		{"proto field name", "POST", acct + ":credit", `{"amount":"1e2","idempotency_key":"a7"}`, "amount"},
		{"expected version", "POST", acct + ":debit", `{"amount":"1","expectedVersion":"1e0","idempotencyKey":"a8"}`, "expected_version"},
		{"submit request", "POST", acct + "/creditRequests", `{"amount":2e2,"idempotencyKey":"a9","paymentMethod":"PAYMENT_METHOD_BANK_TRANSFER"}`, "amount"},
		{
			"nested money in a body field", "POST", e.url + "/v1/workspaces/acme/packages",
			`{"id":"p1","displayName":"P","credits":"100","price":{"currencyCode":"USD","units":"1e1"}}`, "credit_package.price.units",
		},
		{
			"int32 nested", "POST", e.url + "/v1/workspaces/acme/packages",
			`{"id":"p2","displayName":"P","credits":100,"price":{"currencyCode":"USD","units":"10","nanos":5e8}}`, "credit_package.price.nanos",
		},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, tt.method, tt.url, tt.body, nil)
			if r.code != http.StatusBadRequest || r.body["code"] != float64(3) {
				t.Fatalf("%s: %d %s, want 400 INVALID_ARGUMENT", tt.body, r.code, r.raw)
			}
			if ei := detail(t, r.body, "google.rpc.ErrorInfo"); ei["reason"] != "INVALID_ARGUMENT" {
				t.Errorf("ErrorInfo = %v", ei)
			}
			vs, _ := detail(t, r.body, "google.rpc.BadRequest")["fieldViolations"].([]any)
			if len(vs) != 1 || vs[0].(map[string]any)["field"] != tt.field {
				t.Errorf("field violations = %v, want one for %s", vs, tt.field)
			}
		})
	}
	if r := do(t, "GET", acct+"/balance", "", nil); r.code != 200 || r.body["balance"] != nil {
		t.Errorf("balance after refusals: %d %s, want nothing posted", r.code, r.raw)
	}

	// Plain integers pass, quoted or not, and look-alike strings in text
	// fields and metadata are not integers at all.
	r := do(t, "POST", acct+":credit", `{"amount":1000,"idempotencyKey":"ok1","reference":"1e3","metadata":{"amount":"1e3"}}`, nil)
	if r.code != 200 || r.body["balance"] != "1000" {
		t.Fatalf("plain integer: %d %s", r.code, r.raw)
	}
	r = do(t, "POST", acct+":debit", `{"amount":"-0","idempotencyKey":"ok2","expectedVersion":"1"}`, nil)
	if r.code != 400 || strings.Contains(r.raw, "decimal integer") {
		t.Errorf("-0 is an integer (the domain refuses a zero amount itself): %d %s", r.code, r.raw)
	}
}
