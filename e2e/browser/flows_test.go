package browser

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// rowButton is the button starting with text in the table row that
// contains cell.
func rowButton(cell, text string) chromedp.Search {
	return chromedp.Search(fmt.Sprintf(`//tr[.//*[contains(normalize-space(.), %q)]]//button[starts-with(normalize-space(.), %q)]`, cell, text))
}

func TestCardPurchaseThroughTheStripeStandIn(t *testing.T) {
	b := newTab(t)
	b.signIn("client", "client-3")
	if got := b.widget(); got != 0 {
		t.Fatalf("a new client's widget shows %d credits, want 0", got)
	}
	b.open("/buy")
	b.click("pkg-starter")
	b.click("method-STRIPE")
	b.shot("client-buy-credits")
	submit(b, button("/buy", "Buy"))

	// The stand-in's hosted payment page.
	loc, _ := chromedp.Run(b.ctx, chromedp.Location())
	if !strings.HasPrefix(loc, stack.StripeURL+"/") {
		b.fail("card checkout", fmt.Errorf("the browser is at %s, want the Stripe stand-in's page under %s", loc, stack.StripeURL))
	}
	if body := b.text("body"); !strings.Contains(body, "Stripe test stand-in") || !strings.Contains(body, "no real payment") {
		b.fail("the payment page", fmt.Errorf("it does not say it is the test stand-in:\n%s", body))
	}
	b.shot("stripe-pay-page")
	submit(b, button("", "Pay"))

	// Back on the portal, credited: the stand-in delivered the signed
	// checkout.session.completed to checkout before redirecting.
	b.wantFlash("100 credits were added")
	if got := b.widget(); got != 100 {
		t.Fatalf("after paying Starter by card the widget shows %d credits, want 100", got)
	}
	rows := b.history()
	if len(rows) != 1 || rows[0].InOut != "In" || rows[0].Kind != "Purchase" || rows[0].Amount != 100 || !strings.HasPrefix(rows[0].Reference, "stripe:pi_") {
		t.Fatalf("history after the card purchase: %+v, want one IN Purchase of 100 with reference stripe:pi_…", rows)
	}
	b.shot("client-card-paid")

	// A card payment abandoned on the payment page charges nothing.
	b.open("/buy")
	b.click("pkg-pro")
	b.click("method-STRIPE")
	submit(b, button("/buy", "Buy"))
	submit(b, button("", "Cancel"))
	b.wantFlash("cancelled: nothing was charged")
	if got := b.widget(); got != 100 {
		t.Fatalf("after a cancelled card payment the widget shows %d credits, want 100", got)
	}
}

