// Package portal is the reference client portal of CreditLedger: the
// pages an agency's clients and administrators use, served from the
// server as plain HTML forms (no JavaScript needed), backed by the ledger's
// REST gateway and the checkout and invoicing REST APIs, called over HTTP
// like any other portal backend would, with the signed-in person's token.
//
// Clients see their balance (a widget on every page, hidden while the
// workspace's credit payments are off), their history with its running
// balance, their pending requests, buy credit packages (card through
// checkout's Stripe Checkout Session, bank transfer or crypto as a
// request the agency decides), buy services and pay invoices with credits
// when the services say it is allowed. The agency switches credit payments
// on and off, keeps its packages and conversion rates, decides the
// pending requests, reads every client's balance and history, and manages
// its webhook endpoints.
package portal

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config configures the portal.
type Config struct {
	// LedgerURL, CheckoutURL and InvoicingURL are the base URLs of the
	// ledger's REST gateway and of the two consumer services' APIs.
	LedgerURL, CheckoutURL, InvoicingURL string
	// PublicURL is the portal's own address as browsers reach it: card
	// payments come back to it.
	PublicURL string
	// Minter gives the signed-in person's token.
	Minter Minter
	// DevSignIn enables the development sign-in page, which lets anyone
	// who reaches the portal act as any client or as the agency's admin.
	DevSignIn bool
	// DevWorkspace prefills the development sign-in.
	DevWorkspace string
	// SecureCookies marks the session cookie Secure (HTTPS only). Browsers
	// also accept Secure cookies from http://127.0.0.1 and localhost.
	SecureCookies bool
	// HTTPClient calls the APIs (default: 20s timeouts, no redirects).
	HTTPClient *http.Client
	Logger     *zap.Logger
	Now        func() time.Time
	// SessionIdle is how long an unused session lasts (default 8h).
	SessionIdle time.Duration
}

// Portal serves the pages.
type Portal struct {
	cfg       Config
	log       *zap.Logger
	ledger    *ledgerAPI
	checkout  *checkoutAPI
	invoicing *invoicingAPI
	sessions  *sessions
	pages     map[string]*template.Template
	public    *url.URL
}

