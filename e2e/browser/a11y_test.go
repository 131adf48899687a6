package browser

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/chromedp/chromedp"
)

// The pages each role sees, as the checks below walk them.
var (
	clientPages = []string{"/credits", "/buy", "/services", "/invoices"}
	agencyPages = []string{"/agency", "/agency/requests", "/agency/clients", "/agency/clients/client-1", "/agency/packages", "/agency/rates", "/agency/webhooks"}
)

// markFocusable marks every control of the page with data-kb and returns
// the marks the Tab key must reach: each control, and each radio group
// once (Tab enters a group at its checked radio; the arrows move inside).
const markFocusable = `(() => {
	const sel = 'a[href], button, input:not([type=hidden]), select, textarea, [tabindex]:not([tabindex="-1"])';
	const want = [];
	[...document.querySelectorAll(sel)].filter(e => !e.disabled).forEach((e, i) => {
		const m = e.type === "radio" ? "radio:" + e.name : "c" + i;
		e.dataset.kb = m;
		if (!want.includes(m)) want.push(m);
	});
	return want;
})()`

// everyPage opens every page of the portal (signed out, as a client, as
// the agency) in turn and calls check with the tab on it and the result of
// script, a list of strings, evaluated on the page.
func everyPage(t *testing.T, what, script string, check func(b *tab, path string, got []string)) {
	t.Helper()
	for _, tc := range []struct {
		as, account string
		pages       []string
	}{
		{"", "", []string{"/signin"}},
		{"client", "client-5", clientPages},
		{"admin", "", agencyPages},
	} {
		b := newTab(t)
		if tc.as != "" {
			b.signIn(tc.as, tc.account)
		}
		for _, path := range tc.pages {
			b.open(path)
			raw, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]byte](script))
			if err != nil {
				b.fail(what+" "+path, err)
			}
			var got []string
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatal(err)
			}
			check(b, path, got)
		}
	}
}

func TestKeyboardReachesEveryControl(t *testing.T) {
	everyPage(t, "mark the controls of", markFocusable, func(b *tab, path string, want []string) {
		if len(want) < 3 {
			t.Fatalf("%s: only %d controls found: %v", path, len(want), want)
		}
		var reached []string
		for i := 0; i < len(want)+3 && len(reached) < len(want); i++ {
			mark, visible := b.pressTab()
			if i == 0 && mark != want[0] {
				t.Errorf("%s: the first Tab reaches %q, want the skip link %q", path, mark, want[0])
			}
			if mark == "" {
				continue
			}
			if !visible {
				t.Errorf("%s: control %s has the focus without a visible focus ring", path, mark)
			}
			if !slices.Contains(reached, mark) {
				reached = append(reached, mark)
			}
		}
		for _, m := range want {
			if !slices.Contains(reached, m) {
				html, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector('[data-kb="`+m+`"]').outerHTML`))
				t.Errorf("%s: Tab never reaches %s", path, html)
			}
		}
	})
}

// audit lists what an assistive technology or a keyboard user would
// trip on: a control without a label, a button or link without text, an
// image without alt, no language, not one h1, no main landmark, a
// duplicate id, and text whose contrast with its background is below
// WCAG AA (4.5:1, or 3:1 for large text).
const audit = `(() => {
	const bad = [];
	const short = e => e.outerHTML.slice(0, 120);
	document.querySelectorAll('input:not([type=hidden]), select, textarea').forEach(e => {
		if (!(e.labels && e.labels.length) && !e.getAttribute("aria-label") && !e.getAttribute("aria-labelledby")) bad.push("no label: " + short(e));
	});
	document.querySelectorAll("button, a[href]").forEach(e => {
		if (!e.textContent.trim() && !e.getAttribute("aria-label")) bad.push("no text: " + short(e));
	});
	document.querySelectorAll("img").forEach(e => { if (!e.hasAttribute("alt")) bad.push("no alt: " + short(e)); });
	if (!document.documentElement.lang) bad.push("no lang on html");
	if (!document.title.trim()) bad.push("no title");
	if (document.querySelectorAll("h1").length !== 1) bad.push(document.querySelectorAll("h1").length + " h1");
	if (!document.querySelector("main")) bad.push("no main");
	const seen = new Set();
	document.querySelectorAll("[id]").forEach(e => { if (seen.has(e.id)) bad.push("duplicate id " + e.id); seen.add(e.id); });
	document.querySelectorAll("table").forEach(t => { if (!t.querySelector("caption")) bad.push("table without caption: " + (t.id || "?")); });

	const lum = c => {
		const m = c.match(/rgba?\(([^)]+)\)/);
		if (!m) return null;
		const p = m[1].split(",").map(parseFloat);
		if (p.length === 4 && p[3] === 0) return null;
		const [r, g, b] = p.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
		return 0.2126 * r + 0.7152 * g + 0.0722 * b;
	};
	const background = e => {
		for (; e; e = e.parentElement) { const l = lum(getComputedStyle(e).backgroundColor); if (l !== null) return l; }
		return 1;
	};
	const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
	for (let n = walker.nextNode(); n; n = walker.nextNode()) {
		const e = n.parentElement;
		if (!n.textContent.trim() || !e) continue;
		const r = e.getBoundingClientRect();
		if (r.width <= 1 || r.height <= 1 || r.right < 0) continue; // visually hidden, or the skip link off screen
		const s = getComputedStyle(e);
		const fg = lum(s.color);
		if (fg === null) continue;
		const bg = background(e);
		const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
		const size = parseFloat(s.fontSize), large = size >= 24 || (size >= 18.66 && parseInt(s.fontWeight, 10) >= 700);
		if (ratio < (large ? 3 : 4.5)) bad.push("contrast " + ratio.toFixed(2) + ": " + JSON.stringify(n.textContent.trim().slice(0, 40)));
	}
	return bad;
})()`

func TestEveryPageIsLabelledAndReadable(t *testing.T) {
	everyPage(t, "audit", audit, func(_ *tab, path string, problems []string) {
		for _, p := range problems {
			t.Errorf("%s: %s", path, p)
		}
	})
}
