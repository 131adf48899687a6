package checkout

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/stripe/stripe-go/v82/webhook"
	"go.uber.org/zap"

	"github.com/creditledger/creditledger/internal/token"
)

// maxBody bounds every request body.
const maxBody = 64 << 10

// maxWebhookBody bounds a payment webhook: a Stripe event with its
// Checkout Session is a few kilobytes, with room for line items.
const maxWebhookBody = 512 << 10

// Handler returns the checkout's REST API.
//
//	PUT  /v1/workspaces/{workspace}/services/{service}
//	GET  /v1/workspaces/{workspace}/services
//	GET  /v1/workspaces/{workspace}/services/{service}
//	GET  /v1/workspaces/{workspace}/accounts/{account}/services/{service}/checkout-options
//	POST /v1/workspaces/{workspace}/accounts/{account}/orders
//	GET  /v1/workspaces/{workspace}/accounts/{account}/orders
//	GET  /v1/workspaces/{workspace}/orders/{order}
//	POST /v1/workspaces/{workspace}/orders/{order}:confirm
//	POST /v1/workspaces/{workspace}/orders/{order}:cancel
//	POST /v1/workspaces/{workspace}/orders/{order}:refund
//	GET  /v1/workspaces/{workspace}/orders/{order}/refunds
//	GET  /v1/workspaces/{workspace}/payment-methods
//	POST /v1/workspaces/{workspace}/accounts/{account}/credit-purchases
//	GET  /v1/workspaces/{workspace}/credit-purchases/{purchase}
//	POST /v1/workspaces/{workspace}/credit-purchases/{purchase}:cancel
//	POST /webhooks/payments
//	GET  /healthz
//
// Every /v1 route needs a bearer token of the workspace (401 without a
// valid one, with a WWW-Authenticate challenge). A client token acts on
// its own account only: another account, or another workspace, is 404
// as if it did not exist. Admin and service tokens act on every account of
// their workspace. The catalog is read by all and written by admins
// (settings:admin); reads need ledger:read; orders (placing, confirming,
// cancelling) and purchases (starting, cancelling) need requests:submit
// (or ledger:write for a service). Refunds are the agency's: admin (settings:admin) or service
// (ledger:write) only. A missing role or scope is 403. The webhook is authenticated by the provider's signature, not
// by a token; /healthz is open.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/workspaces/{workspace}/services/{service}", a.handlePutService)
	mux.HandleFunc("GET /v1/workspaces/{workspace}/services", a.handleListServices)
	mux.HandleFunc("GET /v1/workspaces/{workspace}/services/{service}", a.handleGetService)
	mux.HandleFunc("GET /v1/workspaces/{workspace}/accounts/{account}/services/{service}/checkout-options", a.handleOptions)
	mux.HandleFunc("POST /v1/workspaces/{workspace}/accounts/{account}/orders", a.handleBuy)
	mux.HandleFunc("GET /v1/workspaces/{workspace}/accounts/{account}/orders", a.handleListOrders)
	mux.HandleFunc("GET /v1/workspaces/{workspace}/orders/{order}", a.handleGetOrder)
	// "{order}:confirm" is not a pattern ServeMux accepts: the verb is
	// split off in the handler.
	mux.HandleFunc("POST /v1/workspaces/{workspace}/orders/{order}", a.handleOrderAction)
	mux.HandleFunc("GET /v1/workspaces/{workspace}/orders/{order}/refunds", a.handleListRefunds)
	mux.HandleFunc("POST /v1/workspaces/{workspace}/accounts/{account}/credit-purchases", a.handleStartPurchase)
	mux.HandleFunc("GET /v1/workspaces/{workspace}/credit-purchases/{purchase}", a.handleGetPurchase)
	mux.HandleFunc("POST /v1/workspaces/{workspace}/credit-purchases/{purchase}", a.handlePurchaseAction)
	mux.HandleFunc("GET /v1/workspaces/{workspace}/payment-methods", a.handlePaymentMethods)
	mux.HandleFunc("POST /webhooks/payments", a.handleWebhook)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return mux
}

func hiddenWorkspace(ws string) *Error { return notFound("workspace", ws) }
func hiddenAccount(acct string) *Error { return notFound("account", acct) }

