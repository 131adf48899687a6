package portal

import (
	"cmp"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"go.uber.org/zap"
)

// historyPage is how many entries one page of history shows.
const historyPage = 20

type creditsData struct {
	Balance   Balance
	Pending   []CreditRequest
	History   []Transaction
	NextPage  string // token of the older entries
	FirstPage bool
	CSV       string // the CSV download's path
	Client    string // the agency's view: whose history
}

func (d creditsData) balance() *Balance { return &d.Balance }

// creditsPage: the balance, the pending requests (with a cancel button),
// and the history with its running balance.
func (p *Portal) creditsPage(w http.ResponseWriter, r *http.Request, ss *session) {
	tok, err := p.tokenOf(ss)
	if err != nil {
		p.unavailable(w, r, ss, "Sign-in", err)
		return
	}
	d, err := p.accountData(r, ss, tok, ss.Workspace, ss.Account)
	if err != nil {
		p.unavailable(w, r, ss, "Your credits", err)
		return
	}
	if d.Pending, err = p.ledger.Requests(ctx(r), tok, ss.Workspace, ss.Account, "REQUEST_STATUS_PENDING"); err != nil {
		p.unavailable(w, r, ss, "Your pending requests", err)
		return
	}
	d.CSV = "/credits/history.csv"
	p.render(w, r, ss, "credits", "Credits", d)
}

// readBalance reads acct's balance at the newest version this session has
// seen of it or later, and remembers the version it read.
func (p *Portal) readBalance(r *http.Request, ss *session, tok, ws, acct string) (Balance, error) {
	floor := p.sessions.minVersion(ss, ws, acct)
	b, err := p.ledger.Balance(ctx(r), tok, ws, acct, floor)
	reset := false
	if err != nil && floor > 0 && reasonOf(err) == "VERSION_MISMATCH" {
		// The ledger holds less than this session saw: it was restored
		// from a backup. Show what it holds.
		b, err = p.ledger.Balance(ctx(r), tok, ws, acct, 0)
		reset = true
	}
	if err == nil {
		p.sessions.sawVersion(ss, ws, acct, int64(b.Version), reset)
	}
	return b, err
}

// accountData reads an account's balance and one page of its history, the
// history at least as new as the balance.
func (p *Portal) accountData(r *http.Request, ss *session, tok, ws, acct string) (creditsData, error) {
	var d creditsData
	var err error
	if d.Balance, err = p.readBalance(r, ss, tok, ws, acct); err != nil {
		return d, err
	}
	v := int64(d.Balance.Version)
	pageToken := r.URL.Query().Get("page")
	if len(pageToken) > 1024 {
		pageToken = ""
	}
	d.FirstPage = pageToken == ""
	if d.History, d.NextPage, err = p.ledger.History(ctx(r), tok, ws, acct, pageToken, historyPage, v); err != nil && reasonOf(err) != "INVALID_ARGUMENT" {
		return d, err
	}
	if err != nil { // a stale or edited page token: start again from the newest
		d.FirstPage = true
		d.History, d.NextPage, err = p.ledger.History(ctx(r), tok, ws, acct, "", historyPage, v)
	}
	return d, err
}

// historyCSV streams the ledger's CSV export of the history.
func (p *Portal) historyCSV(w http.ResponseWriter, r *http.Request, ss *session) {
	p.exportCSV(w, r, ss, ss.Account)
}

func (p *Portal) exportCSV(w http.ResponseWriter, r *http.Request, ss *session, acct string) {
	tok, err := p.tokenOf(ss)
	if err != nil {
		p.unavailable(w, r, ss, "Sign-in", err)
		return
	}
	res, err := p.ledger.Export(ctx(r), tok, ss.Workspace, acct)
	if err != nil {
		p.unavailable(w, r, ss, "The history export", err)
		return
	}
	defer func() { _ = res.Body.Close() }()
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", "credits-"+acct+".csv"))
	if _, err := io.Copy(w, res.Body); err != nil {
		// The export was cut off midway: abort the response rather than
		// hand over a truncated file that looks complete.
		p.log.Warn("history export cut off", zap.Error(err))
		panic(http.ErrAbortHandler)
	}
}