func TestBankTransferWaitsForTheAgencyAndIsAccepted(t *testing.T) {
	client := newTab(t)
	client.signIn("client", "client-4")

	// A bank transfer: pending, with its reference and a cancel button.
	client.open("/buy")
	client.click("pkg-pro")
	client.click("method-BANK_TRANSFER")
	client.typeInto("reference", "SEPA-2026-0042")
	client.typeInto("note", "paid from the company account")
	submit(client, button("/buy", "Buy"))
	client.wantFlash("waits for the agency's approval")
	if got := client.text("#pending"); !strings.Contains(got, "SEPA-2026-0042") || !strings.Contains(got, "550") {
		t.Fatalf("pending requests: %q, want the transfer of 550 credits with its reference", got)
	}
	if got := client.credits("#pending-credits"); got != 550 {
		t.Fatalf("credits waiting for approval: %d, want 550", got)
	}

	// A crypto payment, withdrawn by the client.
	client.open("/buy")
	client.click("pkg-starter")
	client.click("method-CRYPTO")
	client.typeInto("reference", "0xfeed01")
	submit(client, button("/buy", "Buy"))
	client.wantFlash("waits for the agency's approval")
	client.shot("client-pending-requests")
	submit(client, rowButton("0xfeed01", "Cancel request"))
	client.wantFlash("Your request was cancelled")
	if got := client.text("#pending"); strings.Contains(got, "0xfeed01") || !strings.Contains(got, "SEPA-2026-0042") {
		t.Fatalf("pending requests after cancelling the crypto one: %q", got)
	}

	// The agency accepts the transfer.
	agency := newTab(t)
	agency.signIn("admin", "")
	agency.open("/agency/requests")
	if got := agency.text("#requests"); !strings.Contains(got, "client-4") || !strings.Contains(got, "SEPA-2026-0042") || strings.Contains(got, "0xfeed01") {
		t.Fatalf("the agency's queue: %q, want client-4's transfer and not the cancelled request", got)
	}
	agency.shot("agency-requests")
	submit(agency, rowButton("SEPA-2026-0042", "Accept"))
	agency.wantFlash("Accepted: 550 credits added to client-4")

	// The client's balance changed.
	client.open("/credits")
	if got := client.widget(); got != 550 {
		t.Fatalf("after the agency accepted, the widget shows %d credits, want 550", got)
	}
	if client.has("#pending") {
		t.Fatal("the accepted request is still listed as pending")
	}
	rows := client.history()
	if len(rows) == 0 || rows[0].Kind != "Approved request" || rows[0].Amount != 550 || rows[0].Balance != 550 {
		t.Fatalf("history: %+v, want the approved request of 550 first", rows)
	}
	client.shot("client-after-accept")

	// Another transfer, which the agency rejects with its reason: nothing
	// is credited.
	client.open("/buy")
	client.click("pkg-starter")
	client.click("method-BANK_TRANSFER")
	client.typeInto("reference", "SEPA-2026-0099")
	submit(client, button("/buy", "Buy"))
	client.wantFlash("waits for the agency's approval")
	agency.open("/agency/requests")
	agency.do("give a reason",
		chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll("#requests tbody tr")].find(tr => tr.innerText.includes("SEPA-2026-0099")).querySelector("input[name=reason]:not([type=hidden])").focus()`),
		chromedp.KeyEvent("no such transfer"))
	submit(agency, rowButton("SEPA-2026-0099", "Reject"))
	agency.wantFlash("Rejected: nothing credited to client-4")
	client.open("/credits")
	if client.has("#pending") || client.widget() != 550 || len(client.history()) != 1 {
		t.Fatalf("after the rejection: pending shown %v, widget %d, %d history rows; want none pending, 550, 1 row",
			client.has("#pending"), client.widget(), len(client.history()))
	}
}

func TestBuyWithCreditAndPayWithCreditThenTheHistory(t *testing.T) {
	b := newTab(t)
	b.signIn("client", "client-1") // seeded with 120 credits
	b.open("/services")
	b.shot("client-services")
	if b.has(`form[action="/services/audit/buy"]`) {
		t.Fatal("Buy with Credit is offered for the audit (250 credits) with 120 credits")
	}
	submit(b, rowButton("Logo design", "Buy with Credit"))
	b.wantFlash("36 credits are on hold for Logo design")
	if got := b.text("#balance-widget"); !strings.Contains(got, "84 available, 36 on hold") {
		t.Fatalf("the widget while the order is pending: %q, want 84 available and 36 on hold", got)
	}
	if got := b.text("#orders"); !strings.Contains(got, "On hold") {
		t.Fatalf("orders: %q, want the order on hold", got)
	}
	b.shot("client-order-held")
	submit(b, rowButton("Logo design", "Confirm order"))
	b.wantFlash("Order confirmed: 36 credits spent on Logo design")

	b.open("/invoices")
	submit(b, rowButton("INV-1001", "Pay with Credit"))
	b.wantFlash("Invoice INV-1001 is paid with 42 credits")
	if got := b.text("#invoices"); !strings.Contains(got, "Paid") {
		t.Fatalf("invoices: %q, want INV-1001 paid", got)
	}
	b.shot("client-invoice-paid")

	b.open("/credits")
	rows := b.history()
	want := []historyRow{
		{InOut: "Out", Kind: "Invoice payment", Reference: "invoice:INV-1001", Amount: 42, Balance: 42},
		{InOut: "Out", Kind: "Service", Amount: 36, Balance: 84},
		{InOut: "In", Kind: "Adjustment", Reference: "welcome:client-1", Amount: 120, Balance: 120},
	}
	if len(rows) != len(want) {
		t.Fatalf("history: %+v, want %d rows", rows, len(want))
	}
	for i, w := range want {
		r := rows[i]
		if r.InOut != w.InOut || r.Kind != w.Kind || r.Amount != w.Amount || r.Balance != w.Balance || (w.Reference != "" && r.Reference != w.Reference) {
			t.Errorf("history row %d: %+v, want %+v", i, r, w)
		}
		if _, err := time.Parse("2006-01-02 15:04", r.Date); err != nil {
			t.Errorf("history row %d: date %q", i, r.Date)
		}
	}
	// The running balance: each row's balance is the next (older) one's
	// plus or minus its amount.
	for i := 0; i+1 < len(rows); i++ {
		prev := rows[i+1].Balance
		if rows[i].InOut == "In" && rows[i].Balance != prev+rows[i].Amount || rows[i].InOut == "Out" && rows[i].Balance != prev-rows[i].Amount {
			t.Errorf("row %d: %s %d from %d gives %d", i, rows[i].InOut, rows[i].Amount, prev, rows[i].Balance)
		}
	}
	b.shot("client-history")

	csv := strings.Split(strings.TrimSpace(b.fetchText("/credits/history.csv")), "\n")
	if len(csv) != 4 || !strings.HasPrefix(csv[0], "date,type,kind,reference,amount,balance_after") {
		t.Fatalf("CSV: %q, want a header and 3 rows", csv)
	}
	if !strings.Contains(csv[3], ",OUT,INVOICE_PAYMENT,invoice:INV-1001,42,42,") || !strings.Contains(csv[1], ",IN,ADJUSTMENT,welcome:client-1,120,120,") {
		t.Fatalf("CSV rows (oldest first): %q", csv[1:])
	}
}

func TestSwitchingCreditPaymentsOffHidesTheWidgetAndTheButtons(t *testing.T) {
	client := newTab(t)
	client.signIn("client", "client-2") // seeded with 200 credits; INV-1002 costs 120
	client.open("/services")
	if client.widget() != 200 || !client.hasButton("Buy with Credit") {
		t.Fatalf("with credit payments on: widget %d, Buy with Credit shown %v", client.widget(), client.hasButton("Buy with Credit"))
	}
	client.open("/invoices")
	if !client.hasButton("Pay with Credit") {
		t.Fatal("Pay with Credit is not offered for INV-1002 with credit payments on")
	}

	agency := newTab(t)
	agency.signIn("admin", "")
	switchPayments := func(on bool) {
		agency.open("/agency")
		label := map[bool]string{true: "Switch credit payments on", false: "Switch credit payments off"}[on]
		submit(agency, button("/agency/settings", label))
		agency.wantFlash(map[bool]string{true: "Credit payments are on", false: "Credit payments are off"}[on])
	}
	t.Cleanup(func() {
		if agency.has("#payments-state.off") {
			switchPayments(true)
		}
	})
	switchPayments(false)
	agency.shot("agency-payments-off")

	client.open("/services")
	if client.has("#balance-widget") || client.hasButton("Buy with Credit") {
		t.Fatal("with credit payments off the widget or Buy with Credit is still shown")
	}
	client.shot("client-payments-off")
	client.open("/invoices")
	if client.has("#balance-widget") || client.hasButton("Pay with Credit") {
		t.Fatal("with credit payments off the widget or Pay with Credit is still shown")
	}
	client.open("/credits")
	if got := client.credits("#balance"); got != 200 || !client.has("#payments-off") {
		t.Fatalf("with credit payments off the Credits page shows %d credits (want 200, kept) and the notice %v", got, client.has("#payments-off"))
	}

	switchPayments(true)
	client.open("/services")
	if client.widget() != 200 || !client.hasButton("Buy with Credit") {
		t.Fatal("with credit payments on again the widget and Buy with Credit are back")
	}
}

func TestAgencyKeepsPackagesRatesAndWebhooks(t *testing.T) {
	b := newTab(t)
	b.signIn("admin", "")

	// Packages: create, edit, deactivate.
	b.open("/agency/packages")
	b.typeInto("new-id", "growth")
	b.typeInto("new-name", "Growth")
	b.typeInto("new-credits", "1200")
	b.typeInto("new-price", "99.00")
	submit(b, button("/agency/packages", "Create package"))
	b.wantFlash("Package Growth created: 1,200 credits for USD 99.00")
	b.typeInto("name-growth", "Growth plus")
	submit(b, button("/agency/packages/growth", "Save"))
	b.wantFlash("Package Growth plus saved")
	submit(b, button("/agency/packages/growth/deactivate", "Deactivate"))
	b.wantFlash("deactivated")
	if got := b.text("#packages"); !strings.Contains(got, "Deactivated") {
		t.Fatalf("packages: %q, want growth deactivated", got)
	}
	b.shot("agency-packages")

	// Rates: the live quote (script) and the Preview button (no script)
	// show the sample's cost at the rate being typed; saving is separate.
	b.open("/agency/rates")
	if !b.has("html.js") {
		t.Fatal("the portal's script did not run")
	}
	b.typeInto("currency", "USD")
	b.typeInto("sample", "3.51")
	b.typeInto("rate", "9.5")
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](`document.getElementById("preview").innerText.includes("costs 34 credits")`,
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		b.fail("the live quote", err)
	}
	submit(b, button("/agency/rates", "Preview"))
	if got := b.text("#preview"); !strings.Contains(got, "USD 3.51 at 9.5 credits per USD costs 34 credits") || !strings.Contains(got, "current rate it costs 36 credits") {
		t.Fatalf("preview: %q", got)
	}
	b.shot("agency-rates-preview")
	b.typeInto("currency", "EUR")
	b.typeInto("rate", "10.8")
	submit(b, button("/agency/rates", "Save rate"))
	b.wantFlash("1 EUR is now 10.8 credits")
	if got := b.text("#rates"); !strings.Contains(got, "EUR") || !strings.Contains(got, "USD") {
		t.Fatalf("rates: %q, want EUR added and USD kept", got)
	}

	// Webhook endpoints: the secret is shown once.
	b.open("/agency/webhooks")
	b.typeInto("wh-url", "http://127.0.0.1:9/portal-test")
	b.typeInto("wh-description", "browser test")
	b.click("t-balance.low")
	submit(b, button("/agency/webhooks", "Create endpoint"))
	b.wantFlash("created for http://127.0.0.1:9/portal-test")
	if got := b.text("#webhook-secret"); !strings.HasPrefix(got, "whsec_") {
		t.Fatalf("the new endpoint's secret: %q", got)
	}
	b.shot("agency-webhook-created")
	b.open("/agency/webhooks")
	if b.has("#webhook-secret") {
		t.Fatal("the signing secret is shown a second time")
	}
	submit(b, rowButton("portal-test", "Disable"))
	b.wantFlash("disabled")
	if got := b.text("#endpoints"); !strings.Contains(got, "Disabled") {
		t.Fatalf("endpoints: %q, want it disabled", got)
	}
	submit(b, rowButton("portal-test", "Delete"))
	b.wantFlash("deleted")
	if b.has("#endpoints") && strings.Contains(b.text("#endpoints"), "portal-test") {
		t.Fatal("the deleted endpoint is still listed")
	}

	// Every client's balance, and one client's history.
	b.open("/agency/clients")
	if got := b.text("#clients"); !strings.Contains(got, "client-1") || !strings.Contains(got, "client-2") {
		t.Fatalf("clients: %q", got)
	}
	b.shot("agency-clients")
	submit(b, chromedp.Search(`//table[@id="clients"]//a[normalize-space(.)="client-2"]`))
	if got := b.text("h1"); got != "Client client-2" || len(b.history()) == 0 {
		t.Fatalf("client page %q with %d history rows", got, len(b.history()))
	}
}
