package portal

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// allMethods are the ledger's payment methods, in its order.
var allMethods = []string{"PAYMENT_METHOD_BANK_TRANSFER", "PAYMENT_METHOD_CRYPTO", "PAYMENT_METHOD_STRIPE", "PAYMENT_METHOD_PAYPAL"}

type agencyData struct {
	Settings Settings
	Methods  []string
	Pending  int
	Clients  int
}

// agencyPage: the credit-payments switch, the payment methods offered and
// the low-balance threshold, and what waits for the agency.
func (p *Portal) agencyPage(w http.ResponseWriter, r *http.Request, ss *session) {
	tok, err := p.tokenOf(ss)
	if err != nil {
		p.unavailable(w, r, ss, "Sign-in", err)
		return
	}
	d := agencyData{Methods: allMethods}
	if d.Settings, err = p.ledger.Settings(ctx(r), tok, ss.Workspace); err != nil {
		p.unavailable(w, r, ss, "The settings", err)
		return
	}
	pending, err := p.ledger.Requests(ctx(r), tok, ss.Workspace, "", "REQUEST_STATUS_PENDING")
	if err != nil {
		p.unavailable(w, r, ss, "The pending requests", err)
		return
	}
	accts, err := p.ledger.Accounts(ctx(r), tok, ss.Workspace)
	if err != nil {
		p.unavailable(w, r, ss, "The clients", err)
		return
	}
	d.Pending, d.Clients = len(pending), len(accts)
	p.render(w, r, ss, "agency", "Agency settings", d)
}