// cancelRequest withdraws one of the client's pending requests.
func (p *Portal) cancelRequest(w http.ResponseWriter, r *http.Request, ss *session) {
	id := r.PathValue("id")
	tok, err := p.tokenOf(ss)
	if err == nil {
		err = p.ledger.CancelRequest(ctx(r), tok, ss.Workspace, id, "portal:cancel:"+id, "cancelled by the client in the portal")
	}
	if err != nil {
		p.fail(w, r, ss, "/credits", "The request was not cancelled", err)
		return
	}
	p.ok(w, r, ss, "/credits", "Your request was cancelled: nothing will be credited for it.")
}

// The payment methods the portal offers when the agency does. PayPal's
// own checkout is not wired into this portal.
var portalMethods = []string{"STRIPE", "BANK_TRANSFER", "CRYPTO"}

type buyData struct {
	Packages []Package
	Methods  []string
	Enabled  bool
	Nonce    string
	Bal      Balance
}

func (d buyData) balance() *Balance { return &d.Bal }

// buyPage lists the packages and the payment methods the agency offers.
func (p *Portal) buyPage(w http.ResponseWriter, r *http.Request, ss *session) {
	tok, err := p.tokenOf(ss)
	if err != nil {
		p.unavailable(w, r, ss, "Sign-in", err)
		return
	}
	d := buyData{Nonce: randomID()}
	if d.Bal, err = p.readBalance(r, ss, tok, ss.Workspace, ss.Account); err != nil {
		p.unavailable(w, r, ss, "Your balance", err)
		return
	}
	d.Enabled = d.Bal.CreditPaymentsEnabled
	if d.Packages, err = p.ledger.Packages(ctx(r), tok, ss.Workspace, false); err != nil {
		p.unavailable(w, r, ss, "The packages", err)
		return
	}
	slices.SortStableFunc(d.Packages, func(a, b Package) int { return cmp.Compare(a.Credits, b.Credits) })
	methods, err := p.checkout.PaymentMethods(ctx(r), tok, ss.Workspace)
	if err != nil {
		p.unavailable(w, r, ss, "The payment methods", err)
		return
	}
	for _, m := range portalMethods {
		if slices.Contains(methods, m) {
			d.Methods = append(d.Methods, m)
		}
	}
	p.render(w, r, ss, "buy", "Buy credits", d)
}

