package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// seed gives the demo workspace what the portal's flows need: credit
// payments on with every method, two packages, a USD rate, services in
// checkout (two that may be bought with credits, one that may not), two
// clients with a welcome credit, and an open invoice for each.
func (s *Stack) seed(ctx context.Context) error {
	ws := "/v1/workspaces/" + s.Workspace
	steps := []struct {
		base, tok, method, path string
		body                    any
	}{
		{s.LedgerURL, s.AdminToken, http.MethodPatch, ws + "/settings?updateMask=credit_payments_enabled,payment_methods", map[string]any{
			"creditPaymentsEnabled": true,
			"paymentMethods":        []string{"PAYMENT_METHOD_STRIPE", "PAYMENT_METHOD_BANK_TRANSFER", "PAYMENT_METHOD_CRYPTO"},
		}},
		{s.LedgerURL, s.AdminToken, http.MethodPost, ws + "/packages?packageId=starter", map[string]any{
			"displayName": "Starter", "credits": "100", "price": map[string]any{"currencyCode": "USD", "units": "10"},
		}},
		{s.LedgerURL, s.AdminToken, http.MethodPost, ws + "/packages?packageId=pro", map[string]any{
			"displayName": "Pro", "credits": "550", "price": map[string]any{"currencyCode": "USD", "units": "49", "nanos": 990000000},
		}},
		{s.LedgerURL, s.AdminToken, http.MethodPut, ws + "/conversionRates/USD", map[string]any{"rate": "10"}},
		{s.LedgerURL, s.ServiceToken, http.MethodPost, ws + "/accounts/client-1:credit", map[string]any{
			"amount": "120", "kind": "TRANSACTION_KIND_ADJUSTMENT", "reference": "welcome:client-1", "idempotencyKey": "demo:welcome:client-1",
		}},
		{s.LedgerURL, s.ServiceToken, http.MethodPost, ws + "/accounts/client-2:credit", map[string]any{
			"amount": "200", "kind": "TRANSACTION_KIND_ADJUSTMENT", "reference": "welcome:client-2", "idempotencyKey": "demo:welcome:client-2",
		}},
		{s.CheckoutURL, s.AdminToken, http.MethodPut, ws + "/services/logo", map[string]any{
			"name": "Logo design", "price": map[string]any{"currency_code": "USD", "units": 3, "nanos": 510000000}, "credit_eligible": true,
		}},
		{s.CheckoutURL, s.AdminToken, http.MethodPut, ws + "/services/audit", map[string]any{
			"name": "Website audit", "price": map[string]any{"currency_code": "USD", "units": 25}, "credit_eligible": true,
		}},
		{s.CheckoutURL, s.AdminToken, http.MethodPut, ws + "/services/workshop", map[string]any{
			"name": "Strategy workshop", "price": map[string]any{"currency_code": "USD", "units": 900}, "credit_eligible": false,
		}},
		{s.InvoicingURL, s.AdminToken, http.MethodPost, ws + "/invoices", map[string]any{
			"account": "client-1", "number": "INV-1001", "description": "October retainer",
			"amount": map[string]any{"currency_code": "USD", "units": 4, "nanos": 200000000},
		}},
		{s.InvoicingURL, s.AdminToken, http.MethodPost, ws + "/invoices", map[string]any{
			"account": "client-2", "number": "INV-1002", "description": "Hosting, November",
			"amount": map[string]any{"currency_code": "USD", "units": 12},
		}},
	}
	for _, st := range steps {
		if err := Call(ctx, st.base, st.tok, st.method, st.path, st.body, nil); err != nil {
			return err
		}
	}
	return nil
}

// Call sends one JSON request with a bearer token and decodes a 2xx
// answer into out (when not nil); any other answer is an error with its
// body.
func Call(ctx context.Context, base, tok, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer func() { _ = res.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(res.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, res.StatusCode, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}