// handlePutService creates or replaces a catalog entry (the agency's admin).
// Body: {"name": "Logo design", "price": {"currency_code": "USD", "units": 5}, "credit_eligible": true}.
func (a *App) handlePutService(w http.ResponseWriter, r *http.Request) {
	ws := r.PathValue("workspace")
	if _, ok := a.allow(w, r, catalogAccess, ws, "", hiddenWorkspace(ws)); !ok {
		return
	}
	var in struct {
		Name           string `json:"name"`
		Price          Money  `json:"price"`
		CreditEligible bool   `json:"credit_eligible"`
	}
	if !a.decode(w, r, &in) {
		return
	}
	s, err := a.PutService(r.Context(), Service{
		Workspace: ws, ID: r.PathValue("service"),
		Name: in.Name, Price: in.Price, CreditEligible: in.CreditEligible,
	})
	a.respond(w, http.StatusOK, s, err)
}

// handleListServices lists the workspace's catalog: {"services": [...]}.
func (a *App) handleListServices(w http.ResponseWriter, r *http.Request) {
	ws := r.PathValue("workspace")
	if _, ok := a.allow(w, r, readAccess, ws, "", hiddenWorkspace(ws)); !ok {
		return
	}
	s, err := a.ListServices(r.Context(), ws)
	a.respond(w, http.StatusOK, map[string]any{"services": s}, err)
}

// handleGetService returns one catalog entry.
func (a *App) handleGetService(w http.ResponseWriter, r *http.Request) {
	ws, id := r.PathValue("workspace"), r.PathValue("service")
	if _, ok := a.allow(w, r, readAccess, ws, "", notFound("service", id)); !ok {
		return
	}
	s, err := a.GetService(r.Context(), ws, id)
	a.respond(w, http.StatusOK, s, err)
}

// handleOptions answers whether "Buy with Credit" is offered for the
// service to the account, with the reason when not (see CheckoutOptions).
func (a *App) handleOptions(w http.ResponseWriter, r *http.Request) {
	ws, acct := r.PathValue("workspace"), r.PathValue("account")
	if _, ok := a.allow(w, r, readAccess, ws, acct, hiddenAccount(acct)); !ok {
		return
	}
	o, err := a.CheckoutOptions(r.Context(), ws, acct, r.PathValue("service"))
	a.respond(w, http.StatusOK, o, err)
}

// handleBuy places an order for a service, paid with credits. Body:
// {"service_id": "logo", "confirm": false}; optional header Idempotency-Key
// makes client retries return the same order. 201 with the HELD order
// (the credits reserved; confirm or cancel it), or the CONFIRMED order
// with "confirm": true (200 for a retry); 422 with the reason (and the
// FAILED order when one was created); 503 when the ledger did not confirm
// (the order stays PENDING, or HELD, and is reconciled).
func (a *App) handleBuy(w http.ResponseWriter, r *http.Request) {
	ws, acct := r.PathValue("workspace"), r.PathValue("account")
	if _, ok := a.allow(w, r, spendAccess, ws, acct, hiddenAccount(acct)); !ok {
		return
	}
	var in struct {
		ServiceID string `json:"service_id"`
		Confirm   bool   `json:"confirm"`
	}
	if !a.decode(w, r, &in) {
		return
	}
	o, existing, err := a.BuyWithCredits(r.Context(), ws, acct, in.ServiceID, r.Header.Get("Idempotency-Key"), in.Confirm)
	a.respondWith(w, created(existing), "order", o, o.ID != "", err)
}

// handleListOrders lists an account's orders, newest first: {"orders": [...]}.
func (a *App) handleListOrders(w http.ResponseWriter, r *http.Request) {
	ws, acct := r.PathValue("workspace"), r.PathValue("account")
	if _, ok := a.allow(w, r, readAccess, ws, acct, hiddenAccount(acct)); !ok {
		return
	}
	o, err := a.ListOrders(r.Context(), ws, acct)
	a.respond(w, http.StatusOK, map[string]any{"orders": o}, err)
}

// handleGetOrder returns one order; a client sees only its own account's.
func (a *App) handleGetOrder(w http.ResponseWriter, r *http.Request) {
	ws, id := r.PathValue("workspace"), r.PathValue("order")
	c, ok := a.allow(w, r, readAccess, ws, "", notFound("order", id))
	if !ok {
		return
	}
	o, err := a.GetOrder(r.Context(), ws, id)
	if err == nil {
		err = authorize(c, readAccess, ws, o.Account, notFound("order", id))
	}
	a.respond(w, http.StatusOK, o, err)
}

