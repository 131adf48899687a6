package invoicing

import (
	"net/http"

	"github.com/creditledger/creditledger/internal/consumer"
	"github.com/creditledger/creditledger/internal/token"
)

// Handler returns the invoicing REST API.
//
//	POST /v1/workspaces/{workspace}/invoices
//	GET  /v1/workspaces/{workspace}/invoices[?account=…&status=OPEN|PAYING|PAID]
//	GET  /v1/workspaces/{workspace}/invoices/{invoice}
//	GET  /v1/workspaces/{workspace}/invoices/{invoice}/payment-options
//	POST /v1/workspaces/{workspace}/invoices/{invoice}/pay-with-credit
//	GET  /healthz
//
// Every /v1 route needs a bearer token of the workspace (401 without a
// valid one, with a WWW-Authenticate challenge). A client token sees and
// pays its own account's invoices only: another account's, or another
// workspace's, are 404 as if they did not exist, and its list is of its
// own invoices. Admin and service tokens act on every account of their
// workspace; only they issue invoices (settings:admin or ledger:write).
// Reads need ledger:read, paying requests:submit (or ledger:write for a
// service). A missing role or scope is 403. /healthz is open.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/workspaces/{workspace}/invoices", a.handleCreate)
	mux.HandleFunc("GET /v1/workspaces/{workspace}/invoices", a.handleList)
	mux.HandleFunc("GET /v1/workspaces/{workspace}/invoices/{invoice}", a.handleGet)
	mux.HandleFunc("GET /v1/workspaces/{workspace}/invoices/{invoice}/payment-options", a.handleOptions)
	mux.HandleFunc("POST /v1/workspaces/{workspace}/invoices/{invoice}/pay-with-credit", a.handlePay)
	mux.HandleFunc("GET /healthz", consumer.Healthz)
	return mux
}

// handleCreate creates an OPEN invoice. Body: {"account": "client-1",
// "number": "INV-1042" (optional), "description": "...", "amount":
// {"currency_code": "USD", "units": 3, "nanos": 510000000}}. 201.
func (a *App) handleCreate(w http.ResponseWriter, r *http.Request) {
	ws := r.PathValue("workspace")
	if _, ok := a.API.Allow(w, r, issueAccess, ws, "", consumer.NotFound("workspace", ws)); !ok {
		return
	}
	var in NewInvoice
	if !a.API.Decode(w, r, &in) {
		return
	}
	inv, err := a.Create(r.Context(), ws, in)
	a.respond(w, http.StatusCreated, inv, false, err)
}

// handleList lists invoices, newest first: {"invoices": [...]}. A client's
// list is of its own account.
func (a *App) handleList(w http.ResponseWriter, r *http.Request) {
	ws := r.PathValue("workspace")
	q := r.URL.Query()
	account := q.Get("account")
	c, ok := a.API.Allow(w, r, readAccess, ws, account, consumer.NotFound("account", account))
	if !ok {
		return
	}
	if c != nil && c.Role == token.RoleClient {
		account = c.Account
	}
	out, err := a.List(r.Context(), ws, account, ParseStatus(q.Get("status")))
	a.respond(w, http.StatusOK, map[string]any{"invoices": out}, false, err)
}

// invoice authorizes the caller on the stored invoice of the path; on
// failure it answers and returns false.
func (a *App) invoice(w http.ResponseWriter, r *http.Request, acc consumer.Access) (Invoice, bool) {
	ws, id := r.PathValue("workspace"), r.PathValue("invoice")
	c, ok := a.API.Allow(w, r, acc, ws, "", consumer.NotFound("invoice", id))
	if !ok {
		return Invoice{}, false
	}
	inv, err := a.Get(r.Context(), ws, id)
	if err == nil {
		err = consumer.Authorize(c, acc, ws, inv.Account, consumer.NotFound("invoice", id))
	}
	if err != nil {
		a.respond(w, http.StatusOK, nil, false, err)
		return Invoice{}, false
	}
	return inv, true
}

// handleGet returns one invoice.
func (a *App) handleGet(w http.ResponseWriter, r *http.Request) {
	if inv, ok := a.invoice(w, r, readAccess); ok {
		a.respond(w, http.StatusOK, inv, false, nil)
	}
}

// handleOptions answers whether "Pay with Credit" is offered for the
// invoice, with the reason when not.
func (a *App) handleOptions(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.invoice(w, r, readAccess); !ok {
		return
	}
	o, err := a.PaymentOptions(r.Context(), r.PathValue("workspace"), r.PathValue("invoice"))
	a.respond(w, http.StatusOK, o, false, err)
}

// handlePay pays the invoice with credits (a hold for the amount, then its
// capture); no body. 200 with the PAID invoice (also when it was already
// paid); 422 with the reason (the invoice stays OPEN: refused, or the hold
// expired or was voided, HOLD_EXPIRED / HOLD_VOIDED); 503 when the ledger
// did not confirm (the invoice stays PAYING and is reconciled; calling
// again is safe).
func (a *App) handlePay(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.invoice(w, r, payAccess); !ok {
		return
	}
	inv, err := a.PayWithCredit(r.Context(), r.PathValue("workspace"), r.PathValue("invoice"))
	a.respond(w, http.StatusOK, inv, inv.ID != "", err)
}

// respond writes v on success; on error {"error": {...}} plus, when
// withInvoice, the invoice's stored state under "invoice".
func (a *App) respond(w http.ResponseWriter, ok int, v any, withInvoice bool, err error) {
	a.API.RespondWith(w, ok, "invoice", v, withInvoice, err)
}
