package browser

import (
	"strings"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// withoutScripts turns the page's JavaScript off in the tab: the portal
// is plain forms and must work so.
func withoutScripts(b *tab) *tab {
	b.t.Helper()
	if _, err := chromedp.Call(b.ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		b.t.Fatalf("turn scripts off: %v", err)
	}
	return b
}

func TestThePortalWorksWithoutJavaScript(t *testing.T) {
	client := withoutScripts(newTab(t))
	client.signIn("client", "client-6")
	if client.has("html.js") {
		t.Fatal("the portal's script ran in a tab with scripts off")
	}
	client.open("/buy")
	client.click("pkg-starter")
	client.click("method-CRYPTO")
	client.typeInto("reference", "0xnoscript")
	submit(client, button("/buy", "Buy"))
	client.wantFlash("waits for the agency's approval")
	submit(client, rowButton("0xnoscript", "Cancel request"))
	client.wantFlash("Your request was cancelled")

	// Without the script, the quote changes only with the Preview button.
	agency := withoutScripts(newTab(t))
	agency.signIn("admin", "")
	agency.open("/agency/rates")
	agency.typeInto("currency", "USD")
	agency.typeInto("rate", "12.5")
	agency.typeInto("sample", "2")
	if agency.has("html.js") {
		t.Fatal("the portal's script ran in a tab with scripts off")
	}
	submit(agency, button("/agency/rates", "Preview"))
	if got := agency.text("#preview"); !strings.Contains(got, "USD 2 at 12.5 credits per USD costs 25 credits") {
		t.Fatalf("preview: %q", got)
	}
}