// refundAccess: giving credits back is the agency's decision (its admins)
// or its systems' (a service), never the client's.
var refundAccess = access{Roles: []token.Role{token.RoleAdmin, token.RoleService}, Scopes: []string{token.ScopeSettingsAdmin, token.ScopeLedgerWrite}}

// handleOrderAction is POST …/orders/{order}:confirm, :cancel and :refund.
//
//   - :confirm (no body): captures the HELD order's hold. 200 with the
//     CONFIRMED order (also when it already was); 409 ORDER_NOT_HELD when
//     the order is not HELD or is being cancelled; 422 HOLD_EXPIRED (the
//     order is EXPIRED) or the ledger's refusal; 503 when the ledger did not
//     answer (the order stays HELD and the capture is reconciled).
//   - :cancel (no body): voids the HELD order's hold. 200 with the
//     CANCELLED order (or EXPIRED: the hold ended by itself); 409
//     ORDER_NOT_HELD for an order confirmed or being confirmed; 503 as above.
//   - :refund (admin or service only; body {"credits": 20}, optional:
//     absent or 0 refunds all that remains; optional header
//     Idempotency-Key): reverses the order's entry for that many credits.
//     201 with {"refund": …, "order": …} (200 for a retry); 409
//     ORDER_NOT_CONFIRMED; 422 REFUND_EXCEEDS_ORDER or the ledger's
//     refusal; 503 when the ledger did not answer (the refund stays PENDING
//     and is reconciled).
//
// Confirm and cancel follow the rules of placing an order: the client of
// the order's account, an admin or a service of the workspace.
func (a *App) handleOrderAction(w http.ResponseWriter, r *http.Request) {
	ws := r.PathValue("workspace")
	id, verb, _ := strings.Cut(r.PathValue("order"), ":")
	acc := spendAccess
	switch verb {
	case "confirm", "cancel":
	case "refund":
		acc = refundAccess
	default:
		writeError(w, notFound("route", r.URL.Path))
		return
	}
	c, ok := a.allow(w, r, acc, ws, "", notFound("order", id))
	if !ok {
		return
	}
	o, err := a.GetOrder(r.Context(), ws, id)
	if err == nil {
		err = authorize(c, acc, ws, o.Account, notFound("order", id))
	}
	if err != nil {
		writeError(w, err)
		return
	}
	switch verb {
	case "confirm", "cancel":
		if !a.decodeOptional(w, r, &struct{}{}) {
			return
		}
		if verb == "confirm" {
			o, err = a.ConfirmOrder(r.Context(), ws, id)
		} else {
			o, err = a.CancelOrder(r.Context(), ws, id)
		}
		a.respondWith(w, http.StatusOK, "order", o, true, err)
	case "refund":
		var in struct {
			Credits int64 `json:"credits"`
		}
		if !a.decodeOptional(w, r, &in) {
			return
		}
		ref, o, existing, err := a.RefundOrder(r.Context(), ws, id, in.Credits, r.Header.Get("Idempotency-Key"))
		body := map[string]any{"order": o}
		if ref.ID != "" {
			body["refund"] = ref
		}
		if err == nil {
			writeJSON(w, created(existing), body)
			return
		}
		a.logInternal(err)
		e := asError(err)
		body["error"] = errorBody(e)
		writeJSON(w, e.HTTPStatus(), body)
	}
}

// handleListRefunds lists an order's refunds, oldest first: {"refunds":
// [...]}; readable by whoever may read the order.
func (a *App) handleListRefunds(w http.ResponseWriter, r *http.Request) {
	ws, id := r.PathValue("workspace"), r.PathValue("order")
	c, ok := a.allow(w, r, readAccess, ws, "", notFound("order", id))
	if !ok {
		return
	}
	o, err := a.GetOrder(r.Context(), ws, id)
	if err == nil {
		err = authorize(c, readAccess, ws, o.Account, notFound("order", id))
	}
	var out []Refund
	if err == nil {
		out, err = a.ListRefunds(r.Context(), ws, o.ID)
	}
	a.respond(w, http.StatusOK, map[string]any{"refunds": out}, err)
}