// New checks cfg and prepares the templates.
func New(cfg Config) (*Portal, error) {
	if cfg.Minter == nil {
		return nil, errors.New("portal: a token minter is required")
	}
	for name, u := range map[string]string{"ledger": cfg.LedgerURL, "checkout": cfg.CheckoutURL, "invoicing": cfg.InvoicingURL, "public": cfg.PublicURL} {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, fmt.Errorf("portal: the %s URL %q must be an absolute http(s) URL", name, u)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = 8 * time.Hour
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{
			Transport:     http.DefaultTransport.(*http.Transport).Clone(),
			Timeout:       20 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	pub, _ := url.Parse(strings.TrimRight(cfg.PublicURL, "/"))
	mk := func(name, base string) api {
		return api{name: name, base: strings.TrimRight(base, "/"), hc: cfg.HTTPClient}
	}
	return &Portal{
		cfg: cfg, log: cfg.Logger, pages: pages, public: pub,
		ledger:    &ledgerAPI{mk("ledger", cfg.LedgerURL)},
		checkout:  &checkoutAPI{mk("checkout", cfg.CheckoutURL)},
		invoicing: &invoicingAPI{mk("invoicing", cfg.InvoicingURL)},
		sessions:  newSessions(cfg.SessionIdle, 10000, cfg.SecureCookies, cfg.Now),
	}, nil
}

// handlerFunc is a page handler with the request's session.
type handlerFunc func(w http.ResponseWriter, r *http.Request, ss *session)

// Handler returns the portal's routes.
func (p *Portal) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServer(http.FS(static))))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})

	mux.Handle("GET /{$}", p.page(p.home))
	mux.Handle("GET /signin", p.page(p.signInPage))
	mux.Handle("POST /signin", p.form(p.signIn))
	mux.Handle("POST /signout", p.form(p.signOut))

	client := func(h handlerFunc) handlerFunc { return p.requireRole(RoleClient, h) }
	mux.Handle("GET /credits", p.page(client(p.creditsPage)))
	mux.Handle("GET /credits/history.csv", p.page(client(p.historyCSV)))
	mux.Handle("POST /credits/requests/{id}/cancel", p.form(client(p.cancelRequest)))
	mux.Handle("GET /buy", p.page(client(p.buyPage)))
	mux.Handle("POST /buy", p.form(client(p.buy)))
	mux.Handle("GET /buy/return", p.page(client(p.buyReturn)))
	mux.Handle("GET /services", p.page(client(p.servicesPage)))
	mux.Handle("POST /services/{id}/buy", p.form(client(p.buyService)))
	mux.Handle("POST /orders/{id}/{verb}", p.form(client(p.orderAction)))
	mux.Handle("GET /invoices", p.page(client(p.invoicesPage)))
	mux.Handle("POST /invoices/{id}/pay", p.form(client(p.payInvoice)))

	agency := func(h handlerFunc) handlerFunc { return p.requireRole(RoleAdmin, h) }
	mux.Handle("GET /agency", p.page(agency(p.agencyPage)))
	mux.Handle("POST /agency/settings", p.form(agency(p.updateSettings)))
	mux.Handle("GET /agency/packages", p.page(agency(p.packagesPage)))
	mux.Handle("POST /agency/packages", p.form(agency(p.createPackage)))
	mux.Handle("POST /agency/packages/{id}", p.form(agency(p.updatePackage)))
	mux.Handle("POST /agency/packages/{id}/{verb}", p.form(agency(p.packageAction)))
	mux.Handle("GET /agency/rates", p.page(agency(p.ratesPage)))
	mux.Handle("GET /agency/rates/preview", p.page(agency(p.ratePreview)))
	mux.Handle("POST /agency/rates", p.form(agency(p.setRate)))
	mux.Handle("GET /agency/requests", p.page(agency(p.requestsPage)))
	mux.Handle("POST /agency/requests/{id}/{verb}", p.form(agency(p.decide)))
	mux.Handle("GET /agency/clients", p.page(agency(p.clientsPage)))
	mux.Handle("GET /agency/clients/{account}", p.page(agency(p.clientPage)))
	mux.Handle("GET /agency/clients/{account}/history.csv", p.page(agency(p.clientHistoryCSV)))
	mux.Handle("GET /agency/webhooks", p.page(agency(p.webhooksPage)))
	mux.Handle("POST /agency/webhooks", p.form(agency(p.createWebhook)))
	mux.Handle("POST /agency/webhooks/{id}/{verb}", p.form(agency(p.webhookAction)))

	// A form posted from another site is refused before any handler
	// (Sec-Fetch-Site / Origin), in addition to the per-session CSRF token
	// every form carries.
	return securityHeaders(http.NewCrossOriginProtection().Handler(mux))
}

// securityHeaders keeps the pages out of frames and scripts off other
// origins. No form-action: the card checkout redirects to the payment page.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'; object-src 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("X-Frame-Options", "DENY")
		h.ServeHTTP(w, r)
	})
}

// page wraps a GET handler with the session.
func (p *Portal) page(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		h(w, r, p.sessions.get(w, r))
	})
}

// maxForm bounds a form body.
const maxForm = 64 << 10

// form wraps a POST handler: the body is bounded and parsed, and the
// session's CSRF token must come with it.
func (p *Portal) form(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		ss := p.sessions.get(w, r)
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "the form could not be read", http.StatusBadRequest)
			return
		}
		if !p.sessions.validCSRF(ss, r.PostFormValue("csrf")) {
			p.log.Info("form refused: missing or wrong CSRF token", zap.String("path", r.URL.Path))
			w.WriteHeader(http.StatusForbidden)
			p.render(w, r, ss, "error", "Form expired", errorPage{
				Heading: "This form has expired",
				Text:    "The page was open for too long or came from elsewhere. Nothing was changed. Go back, reload the page and try again.",
			})
			return
		}
		h(w, r, ss)
	})
}

