package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// tab is one browser tab of a test, in a browser context of its own.
type tab struct {
	t   testing.TB
	ctx context.Context
}

func newTab(t testing.TB) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	// The tab opens with its own context: a step's shorter deadline must
	// not close it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(cancelTimeout)
	return &tab{t: t, ctx: ctx}
}

// fail reports err with where the tab is and what it shows.
func (b *tab) fail(what string, err error) {
	b.t.Helper()
	where, _ := chromedp.Run(b.ctx, chromedp.Location())
	text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	b.t.Fatalf("%s: %v\nat %s, showing:\n%s", what, err, where, text)
}

// stepTimeout bounds one step: an element that never appears fails the
// test in seconds, not at the test's deadline.
const stepTimeout = 30 * time.Second

func (b *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail(what, err)
	}
}

// open loads a page of the portal.
func (b *tab) open(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(stack.PortalURL+path))
}

// submit clicks what sel finds (a button, a link) and waits until the
// page it leads to has loaded.
func submit[S chromedp.Selectable](b *tab, sel S) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(sel, chromedp.NodeVisible))); err != nil {
		b.fail(fmt.Sprintf("click %v", sel), err)
	}
}

// button is the selector of the button whose text starts with text, in
// the form whose action contains action (any form when empty).
func button(action, text string) chromedp.Search {
	if action == "" {
		return chromedp.Search(fmt.Sprintf(`//button[starts-with(normalize-space(.), %q)]`, text))
	}
	return chromedp.Search(fmt.Sprintf(`//form[contains(@action, %q)]//button[starts-with(normalize-space(.), %q)]`, action, text))
}

// byID selects the element with this id (which may hold a ".").
func byID(id string) chromedp.CSS { return chromedp.CSS(fmt.Sprintf("[id=%q]", id)) }

// typeInto replaces an input's value by typing.
func (b *tab) typeInto(id, text string) {
	b.t.Helper()
	clear := chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.getElementById(%q).value = ""`, id))
	b.do("type into #"+id, chromedp.WaitVisible(byID(id)), clear, chromedp.SendKeys(byID(id), text))
}

// click clicks the element with this id (a radio, a checkbox).
func (b *tab) click(id string) {
	b.t.Helper()
	b.do("click #"+id, chromedp.Click(byID(id), chromedp.NodeVisible))
}

// text is the visible text of the first element css finds, or "" if none.
func (b *tab) text(css string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? e.innerText.trim() : "" })()`, css)))
	if err != nil {
		b.fail("read "+css, err)
	}
	return s
}