// handleStartPurchase starts buying a credit package. Body:
// {"package_id": "starter", "payment_method": "STRIPE" | "PAYPAL" |
// "BANK_TRANSFER" | "CRYPTO", "payment_reference": "...", "note": "...",
// "success_url": "https://…", "cancel_url": "https://…"} (the URLs for
// card and PayPal only, optional); optional header Idempotency-Key. 201
// with the purchase (200 for a retry with the same key); a card purchase
// carries "checkout_url", where the browser goes to pay, and
// "stripe_session_id". 422 PAYMENT_PROVIDER_NOT_CONFIGURED when the
// checkout cannot take the method; 503 PAYMENT_PROVIDER_UNAVAILABLE or 502
// PAYMENT_PROVIDER_REFUSED, with the purchase, when the provider did not
// create the page (the same call with the same Idempotency-Key asks again).
func (a *App) handleStartPurchase(w http.ResponseWriter, r *http.Request) {
	ws, acct := r.PathValue("workspace"), r.PathValue("account")
	if _, ok := a.allow(w, r, spendAccess, ws, acct, hiddenAccount(acct)); !ok {
		return
	}
	var in PurchaseInput
	if !a.decode(w, r, &in) {
		return
	}
	p, existing, err := a.StartPurchase(r.Context(), ws, acct, in, r.Header.Get("Idempotency-Key"))
	a.respondWith(w, created(existing), "purchase", p, p.ID != "", err)
}

// handlePaymentMethods lists the payment methods the workspace offers, as
// the ledger's settings say now: {"payment_methods": ["STRIPE", …]}.
func (a *App) handlePaymentMethods(w http.ResponseWriter, r *http.Request) {
	ws := r.PathValue("workspace")
	if _, ok := a.allow(w, r, readAccess, ws, "", hiddenWorkspace(ws)); !ok {
		return
	}
	methods, err := a.PaymentMethods(r.Context(), ws)
	a.respond(w, http.StatusOK, map[string]any{"payment_methods": methods}, err)
}

// handlePurchaseAction is POST …/credit-purchases/{purchase}:cancel (no
// body): the client of the purchase's account, an admin or a service
// withdraws a manual purchase waiting for the agency. 200 with the
// CANCELLED purchase (also when it already was); 409 PURCHASE_NOT_PENDING
// (with the purchase) when it no longer waits; 503 when the ledger did
// not answer (call again).
func (a *App) handlePurchaseAction(w http.ResponseWriter, r *http.Request) {
	ws := r.PathValue("workspace")
	id, verb, _ := strings.Cut(r.PathValue("purchase"), ":")
	if verb != "cancel" {
		writeError(w, notFound("route", r.URL.Path))
		return
	}
	c, ok := a.allow(w, r, spendAccess, ws, "", notFound("purchase", id))
	if !ok {
		return
	}
	p, err := a.storedPurchase(r.Context(), ws, id)
	if err == nil {
		err = authorize(c, spendAccess, ws, p.Account, notFound("purchase", id))
	}
	if err != nil {
		writeError(w, err)
		return
	}
	if !a.decodeOptional(w, r, &struct{}{}) {
		return
	}
	p, err = a.CancelPurchase(r.Context(), ws, id)
	a.respondWith(w, http.StatusOK, "purchase", p, p.ID != "", err)
}

// handleGetPurchase returns a purchase, refreshed from the ledger when it
// waits for the agency's decision; a client sees only its own account's.
func (a *App) handleGetPurchase(w http.ResponseWriter, r *http.Request) {
	ws, id := r.PathValue("workspace"), r.PathValue("purchase")
	c, ok := a.allow(w, r, readAccess, ws, "", notFound("purchase", id))
	if !ok {
		return
	}
	p, err := a.storedPurchase(r.Context(), ws, id)
	if err == nil {
		err = authorize(c, readAccess, ws, p.Account, notFound("purchase", id))
	}
	if err == nil {
		p, err = a.refreshPurchase(r.Context(), p)
	}
	a.respond(w, http.StatusOK, p, err)
}