// requireRole lets only a signed-in person of role through; others go to
// the sign-in page.
func (p *Portal) requireRole(role string, h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, ss *session) {
		if ss.Role != role {
			if r.Method == http.MethodGet && ss.Role == "" {
				http.Redirect(w, r, "/signin", http.StatusSeeOther)
				return
			}
			w.WriteHeader(http.StatusForbidden)
			p.render(w, r, ss, "error", "Not allowed", errorPage{
				Heading: "This page is not for you",
				Text:    "You are signed in as someone who may not use this page. Sign out and sign in again with the right role.",
			})
			return
		}
		h(w, r, ss)
	}
}

// home sends each person to their start page.
func (p *Portal) home(w http.ResponseWriter, r *http.Request, ss *session) {
	switch ss.Role {
	case RoleClient:
		http.Redirect(w, r, "/credits", http.StatusSeeOther)
	case RoleAdmin:
		http.Redirect(w, r, "/agency", http.StatusSeeOther)
	default:
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
	}
}

// tokenOf is the session's bearer token.
func (p *Portal) tokenOf(ss *session) (string, error) {
	return p.sessions.token(ss, p.cfg.Minter)
}

// back redirects after a form (POST-redirect-GET).
func back(w http.ResponseWriter, r *http.Request, to string) {
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// fail records a failed form's message and redirects back.
func (p *Portal) fail(w http.ResponseWriter, r *http.Request, ss *session, to, what string, err error) {
	p.logAPIError(what, err)
	p.sessions.addFlash(ss, "error", what+": "+explain(err))
	back(w, r, to)
}

// ok records a form's success and redirects.
func (p *Portal) ok(w http.ResponseWriter, r *http.Request, ss *session, to, text string) {
	p.sessions.addFlash(ss, "ok", text)
	back(w, r, to)
}

func (p *Portal) logAPIError(what string, err error) {
	lvl := p.log.Info
	if s := statusOf(err); s == 0 || s >= 500 || s == http.StatusUnauthorized {
		lvl = p.log.Warn
	}
	lvl("api call failed", zap.String("what", what), zap.String("reason", reasonOf(err)), zap.Error(err))
}

// reasons are what a person reads for the services' machine reasons.
var reasons = map[string]string{
	"INSUFFICIENT_CREDITS":       "your available credits do not cover this",
	"CREDIT_PAYMENTS_DISABLED":   "credit payments are switched off for this workspace",
	"PAYMENT_METHOD_NOT_OFFERED": "the agency does not offer this payment method",
	"PACKAGE_INACTIVE":           "this package can no longer be bought",
	"NO_CONVERSION_RATE":         "the agency has no conversion rate for this currency",
	"REQUEST_ALREADY_DECIDED":    "this request was already decided or cancelled",
	"TOO_MANY_PENDING_REQUESTS":  "you have too many requests waiting for the agency",
	"SERVICE_NOT_ELIGIBLE":       "this service cannot be bought with credits",
	"PURCHASE_NOT_PENDING":       "this purchase no longer waits for the agency",
	"ORDER_NOT_HELD":             "this order is no longer on hold",
	"HOLD_EXPIRED":               "the hold on your credits expired",
	"APPROVER_IS_SUBMITTER":      "whoever submitted a request cannot decide it",
	"UNAVAILABLE":                "the service did not answer; nothing was changed, try again",
	"LEDGER_UNAVAILABLE":         "the ledger did not confirm; it will be retried, check again shortly",
	"UNAUTHENTICATED":            "your sign-in is no longer accepted; sign in again",
	"PERMISSION_DENIED":          "you may not do this",
	"NOT_FOUND":                  "it no longer exists",
	"RESOURCE_EXHAUSTED":         "too many requests; wait a moment and try again",
}

// explain turns an API error into a sentence.
func explain(err error) string {
	var e *APIError
	if !errors.As(err, &e) {
		return "something went wrong"
	}
	if t, ok := reasons[e.Reason]; ok {
		return t
	}
	if e.Message != "" {
		return e.Message
	}
	return strings.ToLower(strings.ReplaceAll(e.Reason, "_", " "))
}

// ctx is the request's context; every API call is bounded by its own timeout.
func ctx(r *http.Request) context.Context { return r.Context() }