// buy starts a purchase through checkout: a card purchase goes on to the
// payment page checkout returns; a bank transfer or crypto purchase is a
// request the agency decides.
func (p *Portal) buy(w http.ResponseWriter, r *http.Request, ss *session) {
	in := PurchaseInput{
		PackageID: r.PostFormValue("package"), Method: r.PostFormValue("method"),
		PaymentReference: strings.TrimSpace(r.PostFormValue("reference")), Note: strings.TrimSpace(r.PostFormValue("note")),
	}
	switch {
	case !validID(in.PackageID):
		p.sessions.addFlash(ss, "error", "Choose a package.")
		back(w, r, "/buy")
		return
	case !slices.Contains(portalMethods, in.Method):
		p.sessions.addFlash(ss, "error", "Choose a payment method.")
		back(w, r, "/buy")
		return
	case in.Method != "STRIPE" && in.PaymentReference == "":
		p.sessions.addFlash(ss, "error", "Give the reference of your transfer or transaction, so that the agency can find your payment.")
		back(w, r, "/buy")
		return
	case len(in.PaymentReference) > 256 || len(in.Note) > 1024:
		p.sessions.addFlash(ss, "error", "The reference may have at most 256 characters, the note 1024.")
		back(w, r, "/buy")
		return
	}
	if in.Method == "STRIPE" {
		in.PaymentReference, in.Note = "", ""
		in.SuccessURL = p.public.String() + "/buy/return?outcome=paid"
		in.CancelURL = p.public.String() + "/buy/return?outcome=cancelled"
	}
	tok, err := p.tokenOf(ss)
	var pur Purchase
	if err == nil {
		// The form's nonce: submitting the same form twice is one purchase.
		pur, err = p.checkout.StartPurchase(ctx(r), tok, ss.Workspace, ss.Account, in, formKey(r))
	}
	if err != nil {
		p.fail(w, r, ss, "/buy", "The purchase was not started", err)
		return
	}
	switch {
	case in.Method == "STRIPE":
		u, err := url.Parse(pur.CheckoutURL)
		if pur.CheckoutURL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			p.log.Warn("card purchase without a usable checkout_url", zap.String("purchase_id", pur.ID))
			p.sessions.addFlash(ss, "error", "Card payments are not available right now: checkout did not open a payment page. Nothing was charged.")
			back(w, r, "/buy")
			return
		}
		p.sessions.setCardPurchase(ss, pur.ID)
		http.Redirect(w, r, u.String(), http.StatusSeeOther)
	case pur.Status == "FAILED":
		p.sessions.addFlash(ss, "error", "The purchase was refused: "+explain(&APIError{Reason: pur.FailureReason}))
		back(w, r, "/buy")
	default:
		p.ok(w, r, ss, "/credits", fmt.Sprintf("Your %s request for %s credits (reference %s) waits for the agency's approval.",
			strings.ToLower(label(in.Method)), formatCredits(Int64(pur.Credits)), in.PaymentReference))
	}
}

// formKey is the idempotency key of a submitted form.
func formKey(r *http.Request) string {
	n := r.PostFormValue("nonce")
	if len(n) < 16 || len(n) > 64 || strings.ContainsFunc(n, func(c rune) bool { return c <= ' ' || c > '~' }) {
		return ""
	}
	return "portal:" + n
}

// buyReturn is where the card payment page sends the browser back.
func (p *Portal) buyReturn(w http.ResponseWriter, r *http.Request, ss *session) {
	if r.URL.Query().Get("outcome") != "paid" {
		p.ok(w, r, ss, "/buy", "The card payment was cancelled: nothing was charged.")
		return
	}
	text := "Thank you: your payment was received. The credits appear as soon as the payment is confirmed."
	if id := p.sessions.cardPurchaseOf(ss); id != "" {
		if tok, err := p.tokenOf(ss); err == nil {
			if pur, err := p.checkout.Purchase(ctx(r), tok, ss.Workspace, id); err == nil && pur.Status == "CREDITED" {
				text = fmt.Sprintf("Thank you: your card payment is confirmed and %s credits were added.", formatCredits(Int64(pur.Credits)))
			}
		}
	}
	p.ok(w, r, ss, "/credits", text)
}

type serviceRow struct {
	Service Service
	Option  CreditOption
	Nonce   string
}

type servicesData struct {
	Services []serviceRow
	Orders   []Order
}

// servicesPage lists the agency's services with "Buy with Credit" where
// checkout offers it, and the client's orders (their holds).
func (p *Portal) servicesPage(w http.ResponseWriter, r *http.Request, ss *session) {
	tok, err := p.tokenOf(ss)
	if err != nil {
		p.unavailable(w, r, ss, "Sign-in", err)
		return
	}
	svcs, err := p.checkout.Services(ctx(r), tok, ss.Workspace)
	if err != nil {
		p.unavailable(w, r, ss, "The services", err)
		return
	}
	var d servicesData
	for _, s := range svcs {
		row := serviceRow{Service: s, Nonce: randomID()}
		if row.Option, err = p.checkout.Options(ctx(r), tok, ss.Workspace, ss.Account, s.ID); err != nil {
			p.logAPIError("checkout options", err)
			row.Option = CreditOption{Reason: "LEDGER_UNAVAILABLE"}
		}
		d.Services = append(d.Services, row)
	}
	if d.Orders, err = p.checkout.Orders(ctx(r), tok, ss.Workspace, ss.Account); err != nil {
		p.unavailable(w, r, ss, "Your orders", err)
		return
	}
	p.render(w, r, ss, "services", "Services", d)
}

