package portal

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// view is what every page's template gets.
type view struct {
	Title   string
	Nav     string // the active section
	Role    string
	Who     string // the signed-in person, as shown
	Ws      string
	Account string
	CSRF    string
	// Widget is the balance in the header; nil when hidden (not a client,
	// or the workspace's credit payments are off).
	Widget    *Balance
	Flashes   []Flash
	Secret    string // a webhook secret shown once
	DevSignIn bool
	Data      any
}

// errorPage is the data of the "error" page.
type errorPage struct {
	Heading, Text string
}

var funcs = template.FuncMap{
	"credits":     creditsOf,
	"previewText": previewText,
	"date":        func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") },
	"iso":         func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"label":       label,
	"signed": func(t Transaction) string {
		if t.In() {
			return "+" + formatCredits(t.Amount)
		}
		return "−" + formatCredits(t.Amount)
	},
	"has": func(list []string, s string) bool {
		for _, v := range list {
			if v == s {
				return true
			}
		}
		return false
	},
}

// parsePages parses each page with the layout.
func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, err
		}
		out[base] = t
	}
	return out, nil
}

// render writes a page. The balance widget is read here for a client, so
// that every page shows it (and hides it while payments are off).
func (p *Portal) render(w http.ResponseWriter, r *http.Request, ss *session, name, title string, data any) {
	flashes, secret := p.sessions.takeFlashes(ss)
	v := view{
		Title: title, Nav: navOf(r.URL.Path), Role: ss.Role, Ws: ss.Workspace, Account: ss.Account,
		CSRF: csrfOf(p.sessions, ss), Flashes: flashes, Secret: secret, DevSignIn: p.cfg.DevSignIn, Data: data,
	}
	switch ss.Role {
	case RoleClient:
		v.Who = ss.Account
	case RoleAdmin:
		v.Who = ss.Subject
	}
	if ss.Role == RoleClient {
		if b, ok := data.(interface{ balance() *Balance }); ok && b.balance() != nil {
			v.Widget = b.balance()
		} else if tok, err := p.tokenOf(ss); err == nil {
			if bal, err := p.readBalance(r, ss, tok, ss.Workspace, ss.Account); err == nil {
				v.Widget = &bal
			} else {
				p.logAPIError("balance widget", err)
			}
		}
		if v.Widget != nil && !v.Widget.CreditPaymentsEnabled {
			v.Widget = nil
		}
	}
	var buf bytes.Buffer
	t, ok := p.pages[name]
	if !ok {
		p.log.Error("no such page template", zap.String("page", name))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := t.Execute(&buf, v); err != nil {
		p.log.Error("page not rendered", zap.String("page", name), zap.Error(err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = buf.WriteTo(w)
}

// unavailable renders the page a failed read leads to.
func (p *Portal) unavailable(w http.ResponseWriter, r *http.Request, ss *session, what string, err error) {
	p.logAPIError(what, err)
	status := http.StatusBadGateway
	if statusOf(err) == http.StatusUnauthorized {
		status = http.StatusUnauthorized
	}
	w.WriteHeader(status)
	p.render(w, r, ss, "error", "Not available", errorPage{Heading: "This page cannot be shown right now", Text: what + ": " + explain(err) + "."})
}

func csrfOf(s *sessions, ss *session) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ss.csrf
}

func navOf(path string) string {
	for _, n := range []string{"/credits", "/buy", "/services", "/invoices", "/agency/packages", "/agency/rates", "/agency/requests", "/agency/clients", "/agency/webhooks", "/agency", "/signin"} {
		if path == n || strings.HasPrefix(path, n+"/") {
			return n
		}
	}
	return ""
}

// creditsOf formats the credits the templates hold: Int64 from the
// ledger, int64 from the consumers.
func creditsOf(v any) string {
	switch n := v.(type) {
	case Int64:
		return formatCredits(n)
	case int64:
		return formatCredits(Int64(n))
	case int:
		return formatCredits(Int64(n))
	default:
		return fmt.Sprint(v)
	}
}

// formatCredits renders 12345 as "12,345".
func formatCredits(n Int64) string {
	s := strconv.FormatInt(int64(n), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// labels are the words shown for the APIs' enum values.
var labels = map[string]string{
	"TRANSACTION_KIND_PURCHASE":         "Purchase",
	"TRANSACTION_KIND_REQUEST_APPROVED": "Approved request",
	"TRANSACTION_KIND_SERVICE_PURCHASE": "Service",
	"TRANSACTION_KIND_INVOICE_PAYMENT":  "Invoice payment",
	"TRANSACTION_KIND_REFUND":           "Refund",
	"TRANSACTION_KIND_ADJUSTMENT":       "Adjustment",
	"TRANSACTION_KIND_REVERSAL":         "Reversal",
	"TRANSACTION_KIND_EXPIRY":           "Expiry",
	"PAYMENT_METHOD_BANK_TRANSFER":      "Bank transfer",
	"PAYMENT_METHOD_CRYPTO":             "Cryptocurrency",
	"PAYMENT_METHOD_STRIPE":             "Card",
	"PAYMENT_METHOD_PAYPAL":             "PayPal",
	"BANK_TRANSFER":                     "Bank transfer",
	"CRYPTO":                            "Cryptocurrency",
	"STRIPE":                            "Card",
	"PAYPAL":                            "PayPal",
	"REQUEST_STATUS_PENDING":            "Pending",
	"REQUEST_STATUS_ACCEPTED":           "Accepted",
	"REQUEST_STATUS_REJECTED":           "Rejected",
	"REQUEST_STATUS_CANCELLED":          "Cancelled",
	"HELD":                              "On hold",
	"CONFIRMED":                         "Confirmed",
	"CANCELLED":                         "Cancelled",
	"EXPIRED":                           "Expired",
	"FAILED":                            "Failed",
	"PENDING":                           "Pending",
	"REFUNDED":                          "Refunded",
	"PARTIALLY_REFUNDED":                "Partly refunded",
	"OPEN":                              "Open",
	"PAYING":                            "Being paid",
	"PAID":                              "Paid",
	"INSUFFICIENT_CREDITS":              "Not enough credits",
	"CREDIT_PAYMENTS_DISABLED":          "Credit payments are off",
	"NO_CONVERSION_RATE":                "No conversion rate for this currency",
	"SERVICE_NOT_ELIGIBLE":              "Not available with credits",
	"LEDGER_UNAVAILABLE":                "The ledger did not answer",
	"INVOICE_NOT_OPEN":                  "Not open",
}

func label(s string) string {
	if l, ok := labels[s]; ok {
		return l
	}
	return strings.ReplaceAll(strings.ToLower(s), "_", " ")
}
