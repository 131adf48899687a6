package stripedev

import (
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"

	"go.uber.org/zap"
)

// page is the hosted payment page and the pages after it: plain HTML,
// forms instead of scripts, labelled, and marked as a test stand-in
// everywhere so that nobody mistakes it for a real payment.
var page = template.Must(template.New("page").Funcs(template.FuncMap{"amount": formatAmount}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · Stripe test stand-in</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0; color: #1a1a1a; background: #f6f8fa; }
.banner { background: #8a4b00; color: #fff; padding: .75rem 1rem; font-weight: 700; text-align: center; }
main { max-width: 28rem; margin: 2rem auto; background: #fff; padding: 1.5rem; border: 1px solid #d0d7de; border-radius: 8px; }
h1 { font-size: 1.4rem; margin-top: 0; }
dl { display: grid; grid-template-columns: auto 1fr; gap: .4rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; }
.actions { display: flex; gap: .75rem; margin-top: 1.5rem; }
button { font-size: 1rem; padding: .6rem 1.2rem; border-radius: 6px; border: 2px solid #1a1a1a; cursor: pointer; }
button.pay { background: #0b5cad; border-color: #0b5cad; color: #fff; }
button.cancel { background: #fff; color: #1a1a1a; }
button:focus-visible, a:focus-visible { outline: 3px solid #ffbf47; outline-offset: 2px; }
</style>
</head>
<body>
<p class="banner" role="note">Stripe test stand-in — no real payment</p>
<main>
<h1>{{.Title}}</h1>
{{if .Message}}<p>{{.Message}}</p>{{end}}
{{with .Session}}
<dl>
{{range .LineItems}}<dt>{{.Name}}</dt><dd>{{if .Description}}{{.Description}}, {{end}}{{if gt .Quantity 1}}{{.Quantity}} × {{end}}{{amount .UnitAmount .Currency}}</dd>{{end}}
<dt>Total</dt><dd>{{$.Amount}}</dd>
<dt>Session</dt><dd><code>{{.ID}}</code></dd>
</dl>
{{end}}
{{if .Open}}
<form method="post" action="/pay/{{.Session.ID}}" class="actions">
<button type="submit" name="action" value="pay" class="pay">Pay {{.Amount}}</button>
<button type="submit" name="action" value="cancel" class="cancel">Cancel</button>
</form>
<p><small>Pay sends the signed <code>checkout.session.completed</code> event to the webhook, then returns to the shop. No card is asked for and no money moves.</small></p>
{{end}}
{{if .Link}}<p><a href="{{.Link}}">{{.LinkText}}</a></p>{{end}}
</main>
</body>
</html>
`))

type pageData struct {
	Title, Message, Amount string
	Session                *Session
	Open                   bool
	Link, LinkText         string
}

func (s *Server) render(w http.ResponseWriter, status int, d pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := page.Execute(w, d); err != nil {
		s.log.Warn("page not rendered: " + err.Error())
	}
}

func (s *Server) session(id string) (Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok {
		return Session{}, false
	}
	s.expire(sess)
	return *sess, true
}

// payPage is GET /pay/{id}: the hosted payment page.
func (s *Server) payPage(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.session(r.PathValue("id"))
	if !ok {
		s.render(w, http.StatusNotFound, pageData{Title: "No such checkout session", Message: "The link is wrong, or this stand-in was restarted (it keeps nothing on disk)."})
		return
	}
	d := pageData{Session: &sess, Amount: formatAmount(sess.AmountTotal, sess.Currency)}
	switch sess.Status {
	case "open":
		d.Title, d.Open = "Pay "+d.Amount, true
	case "complete":
		d.Title, d.Message = "Already paid", "This checkout session is paid."
		if sess.SuccessURL != nil {
			d.Link, d.LinkText = successURL(sess), "Back to the shop"
		}
	default:
		d.Title, d.Message = "Checkout session expired", "This checkout session can no longer be paid; start the purchase again."
	}
	s.render(w, http.StatusOK, d)
}

// payAction is POST /pay/{id}: action=pay or action=cancel.
func (s *Server) payAction(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		s.render(w, http.StatusBadRequest, pageData{Title: "Bad request", Message: err.Error()})
		return
	}
	id := r.PathValue("id")
	sess, ok := s.session(id)
	if !ok {
		s.render(w, http.StatusNotFound, pageData{Title: "No such checkout session"})
		return
	}
	switch r.PostForm.Get("action") {
	case "cancel":
		s.log.Info("checkout cancelled by the buyer", zap.String("session", id))
		if sess.CancelURL != nil {
			http.Redirect(w, r, *sess.CancelURL, http.StatusSeeOther)
			return
		}
		s.render(w, http.StatusOK, pageData{Title: "Payment cancelled", Message: "Nothing was paid.", Session: &sess, Amount: formatAmount(sess.AmountTotal, sess.Currency)})
	case "pay":
		ev, done, ok := s.complete(id)
		switch {
		case ok:
			s.log.Info("checkout paid by the buyer", zap.String("session", id), zap.String("event", ev.ID))
			s.deliver(r.Context(), ev, "")
		case done.Status != "complete":
			s.render(w, http.StatusConflict, pageData{Title: "Checkout session expired", Message: "This checkout session can no longer be paid."})
			return
		}
		// Paid now, or before (a second click): back to the shop, once more.
		if done.SuccessURL != nil {
			http.Redirect(w, r, successURL(done), http.StatusSeeOther)
			return
		}
		s.render(w, http.StatusOK, pageData{Title: "Payment succeeded", Message: "Test payment complete.", Session: &done, Amount: formatAmount(done.AmountTotal, done.Currency)})
	default:
		s.render(w, http.StatusBadRequest, pageData{Title: "Bad request", Message: "action must be pay or cancel"})
	}
}

// home is GET /: what this is, and how to point the checkout at it.
func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, pageData{
		Title: "Stripe test stand-in",
		Message: "This serves the part of Stripe's API that CreditLedger's checkout uses. Point the checkout at it with " +
			"CHECKOUT_STRIPE_API_URL=" + s.publicURL(r) + " and a sk_test_ key.",
	})
}

// successURL is the session's success_url with Stripe's
// {CHECKOUT_SESSION_ID} template filled in.
func successURL(sess Session) string {
	if sess.SuccessURL == nil {
		return ""
	}
	return strings.ReplaceAll(*sess.SuccessURL, "{CHECKOUT_SESSION_ID}", sess.ID)
}

// zeroDecimal and threeDecimal are the currencies Stripe counts in whole
// units and in thousandths (https://docs.stripe.com/currencies); the
// rest in hundredths. (The checkout keeps its own list: this stand-in is
// a separate program.)
var (
	zeroDecimal  = []string{"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
	threeDecimal = []string{"bhd", "jod", "kwd", "omr", "tnd"}
)

// formatAmount renders an amount in the currency's smallest unit: 1000
// usd is "USD 10.00".
func formatAmount(amount int64, currency string) string {
	code := strings.ToUpper(currency)
	digits := 2
	switch {
	case slices.Contains(zeroDecimal, currency):
		return fmt.Sprintf("%s %d", code, amount)
	case slices.Contains(threeDecimal, currency):
		digits = 3
	}
	scale := int64(100)
	if digits == 3 {
		scale = 1000
	}
	return fmt.Sprintf("%s %d.%0*d", code, amount/scale, digits, amount%scale)
}
