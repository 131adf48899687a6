package checkout

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"go.uber.org/zap"
)

// maxBody bounds every request body.
const maxBody = 64 << 10

// Handler returns the checkout's REST API.
//
//	PUT  /v1/workspaces/{workspace}/services/{service}
//	GET  /v1/workspaces/{workspace}/services
//	GET  /v1/workspaces/{workspace}/services/{service}
//	GET  /v1/workspaces/{workspace}/accounts/{account}/services/{service}/checkout-options
//	POST /v1/workspaces/{workspace}/accounts/{account}/orders
//	GET  /v1/workspaces/{workspace}/accounts/{account}/orders
//	GET  /v1/workspaces/{workspace}/orders/{order}
//	POST /v1/workspaces/{workspace}/accounts/{account}/credit-purchases
//	GET  /v1/workspaces/{workspace}/credit-purchases/{purchase}
//	POST /webhooks/payments
//	GET  /healthz
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/workspaces/{workspace}/services/{service}", a.handlePutService)
	mux.HandleFunc("GET /v1/workspaces/{workspace}/services", a.handleListServices)
	mux.HandleFunc("GET /v1/workspaces/{workspace}/services/{service}", a.handleGetService)
	mux.HandleFunc("GET /v1/workspaces/{workspace}/accounts/{account}/services/{service}/checkout-options", a.handleOptions)
	mux.HandleFunc("POST /v1/workspaces/{workspace}/accounts/{account}/orders", a.handleBuy)
	mux.HandleFunc("GET /v1/workspaces/{workspace}/accounts/{account}/orders", a.handleListOrders)
	mux.HandleFunc("GET /v1/workspaces/{workspace}/orders/{order}", a.handleGetOrder)
	mux.HandleFunc("POST /v1/workspaces/{workspace}/accounts/{account}/credit-purchases", a.handleStartPurchase)
	mux.HandleFunc("GET /v1/workspaces/{workspace}/credit-purchases/{purchase}", a.handleGetPurchase)
	mux.HandleFunc("POST /webhooks/payments", a.handleWebhook)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return mux
}

// handlePutService creates or replaces a catalog entry (the agency's admin).
// Body: {"name": "Logo design", "price": {"currency_code": "USD", "units": 5}, "credit_eligible": true}.
func (a *App) handlePutService(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name           string `json:"name"`
		Price          Money  `json:"price"`
		CreditEligible bool   `json:"credit_eligible"`
	}
	if !a.decode(w, r, &in) {
		return
	}
	s, err := a.PutService(r.Context(), Service{
		Workspace: r.PathValue("workspace"), ID: r.PathValue("service"),
		Name: in.Name, Price: in.Price, CreditEligible: in.CreditEligible,
	})
	a.respond(w, http.StatusOK, s, err)
}

// handleListServices lists the workspace's catalog: {"services": [...]}.
func (a *App) handleListServices(w http.ResponseWriter, r *http.Request) {
	s, err := a.ListServices(r.Context(), r.PathValue("workspace"))
	a.respond(w, http.StatusOK, map[string]any{"services": s}, err)
}

// handleGetService returns one catalog entry.
func (a *App) handleGetService(w http.ResponseWriter, r *http.Request) {
	s, err := a.GetService(r.Context(), r.PathValue("workspace"), r.PathValue("service"))
	a.respond(w, http.StatusOK, s, err)
}

// handleOptions answers whether "Buy with Credit" is offered for the
// service to the account, with the reason when not (see CheckoutOptions).
func (a *App) handleOptions(w http.ResponseWriter, r *http.Request) {
	o, err := a.CheckoutOptions(r.Context(), r.PathValue("workspace"), r.PathValue("account"), r.PathValue("service"))
	a.respond(w, http.StatusOK, o, err)
}

// handleBuy buys a service with credits. Body: {"service_id": "logo"};
// optional header Idempotency-Key makes client retries return the same
// order. 201 with the CONFIRMED order (200 for a retry); 422 with the
// reason (and the FAILED order when one was created); 503 when the ledger
// did not confirm (the order stays PENDING and is reconciled).
func (a *App) handleBuy(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ServiceID string `json:"service_id"`
	}
	if !a.decode(w, r, &in) {
		return
	}
	o, existing, err := a.BuyWithCredits(r.Context(), r.PathValue("workspace"), r.PathValue("account"), in.ServiceID,
		r.Header.Get("Idempotency-Key"))
	a.respondWith(w, created(existing), "order", o, o.ID != "", err)
}