// handleWebhook is the payment providers' confirmation endpoint,
// authenticated by the provider's signature rather than a token.
//
// Stripe (production): the body is a Stripe event signed in the
// Stripe-Signature header with the endpoint's secret, at most five minutes
// old (see ConfirmStripePayment for the events acted on). The answers
// follow what Stripe does with them:
//   - 400 BAD_SIGNATURE: no, a wrong or a stale signature; nothing is read.
//   - 200 {"received": true, "payment": …}: credited (on every redelivery too).
//   - 200 {"received": true, "ignored": why}: an event that credits nothing
//     by design (another type, a session not yet paid, not a purchase).
//   - 200 {"received": true, "error": …}: refused for good (the amount or
//     currency is not the package's price, an unknown purchase, a ledger
//     refusal); nothing is credited, the refusal is logged as an error.
//     Stripe retries any other answer for days, and a retry would be
//     refused the same way.
//   - 503 (or 500): not settled now; Stripe's redelivery (or the
//     reconciliation pass, for a stored payment) finishes it.
//
// Development only (UnsignedWebhooks): a body without Stripe-Signature is
// a PaymentConfirmation, {"provider": "stripe"|"paypal", "payment_id":
// "pi_...", "workspace": "...", "account": "...", "package_id": "...",
// "purchase_id": "..."(optional)}, trusted as it is.
//
// Without a Stripe secret and outside development, every webhook is
// refused with 400.
func (a *App) handleWebhook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		writeError(w, invalidf("body", "unreadable or larger than %d bytes", maxWebhookBody))
		return
	}
	sig := r.Header.Get("Stripe-Signature")
	switch {
	case a.stripeSecret != "" && (sig != "" || !a.unsigned):
		a.handleStripe(w, r, body, sig)
	case a.unsigned:
		var in PaymentConfirmation
		if err := strictUnmarshal(body, &in); err != nil {
			writeError(w, invalidf("body", "%v", err))
			return
		}
		p, err := a.ConfirmPayment(r.Context(), in)
		a.respondWith(w, http.StatusOK, "payment", p, p.PaymentID != "", err)
	default:
		a.log.Warn("payment webhook refused: no Stripe webhook secret is configured")
		writeError(w, &Error{Kind: KindInvalid, Code: CodeBadSignature, Message: "payment webhooks are not accepted: no signing secret is configured"})
	}
}

func (a *App) handleStripe(w http.ResponseWriter, r *http.Request, body []byte, sig string) {
	// The API version of the events is the endpoint's setting; only the
	// few long-stable fields read in stripePaymentOf are used.
	ev, err := webhook.ConstructEventWithOptions(body, sig, a.stripeSecret, webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	if err != nil {
		a.log.Warn("stripe webhook refused", zap.Error(err))
		writeError(w, &Error{Kind: KindInvalid, Code: CodeBadSignature, Message: "missing, invalid or stale Stripe-Signature"})
		return
	}
	sp, ignore, err := stripePaymentOf(ev)
	if err != nil {
		a.log.Error("stripe event unreadable; acknowledged, nothing credited", zap.String("event_id", ev.ID),
			zap.String("event_type", string(ev.Type)), zap.Error(err))
		writeJSON(w, http.StatusOK, map[string]any{"received": true, "error": errorBody(refusal(CodeInvalidArgument, "unreadable event object"))})
		return
	}
	if ignore != "" {
		a.log.Info("stripe event ignored", zap.String("event_id", ev.ID), zap.String("event_type", string(ev.Type)), zap.String("why", ignore))
		writeJSON(w, http.StatusOK, map[string]any{"received": true, "ignored": ignore})
		return
	}
	p, err := a.ConfirmStripePayment(r.Context(), sp)
	if err == nil {
		writeJSON(w, http.StatusOK, map[string]any{"received": true, "payment": p})
		return
	}
	e := asError(err)
	switch e.Kind {
	case KindUnavailable, KindInternal:
		a.respondWith(w, http.StatusOK, "payment", p, p.PaymentID != "", err)
	default:
		a.log.Error("stripe payment refused; acknowledged, nothing credited", zap.String("event_id", sp.EventID),
			zap.String("event_type", sp.EventType), zap.String("payment_key_sha256", fingerprint(PaymentKey("stripe", sp.PaymentID))),
			zap.String("workspace", sp.Workspace), zap.String("purchase_id", sp.PurchaseID), zap.String("code", e.Code), zap.String("reason", e.Message))
		body := map[string]any{"received": true, "error": errorBody(e)}
		if p.PaymentID != "" {
			body["payment"] = p
		}
		writeJSON(w, http.StatusOK, body)
	}
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

// decodeOptional is decode for a body that may be empty.
func (a *App) decodeOptional(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err == nil && len(bytes.TrimSpace(body)) > 0 {
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
// A 401 carries the Bearer challenge (RFC 6750).
func writeError(w http.ResponseWriter, err error) {
	e := asError(err)
	if e.Kind == KindUnauthenticated {
		challenge := `Bearer realm="checkout"`
		if e.Metadata["token"] == "invalid" {
			challenge += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
	}
	writeJSON(w, e.HTTPStatus(), map[string]any{"error": errorBody(e)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