// updateSettings is the switch (what=payments) or the methods and
// threshold (what=methods).
func (p *Portal) updateSettings(w http.ResponseWriter, r *http.Request, ss *session) {
	tok, err := p.tokenOf(ss)
	if err != nil {
		p.fail(w, r, ss, "/agency", "Not saved", err)
		return
	}
	switch r.PostFormValue("what") {
	case "payments":
		on := r.PostFormValue("enabled") == "true"
		if _, err := p.ledger.UpdateSettings(ctx(r), tok, ss.Workspace, map[string]any{"creditPaymentsEnabled": on}, "credit_payments_enabled"); err != nil {
			p.fail(w, r, ss, "/agency", "Credit payments were not switched", err)
			return
		}
		if on {
			p.ok(w, r, ss, "/agency", "Credit payments are on: clients can buy and spend credits.")
		} else {
			p.ok(w, r, ss, "/agency", "Credit payments are off: balances are kept, but nothing can be spent or requested.")
		}
	case "methods":
		var methods []string
		for _, m := range r.PostForm["methods"] {
			if slices.Contains(allMethods, m) && !slices.Contains(methods, m) {
				methods = append(methods, m)
			}
		}
		threshold, err := strconv.ParseInt(strings.TrimSpace(r.PostFormValue("threshold")), 10, 64)
		if err != nil || threshold < 0 {
			p.sessions.addFlash(ss, "error", "Low-balance threshold: a whole number of credits, 0 for none.")
			back(w, r, "/agency")
			return
		}
		body := map[string]any{"paymentMethods": orEmpty(methods), "lowBalanceThreshold": strconv.FormatInt(threshold, 10)}
		if _, err := p.ledger.UpdateSettings(ctx(r), tok, ss.Workspace, body, "payment_methods", "low_balance_threshold"); err != nil {
			p.fail(w, r, ss, "/agency", "Not saved", err)
			return
		}
		p.ok(w, r, ss, "/agency", "Payment methods and threshold saved.")
	default:
		http.Error(w, "unknown setting", http.StatusBadRequest)
	}
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// packagesPage lists every package, active or not, with forms to edit,
// deactivate or reactivate them, and one to create a package.
func (p *Portal) packagesPage(w http.ResponseWriter, r *http.Request, ss *session) {
	tok, err := p.tokenOf(ss)
	if err != nil {
		p.unavailable(w, r, ss, "Sign-in", err)
		return
	}
	pkgs, err := p.ledger.Packages(ctx(r), tok, ss.Workspace, true)
	if err != nil {
		p.unavailable(w, r, ss, "The packages", err)
		return
	}
	p.render(w, r, ss, "packages", "Packages", pkgs)
}

// packageForm reads a package's name, credits and price.
func packageForm(r *http.Request) (Package, error) {
	var pk Package
	pk.DisplayName = strings.TrimSpace(r.PostFormValue("name"))
	if pk.DisplayName == "" || len(pk.DisplayName) > 200 {
		return pk, fmt.Errorf("name: 1 to 200 characters")
	}
	n, err := strconv.ParseInt(strings.TrimSpace(r.PostFormValue("credits")), 10, 64)
	if err != nil || n <= 0 {
		return pk, fmt.Errorf("credits: a whole number greater than zero")
	}
	pk.Credits = Int64(n)
	if pk.Price, err = parseMoney(strings.ToUpper(strings.TrimSpace(r.PostFormValue("currency"))), r.PostFormValue("price")); err != nil {
		return pk, err
	}
	return pk, nil
}

func (p *Portal) createPackage(w http.ResponseWriter, r *http.Request, ss *session) {
	pk, err := packageForm(r)
	id := strings.TrimSpace(r.PostFormValue("id"))
	if err == nil && id != "" && !validID(id) {
		err = fmt.Errorf("id: letters, digits, '.', '_' or '-', up to 64 characters (or empty)")
	}
	if err != nil {
		p.sessions.addFlash(ss, "error", "The package was not created: "+err.Error()+".")
		back(w, r, "/agency/packages")
		return
	}
	tok, err := p.tokenOf(ss)
	if err == nil {
		pk, err = p.ledger.CreatePackage(ctx(r), tok, ss.Workspace, id, pk)
	}
	if err != nil {
		p.fail(w, r, ss, "/agency/packages", "The package was not created", err)
		return
	}
	p.ok(w, r, ss, "/agency/packages", fmt.Sprintf("Package %s created: %s credits for %s.", pk.DisplayName, formatCredits(pk.Credits), pk.Price))
}

func (p *Portal) updatePackage(w http.ResponseWriter, r *http.Request, ss *session) {
	pk, err := packageForm(r)
	if err != nil {
		p.sessions.addFlash(ss, "error", "The package was not saved: "+err.Error()+".")
		back(w, r, "/agency/packages")
		return
	}
	tok, err := p.tokenOf(ss)
	if err == nil {
		pk, err = p.ledger.UpdatePackage(ctx(r), tok, ss.Workspace, r.PathValue("id"), pk)
	}
	if err != nil {
		p.fail(w, r, ss, "/agency/packages", "The package was not saved", err)
		return
	}
	p.ok(w, r, ss, "/agency/packages", fmt.Sprintf("Package %s saved.", pk.DisplayName))
}

// packageAction deactivates (archives) or reactivates a package.
func (p *Portal) packageAction(w http.ResponseWriter, r *http.Request, ss *session) {
	verb := r.PathValue("verb")
	if verb != "deactivate" && verb != "activate" {
		http.NotFound(w, r)
		return
	}
	tok, err := p.tokenOf(ss)
	if err == nil {
		err = p.ledger.ActivatePackage(ctx(r), tok, ss.Workspace, r.PathValue("id"), verb == "activate")
	}
	if err != nil {
		p.fail(w, r, ss, "/agency/packages", "The package was not changed", err)
		return
	}
	if verb == "activate" {
		p.ok(w, r, ss, "/agency/packages", "The package can be bought again.")
		return
	}
	p.ok(w, r, ss, "/agency/packages", "The package is deactivated: clients can no longer buy it.")
}

type preview struct {
	Currency, Rate, Sample string
	Credits                int64  // at the rate typed
	Current                *int64 // at the active rate, if any
	Error                  string
	Shown                  bool
}

type ratesData struct {
	Rates   []Rate
	Preview preview
}

// ratesPage lists the active rates; with currency, rate and sample in the
// query (the "Preview" button) it shows what the sample would cost.
func (p *Portal) ratesPage(w http.ResponseWriter, r *http.Request, ss *session) {
	tok, err := p.tokenOf(ss)
	if err != nil {
		p.unavailable(w, r, ss, "Sign-in", err)
		return
	}
	d := ratesData{}
	if d.Rates, err = p.ledger.Rates(ctx(r), tok, ss.Workspace); err != nil {
		p.unavailable(w, r, ss, "The conversion rates", err)
		return
	}
	q := r.URL.Query()
	d.Preview = preview{Currency: q.Get("currency"), Rate: q.Get("rate"), Sample: q.Get("sample")}
	if d.Preview.Sample == "" {
		d.Preview.Sample = "100"
	}
	if d.Preview.Currency == "" {
		d.Preview.Currency = "USD"
	}
	if q.Get("rate") != "" {
		d.Preview = p.preview(r, tok, ss.Workspace, d.Preview)
	}
	p.render(w, r, ss, "rates", "Conversion rates", d)
}

// preview computes the quote of pv's sample at pv's rate, and at the
// currency's active rate.
func (p *Portal) preview(r *http.Request, tok, ws string, pv preview) preview {
	pv.Shown = true
	pv.Currency = strings.ToUpper(strings.TrimSpace(pv.Currency))
	c, err := previewCredits(pv.Sample, pv.Rate)
	if err != nil {
		pv.Error = err.Error()
		return pv
	}
	pv.Credits = c
	if price, err := parseMoney(pv.Currency, pv.Sample); err == nil {
		if n, err := p.ledger.Quote(ctx(r), tok, ws, price); err == nil {
			pv.Current = &n
		}
	} else {
		pv.Error = err.Error()
	}
	return pv
}

// ratePreview answers the rates page's script as the rate is typed:
// {"credits": 36, "current": 36, "text": "…"} or {"error": "…"}.
func (p *Portal) ratePreview(w http.ResponseWriter, r *http.Request, ss *session) {
	tok, err := p.tokenOf(ss)
	if err != nil {
		http.Error(w, "sign in again", http.StatusUnauthorized)
		return
	}
	q := r.URL.Query()
	pv := p.preview(r, tok, ss.Workspace, preview{Currency: q.Get("currency"), Rate: q.Get("rate"), Sample: q.Get("sample")})
	out := map[string]any{"text": previewText(pv)}
	if pv.Error != "" {
		out["error"] = pv.Error
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// previewText is the sentence the page shows for a preview (the template
// and the script show the same).
func previewText(pv preview) string {
	if pv.Error != "" {
		return pv.Error
	}
	s := fmt.Sprintf("%s %s at %s credits per %s costs %s credits (rounded up).", pv.Currency, pv.Sample, pv.Rate, pv.Currency, formatCredits(Int64(pv.Credits)))
	if pv.Current != nil {
		s += fmt.Sprintf(" At the current rate it costs %s credits.", formatCredits(Int64(*pv.Current)))
	} else {
		s += " There is no current rate for " + pv.Currency + "."
	}
	return s
}

// setRate saves a currency's rate, or (action=preview) shows its preview.
func (p *Portal) setRate(w http.ResponseWriter, r *http.Request, ss *session) {
	currency := strings.ToUpper(strings.TrimSpace(r.PostFormValue("currency")))
	rate := strings.TrimSpace(r.PostFormValue("rate"))
	sample := strings.TrimSpace(r.PostFormValue("sample"))
	if r.PostFormValue("action") == "preview" {
		q := url.Values{"currency": {currency}, "rate": {rate}, "sample": {sample}}
		back(w, r, "/agency/rates?"+q.Encode()+"#preview")
		return
	}
	if _, err := parseMoney(currency, "1"); err != nil {
		p.sessions.addFlash(ss, "error", "The rate was not saved: "+err.Error()+".")
		back(w, r, "/agency/rates")
		return
	}
	if _, err := previewCredits("1", rate); err != nil {
		p.sessions.addFlash(ss, "error", "The rate was not saved: "+err.Error()+".")
		back(w, r, "/agency/rates")
		return
	}
	tok, err := p.tokenOf(ss)
	if err == nil {
		err = p.ledger.SetRate(ctx(r), tok, ss.Workspace, currency, rate)
	}
	if err != nil {
		p.fail(w, r, ss, "/agency/rates", "The rate was not saved", err)
		return
	}
	p.ok(w, r, ss, "/agency/rates", fmt.Sprintf("1 %s is now %s credits.", currency, rate))
}

// requestsPage is the queue of pending requests across the clients.
func (p *Portal) requestsPage(w http.ResponseWriter, r *http.Request, ss *session) {
	tok, err := p.tokenOf(ss)
	if err != nil {
		p.unavailable(w, r, ss, "Sign-in", err)
		return
	}
	reqs, err := p.ledger.Requests(ctx(r), tok, ss.Workspace, "", "REQUEST_STATUS_PENDING")
	if err != nil {
		p.unavailable(w, r, ss, "The pending requests", err)
		return
	}
	p.render(w, r, ss, "requests", "Pending requests", reqs)
}

// decide accepts or rejects a pending request.
func (p *Portal) decide(w http.ResponseWriter, r *http.Request, ss *session) {
	verb := r.PathValue("verb")
	if verb != "accept" && verb != "reject" {
		http.NotFound(w, r)
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if len(reason) > 1024 {
		reason = reason[:1024]
	}
	tok, err := p.tokenOf(ss)
	var req CreditRequest
	var version int64
	if err == nil {
		req, version, err = p.ledger.Decide(ctx(r), tok, ss.Workspace, r.PathValue("id"), verb == "accept", reason)
	}
	if err != nil {
		p.fail(w, r, ss, "/agency/requests", "The request was not decided", err)
		return
	}
	// The client's page then shows the credit, even read from a replica.
	p.sessions.sawVersion(ss, ss.Workspace, req.Account, version, false)
	if verb == "accept" {
		p.ok(w, r, ss, "/agency/requests", fmt.Sprintf("Accepted: %s credits added to %s.", formatCredits(req.Amount), req.Account))
		return
	}
	p.ok(w, r, ss, "/agency/requests", fmt.Sprintf("Rejected: nothing credited to %s.", req.Account))
}

// clientsPage is every client's balance.
func (p *Portal) clientsPage(w http.ResponseWriter, r *http.Request, ss *session) {
	tok, err := p.tokenOf(ss)
	if err != nil {
		p.unavailable(w, r, ss, "Sign-in", err)
		return
	}
	accts, err := p.ledger.Accounts(ctx(r), tok, ss.Workspace)
	if err != nil {
		p.unavailable(w, r, ss, "The clients", err)
		return
	}
	p.render(w, r, ss, "clients", "Clients", accts)
}

// clientPage is one client's balance and history.
func (p *Portal) clientPage(w http.ResponseWriter, r *http.Request, ss *session) {
	acct := r.PathValue("account")
	if !validID(acct) {
		http.NotFound(w, r)
		return
	}
	tok, err := p.tokenOf(ss)
	if err != nil {
		p.unavailable(w, r, ss, "Sign-in", err)
		return
	}
	d, err := p.accountData(r, ss, tok, ss.Workspace, acct)
	if err != nil {
		p.unavailable(w, r, ss, "The client's credits", err)
		return
	}
	d.Client = acct
	d.CSV = "/agency/clients/" + url.PathEscape(acct) + "/history.csv"
	p.render(w, r, ss, "client", "Client "+acct, d)
}

func (p *Portal) clientHistoryCSV(w http.ResponseWriter, r *http.Request, ss *session) {
	acct := r.PathValue("account")
	if !validID(acct) {
		http.NotFound(w, r)
		return
	}
	p.exportCSV(w, r, ss, acct)
}

// eventTypes are the ledger's event types an endpoint may subscribe to.
var eventTypes = []string{
	"transaction.posted", "request.submitted", "request.decided", "request.cancelled",
	"hold.created", "hold.captured", "hold.voided", "hold.expired", "credits.expired",
	"balance.low", "settings.updated", "package.updated", "webhook_endpoint.disabled",
}

type webhooksData struct {
	Endpoints []WebhookEndpoint
	Types     []string
}

func (p *Portal) webhooksPage(w http.ResponseWriter, r *http.Request, ss *session) {
	tok, err := p.tokenOf(ss)
	if err != nil {
		p.unavailable(w, r, ss, "Sign-in", err)
		return
	}
	eps, err := p.ledger.Webhooks(ctx(r), tok, ss.Workspace)
	if err != nil {
		p.unavailable(w, r, ss, "The webhook endpoints", err)
		return
	}
	p.render(w, r, ss, "webhooks", "Webhook endpoints", webhooksData{Endpoints: eps, Types: eventTypes})
}

func (p *Portal) createWebhook(w http.ResponseWriter, r *http.Request, ss *session) {
	target := strings.TrimSpace(r.PostFormValue("url"))
	var types []string
	for _, t := range r.PostForm["types"] {
		if slices.Contains(eventTypes, t) && !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	if u, err := url.Parse(target); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		p.sessions.addFlash(ss, "error", "The endpoint was not created: the URL must be an absolute https:// address.")
		back(w, r, "/agency/webhooks")
		return
	}
	if len(types) == 0 {
		p.sessions.addFlash(ss, "error", "The endpoint was not created: choose at least one event type.")
		back(w, r, "/agency/webhooks")
		return
	}
	tok, err := p.tokenOf(ss)
	var ep WebhookEndpoint
	var secret string
	if err == nil {
		ep, secret, err = p.ledger.CreateWebhook(ctx(r), tok, ss.Workspace, target, strings.TrimSpace(r.PostFormValue("description")), types)
	}
	if err != nil {
		p.fail(w, r, ss, "/agency/webhooks", "The endpoint was not created", err)
		return
	}
	p.sessions.setSecret(ss, secret)
	p.ok(w, r, ss, "/agency/webhooks", "Endpoint "+ep.ID+" created for "+ep.URL+".")
}

// webhookAction enables, disables or deletes an endpoint.
func (p *Portal) webhookAction(w http.ResponseWriter, r *http.Request, ss *session) {
	verb, id := r.PathValue("verb"), r.PathValue("id")
	tok, err := p.tokenOf(ss)
	if err != nil {
		p.fail(w, r, ss, "/agency/webhooks", "Not changed", err)
		return
	}
	var done string
	switch verb {
	case "enable", "disable":
		err = p.ledger.EnableWebhook(ctx(r), tok, ss.Workspace, id, verb == "enable")
		done = "Endpoint " + id + " " + verb + "d."
	case "delete":
		err = p.ledger.DeleteWebhook(ctx(r), tok, ss.Workspace, id)
		done = "Endpoint " + id + " deleted."
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		p.fail(w, r, ss, "/agency/webhooks", "The endpoint was not changed", err)
		return
	}
	p.ok(w, r, ss, "/agency/webhooks", done)
}