// handleListOrders lists an account's orders, newest first: {"orders": [...]}.
func (a *App) handleListOrders(w http.ResponseWriter, r *http.Request) {
	o, err := a.ListOrders(r.Context(), r.PathValue("workspace"), r.PathValue("account"))
	a.respond(w, http.StatusOK, map[string]any{"orders": o}, err)
}

// handleGetOrder returns one order.
func (a *App) handleGetOrder(w http.ResponseWriter, r *http.Request) {
	o, err := a.GetOrder(r.Context(), r.PathValue("workspace"), r.PathValue("order"))
	a.respond(w, http.StatusOK, o, err)
}

// handleStartPurchase starts buying a credit package. Body:
// {"package_id": "starter", "payment_method": "STRIPE" | "PAYPAL" |
// "BANK_TRANSFER" | "CRYPTO", "payment_reference": "...", "note": "..."};
// optional header Idempotency-Key. 201 with the purchase.
func (a *App) handleStartPurchase(w http.ResponseWriter, r *http.Request) {
	var in PurchaseInput
	if !a.decode(w, r, &in) {
		return
	}
	p, existing, err := a.StartPurchase(r.Context(), r.PathValue("workspace"), r.PathValue("account"), in, r.Header.Get("Idempotency-Key"))
	a.respondWith(w, created(existing), "purchase", p, p.ID != "", err)
}

// handleGetPurchase returns a purchase, refreshed from the ledger when it
// waits for the agency's decision.
func (a *App) handleGetPurchase(w http.ResponseWriter, r *http.Request) {
	p, err := a.GetPurchase(r.Context(), r.PathValue("workspace"), r.PathValue("purchase"))
	a.respond(w, http.StatusOK, p, err)
}

// handleWebhook is the payment providers' confirmation endpoint. Body:
// {"provider": "stripe", "payment_id": "pi_...", "workspace": "...",
// "account": "...", "package_id": "...", "purchase_id": "..."(optional)}.
// When a webhook secret is configured the body must be signed:
// X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the body>. 200 with the
// payment once credited (also on every redelivery); 503 asks the provider
// to redeliver.
func (a *App) handleWebhook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, invalidf("body", "unreadable or larger than %d bytes", maxBody))
		return
	}
	if len(a.secret) > 0 && !validSignature(a.secret, body, r.Header.Get("X-Webhook-Signature")) {
		writeError(w, &Error{Kind: KindInvalid, Code: CodeBadSignature, Message: "missing or invalid X-Webhook-Signature"})
		return
	}
	var in PaymentConfirmation
	if err := strictUnmarshal(body, &in); err != nil {
		writeError(w, invalidf("body", "%v", err))
		return
	}
	p, err := a.ConfirmPayment(r.Context(), in)
	a.respondWith(w, http.StatusOK, "payment", p, p.PaymentID != "", err)
}

// Sign returns the X-Webhook-Signature value of body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func validSignature(secret, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(strings.TrimSpace(header)))
}

func created(existing bool) int {
	if existing {
		return http.StatusOK
	}
	return http.StatusCreated
}

func strictUnmarshal(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// decode reads a bounded, strict JSON body; on failure it answers 400.
func (a *App) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err == nil {
		err = strictUnmarshal(body, v)
	}
	if err != nil {
		writeError(w, invalidf("body", "%v", err))
		return false
	}
	return true
}

// respond writes v with status ok, or the error.
func (a *App) respond(w http.ResponseWriter, ok int, v any, err error) {
	if err != nil {
		a.logInternal(err)
		writeError(w, err)
		return
	}
	writeJSON(w, ok, v)
}

// respondWith writes v alone on success, and {"error": …, name: v} when
// an error comes with a resource (a FAILED or still PENDING order).
func (a *App) respondWith(w http.ResponseWriter, ok int, name string, v any, haveV bool, err error) {
	if err == nil {
		writeJSON(w, ok, v)
		return
	}
	a.logInternal(err)
	e := asError(err)
	body := map[string]any{"error": errorBody(e)}
	if haveV {
		body[name] = v
	}
	writeJSON(w, e.HTTPStatus(), body)
}

func (a *App) logInternal(err error) {
	if e := asError(err); e.Kind == KindInternal {
		a.log.Error("internal error", zap.Error(err))
	}
}

func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return internal(err)
}

func errorBody(e *Error) map[string]any {
	b := map[string]any{"code": e.Code, "message": e.Message}
	if len(e.Metadata) > 0 {
		b["metadata"] = e.Metadata
	}
	return b
}

// writeError answers {"error": {"code": "INSUFFICIENT_CREDITS", "message": "...", "metadata": {...}}}.
func writeError(w http.ResponseWriter, err error) {
	e := asError(err)
	writeJSON(w, e.HTTPStatus(), map[string]any{"error": errorBody(e)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