// buyService places an order paid with credits: they are held until the
// client confirms it.
func (p *Portal) buyService(w http.ResponseWriter, r *http.Request, ss *session) {
	tok, err := p.tokenOf(ss)
	var o Order
	if err == nil {
		o, err = p.checkout.Buy(ctx(r), tok, ss.Workspace, ss.Account, r.PathValue("id"), formKey(r))
	}
	if err != nil {
		p.fail(w, r, ss, "/services", "The order was not placed", err)
		return
	}
	p.ok(w, r, ss, "/services", fmt.Sprintf("%s credits are on hold for %s. Confirm the order to spend them, or cancel it to release them.",
		formatCredits(Int64(o.Credits)), o.ServiceName))
}

// orderAction confirms (spends the held credits) or cancels an order.
func (p *Portal) orderAction(w http.ResponseWriter, r *http.Request, ss *session) {
	verb := r.PathValue("verb")
	if verb != "confirm" && verb != "cancel" {
		http.NotFound(w, r)
		return
	}
	tok, err := p.tokenOf(ss)
	var o Order
	if err == nil {
		o, err = p.checkout.OrderAction(ctx(r), tok, ss.Workspace, r.PathValue("id"), verb)
	}
	if err != nil {
		p.fail(w, r, ss, "/services", "The order was not "+map[string]string{"confirm": "confirmed", "cancel": "cancelled"}[verb], err)
		return
	}
	if verb == "confirm" {
		p.ok(w, r, ss, "/services", fmt.Sprintf("Order confirmed: %s credits spent on %s.", formatCredits(Int64(o.Credits)), o.ServiceName))
		return
	}
	p.ok(w, r, ss, "/services", fmt.Sprintf("Order cancelled: the %s held credits are released.", formatCredits(Int64(o.Credits))))
}

type invoiceRow struct {
	Invoice Invoice
	Option  CreditOption
}

// invoicesPage lists the client's invoices, with "Pay with Credit" where
// invoicing offers it.
func (p *Portal) invoicesPage(w http.ResponseWriter, r *http.Request, ss *session) {
	tok, err := p.tokenOf(ss)
	if err != nil {
		p.unavailable(w, r, ss, "Sign-in", err)
		return
	}
	invs, err := p.invoicing.Invoices(ctx(r), tok, ss.Workspace, ss.Account)
	if err != nil {
		p.unavailable(w, r, ss, "Your invoices", err)
		return
	}
	rows := make([]invoiceRow, 0, len(invs))
	for _, inv := range invs {
		row := invoiceRow{Invoice: inv}
		if inv.Status == "OPEN" {
			if row.Option, err = p.invoicing.Options(ctx(r), tok, ss.Workspace, inv.ID); err != nil {
				p.logAPIError("payment options", err)
				row.Option = CreditOption{Reason: "LEDGER_UNAVAILABLE"}
			}
		}
		rows = append(rows, row)
	}
	p.render(w, r, ss, "invoices", "Invoices", rows)
}

// payInvoice pays an invoice with credits.
func (p *Portal) payInvoice(w http.ResponseWriter, r *http.Request, ss *session) {
	tok, err := p.tokenOf(ss)
	var inv Invoice
	if err == nil {
		inv, err = p.invoicing.Pay(ctx(r), tok, ss.Workspace, r.PathValue("id"))
	}
	if err != nil {
		p.fail(w, r, ss, "/invoices", "The invoice was not paid", err)
		return
	}
	p.ok(w, r, ss, "/invoices", fmt.Sprintf("Invoice %s is paid with %s credits.", inv.Number, formatCredits(Int64(inv.Credits))))
}