func (b *tab) has(css string) bool {
	b.t.Helper()
	ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%q) !== null`, css)))
	if err != nil {
		b.fail("look for "+css, err)
	}
	return ok
}

// hasButton says whether a button whose text starts with text is on the page.
func (b *tab) hasButton(text string) bool {
	b.t.Helper()
	ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](fmt.Sprintf(
		`[...document.querySelectorAll("button")].some(e => e.innerText.trim().startsWith(%q))`, text)))
	if err != nil {
		b.fail("look for button "+text, err)
	}
	return ok
}

// flash is the success message of the page, failing the test if the page
// shows an error instead.
func (b *tab) flash() string {
	b.t.Helper()
	if e := b.text(".flash.error"); e != "" {
		b.fail("the page shows an error", fmt.Errorf("%s", e))
	}
	return b.text(".flash.ok")
}

// wantFlash checks the page's success message.
func (b *tab) wantFlash(substr string) {
	b.t.Helper()
	if got := b.flash(); !strings.Contains(got, substr) {
		b.fail("flash message", fmt.Errorf("got %q, want it to contain %q", got, substr))
	}
}

// shot saves a PNG of the whole page as name.png.
func (b *tab) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.fail("screenshot "+name, err)
	}
	if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o600); err != nil {
		b.t.Fatal(err)
	}
}

// signIn uses the development sign-in: as "client" with account, or as
// the agency's "admin".
func (b *tab) signIn(as, account string) {
	b.t.Helper()
	b.open("/signin")
	b.typeInto("workspace", stack.Workspace)
	b.click("as-" + as)
	if as == "client" {
		b.typeInto("account", account)
	}
	b.shot("signin")
	submit(b, button("/signin", "Sign in"))
	want := "/credits"
	if as == "admin" {
		want = "/agency"
	}
	if loc, _ := chromedp.Run(b.ctx, chromedp.Location()); !strings.HasSuffix(loc, want) {
		b.fail("sign in", fmt.Errorf("landed on %s, want %s", loc, want))
	}
}

var digits = regexp.MustCompile(`[^0-9]`)

// credits reads a number of credits shown as "1,234 credits".
func (b *tab) credits(css string) int64 {
	b.t.Helper()
	s := b.text(css)
	n, err := strconv.ParseInt(digits.ReplaceAllString(strings.Fields(s + " x")[0], ""), 10, 64)
	if err != nil {
		b.fail("read credits of "+css, fmt.Errorf("%q: %w", s, err))
	}
	return n
}

// widget is the balance in the header, or -1 when the widget is hidden.
func (b *tab) widget() int64 {
	b.t.Helper()
	if !b.has("#balance-widget") {
		return -1
	}
	return b.credits("[data-testid=widget-balance]")
}

// historyRow is a row of the history table.
type historyRow struct {
	Date, InOut, Kind, Reference string
	Amount, Balance              int64
}

// history reads the history table, newest first.
func (b *tab) history() []historyRow {
	b.t.Helper()
	raw, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]byte](`[...document.querySelectorAll("#history tbody tr")].map(tr => [...tr.cells].map(c => c.innerText.trim()))`))
	if err != nil {
		b.fail("read the history", err)
	}
	var cells [][]string
	if err := json.Unmarshal(raw, &cells); err != nil {
		b.t.Fatal(err)
	}
	var rows []historyRow
	for _, c := range cells {
		if len(c) != 6 {
			b.fail("history row", fmt.Errorf("%d cells: %q", len(c), c))
		}
		amount, err1 := strconv.ParseInt(digits.ReplaceAllString(c[4], ""), 10, 64)
		balance, err2 := strconv.ParseInt(digits.ReplaceAllString(c[5], ""), 10, 64)
		if err1 != nil || err2 != nil {
			b.fail("history row", fmt.Errorf("amount %q, balance %q", c[4], c[5]))
		}
		rows = append(rows, historyRow{Date: c[0], InOut: c[1], Kind: c[2], Reference: c[3], Amount: amount, Balance: balance})
	}
	return rows
}

// fetchText reads a URL of the portal from the page, with its cookies.
func (b *tab) fetchText(path string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf(
		`fetch(%q, {credentials: "same-origin"}).then(r => r.ok ? r.text() : Promise.reject(new Error("HTTP " + r.status)))`, path), chromedp.EvalAwaitPromise))
	if err != nil {
		b.fail("fetch "+path, err)
	}
	return s
}

// pressTab presses the Tab key and returns what has the focus: its
// data-kb mark (set by markFocusable) and whether its focus is visible.
func (b *tab) pressTab() (mark string, visible bool) {
	b.t.Helper()
	b.do("press Tab", chromedp.KeyEvent(kb.Tab))
	var got struct {
		Mark    string `json:"mark"`
		Visible bool   `json:"visible"`
	}
	raw, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]byte](`(() => {
		const e = document.activeElement;
		if (!e || e === document.body) return {mark: "", visible: false};
		const s = getComputedStyle(e);
		return {mark: e.dataset.kb || "", visible: s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2};
	})()`))
	if err != nil {
		b.fail("read the focus", err)
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		b.t.Fatal(err)
	}
	return got.Mark, got.Visible
}
