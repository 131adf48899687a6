package portal

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// testClient has a connection pool of its own (.golangci.yml's forbidigo
// rule says why tests need one).
var testClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}

func TestPreviewCredits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, price, rate string
		want              int64
		wantErr           string
	}{
		{"the spec's example rounds up", "3.51", "10", 36, ""},
		{"fractional rate", "3.51", "9.5", 34, ""},
		{"exact stays exact", "100", "10", 1000, ""},
		{"a fraction of a credit costs a credit", "0.01", "1", 1, ""},
		{"nine digits of rate", "1", "0.000000001", 1, ""},
		{"zero rate", "1", "0", 0, "greater than zero"},
		{"ten digits of rate", "1", "0.0000000001", 0, "too many digits"},
		{"not a number", "1", "ten", 0, "enter a number"},
		{"negative", "-1", "10", 0, "digits"},
		{"exponent", "1e3", "10", 0, "digits"},
		{"trailing point", "1.", "10", 0, "enter a number"},
		{"too many credits", "1000000000000", "10", 0, "10^12"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := previewCredits(tc.price, tc.rate)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("previewCredits(%q, %q) = %d, %v; want an error with %q", tc.price, tc.rate, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("previewCredits(%q, %q) = %d, %v; want %d", tc.price, tc.rate, got, err, tc.want)
			}
		})
	}
}

func TestParseMoney(t *testing.T) {
	t.Parallel()
	tests := []struct {
		currency, amount string
		want             Money
		ok               bool
	}{
		{"USD", "49.99", Money{"USD", 49, 990000000}, true},
		{"EUR", "10", Money{"EUR", 10, 0}, true},
		{"KWD", "0.125", Money{"KWD", 0, 125000000}, true},
		{"usd", "1", Money{}, false},
		{"US", "1", Money{}, false},
		{"USD", "1.0000000001", Money{}, false},
		{"USD", "", Money{}, false},
	}
	for _, tc := range tests {
		got, err := parseMoney(tc.currency, tc.amount)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseMoney(%q, %q) = %+v, %v; want %+v (ok %v)", tc.currency, tc.amount, got, err, tc.want, tc.ok)
		}
	}
	for m, want := range map[Money]string{{"USD", 3, 510000000}: "USD 3.51", {"USD", 10, 0}: "USD 10.00", {"KWD", 0, 125000000}: "KWD 0.125"} {
		if got := m.String(); got != want {
			t.Errorf("%+v.String() = %q, want %q", m, got, want)
		}
	}
}

// fakeMinter mints a fixed token and counts the calls.
type fakeMinter struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeMinter) Mint(role, subject, workspace, account string) (string, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, role+"/"+subject+"/"+workspace+"/"+account)
	return "tok-" + role + "-" + account, time.Now().Add(time.Hour), nil
}

// upstream answers the ledger's, checkout's and invoicing's routes the
// pages read with canned JSON, and records the Authorization headers.
type upstream struct {
	mu       sync.Mutex
	enabled  bool
	ref      string
	authSeen []string
	// checkoutURL is what a card purchase answers; purchases records
	// the purchases' bodies and Idempotency-Keys.
	checkoutURL string
	purchases   []map[string]any
	keys        []string
	// version is the account version balances answer; reads records the
	// balance and history requests (path and query).
	version string
	reads   []string
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.authSeen = append(u.authSeen, r.Header.Get("Authorization"))
	enabled, ref, checkoutURL, version := u.enabled, u.ref, u.checkoutURL, u.version
	if strings.HasSuffix(r.URL.Path, "/balance") || strings.HasSuffix(r.URL.Path, "/transactions") {
		u.reads = append(u.reads, r.URL.RequestURI())
	}
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	var body any
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/credit-purchases"):
		var in map[string]any
		_ = json.NewDecoder(r.Body).Decode(&in)
		u.mu.Lock()
		u.purchases = append(u.purchases, in)
		u.keys = append(u.keys, r.Header.Get("Idempotency-Key"))
		u.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		body = map[string]any{"id": "p1", "status": "AWAITING_PAYMENT", "payment_method": "STRIPE", "checkout_url": checkoutURL}
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, ":decide"):
		body = map[string]any{
			"request":     map[string]any{"id": "r1", "account": "client-1", "amount": "50", "status": "REQUEST_STATUS_ACCEPTED"},
			"transaction": map[string]any{"id": "t9", "account": "client-1", "accountVersion": "9"},
		}
	case strings.HasSuffix(r.URL.Path, "/balance"):
		body = map[string]any{"account": "client-1", "balance": "120", "available": "100", "held": "20", "creditPaymentsEnabled": enabled, "version": version}
	case strings.HasSuffix(r.URL.Path, "/transactions"):
		body = map[string]any{"transactions": []map[string]any{{
			"id": "t1", "type": "TRANSACTION_TYPE_IN", "kind": "TRANSACTION_KIND_ADJUSTMENT", "amount": "120", "balanceAfter": "120",
			"accountVersion": "1", "reference": ref, "createTime": "2026-12-01T10:00:00Z",
		}}}
	case strings.HasSuffix(r.URL.Path, "/creditRequests"):
		body = map[string]any{}
	default:
		w.WriteHeader(http.StatusNotFound)
		body = map[string]any{"code": 5, "message": "not found"}
	}
	_ = json.NewEncoder(w).Encode(body)
}

func newTestPortal(t testing.TB, up *upstream) (*httptest.Server, *fakeMinter) {
	t.Helper()
	api := httptest.NewServer(up)
	t.Cleanup(api.Close)
	m := &fakeMinter{}
	p, err := New(Config{
		LedgerURL: api.URL, CheckoutURL: api.URL, InvoicingURL: api.URL, PublicURL: "http://portal.test",
		Minter: m, DevSignIn: true, DevWorkspace: "acme", SecureCookies: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p.Handler())
	t.Cleanup(srv.Close)
	return srv, m
}

// browser is a client that keeps cookies (also Secure ones over plain
// HTTP: Go's jar, like browsers for loopback) and does not follow
// redirects.
func browser(t testing.TB) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// get returns the page's body, and the CSRF token of its first form.
func get(t testing.TB, c *http.Client, u string) (string, string) {
	t.Helper()
	res, err := c.Get(u) //nolint:noctx // test
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	var b strings.Builder
	if _, err := io.Copy(&b, res.Body); err != nil {
		t.Fatal(err)
	}
	csrf := ""
	if m := csrfRE.FindStringSubmatch(b.String()); m != nil {
		csrf = m[1]
	}
	return b.String(), csrf
}

// answer is what a form post got: its status and redirect.
type answer struct {
	StatusCode int
	Location   string
}

func post(t testing.TB, c *http.Client, u string, form url.Values) answer {
	t.Helper()
	res, err := c.PostForm(u, form) //nolint:noctx // test
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	return answer{res.StatusCode, res.Header.Get("Location")}
}

func signIn(t testing.TB, c *http.Client, base, as, account string) {
	t.Helper()
	_, csrf := get(t, c, base+"/signin")
	res := post(t, c, base+"/signin", url.Values{"csrf": {csrf}, "workspace": {"acme"}, "as": {as}, "account": {account}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: HTTP %d, want 303", res.StatusCode)
	}
}

func TestFormsRefuseMissingOrForeignCSRFToken(t *testing.T) {
	t.Parallel()
	srv, m := newTestPortal(t, &upstream{enabled: true})
	c := browser(t)
	_, csrf := get(t, c, srv.URL+"/signin")
	if csrf == "" {
		t.Fatal("the sign-in form has no CSRF token")
	}
	_, other := get(t, browser(t), srv.URL+"/signin")
	m.mu.Lock()
	minted := len(m.calls)
	m.mu.Unlock()
	form := url.Values{"workspace": {"acme"}, "as": {"client"}, "account": {"client-1"}}
	if res := post(t, c, srv.URL+"/signin", form); res.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-in without a CSRF token: HTTP %d, want 403", res.StatusCode)
	}
	// Another browser's token is worth nothing in this one.
	form.Set("csrf", other)
	if res := post(t, c, srv.URL+"/signin", form); res.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-in with another session's CSRF token: HTTP %d, want 403", res.StatusCode)
	}
	m.mu.Lock()
	if len(m.calls) != minted {
		t.Fatalf("tokens minted for refused forms: %v", m.calls[minted:])
	}
	m.mu.Unlock()
	form.Set("csrf", csrf)
	res := post(t, c, srv.URL+"/signin", form)
	if res.StatusCode != http.StatusSeeOther || res.Location != "/credits" {
		t.Fatalf("sign-in: HTTP %d to %q, want 303 to /credits", res.StatusCode, res.Location)
	}
	// The old token died with the anonymous session: the session id and
	// its token are new after signing in.
	if res := post(t, c, srv.URL+"/signout", url.Values{"csrf": {csrf}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-out with the token of before the sign-in: HTTP %d, want 403", res.StatusCode)
	}
}

func TestSessionCookieIsHttpOnlyLaxAndSecure(t *testing.T) {
	t.Parallel()
	srv, _ := newTestPortal(t, &upstream{enabled: true})
	res, err := testClient.Get(srv.URL + "/signin") //nolint:noctx // test
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	var found bool
	for _, c := range res.Cookies() {
		if c.Name != cookieName {
			continue
		}
		found = true
		if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || len(c.Value) < 40 {
			t.Fatalf("session cookie %+v: want HttpOnly, Secure, SameSite=Lax and a long random value", c)
		}
	}
	if !found {
		t.Fatal("no session cookie set")
	}
	for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options"} {
		if res.Header.Get(h) == "" {
			t.Errorf("header %s missing", h)
		}
	}
}

func TestPagesEscapeWhatTheAPIsSay(t *testing.T) {
	t.Parallel()
	up := &upstream{enabled: true, ref: `<script>alert("x")</script>`}
	srv, _ := newTestPortal(t, up)
	c := browser(t)
	signIn(t, c, srv.URL, "client", "client-1")
	up.mu.Lock()
	up.authSeen = nil // the sign-in page's own reads
	up.mu.Unlock()
	body, _ := get(t, c, srv.URL+"/credits")
	if strings.Contains(body, "<script>alert") {
		t.Fatal("a reference from the ledger reached the page unescaped")
	}
	if !strings.Contains(body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
		t.Fatalf("the escaped reference is not on the page:\n%s", body)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	for _, a := range up.authSeen {
		if a != "Bearer tok-client-client-1" {
			t.Fatalf("an API call carried %q, want the client's token", a)
		}
	}
}

func TestBalanceWidgetFollowsTheCreditPaymentsSwitch(t *testing.T) {
	t.Parallel()
	for _, enabled := range []bool{true, false} {
		srv, _ := newTestPortal(t, &upstream{enabled: enabled})
		c := browser(t)
		signIn(t, c, srv.URL, "client", "client-1")
		body, _ := get(t, c, srv.URL+"/credits")
		if got := strings.Contains(body, `id="balance-widget"`); got != enabled {
			t.Errorf("credit payments enabled=%v: widget shown=%v", enabled, got)
		}
		// The Credits page itself keeps showing the balance: it is preserved.
		if !strings.Contains(body, `<dd id="balance">120 credits</dd>`) {
			t.Errorf("credit payments enabled=%v: the balance is not on the Credits page", enabled)
		}
	}
}

func TestPagesAreForTheirRole(t *testing.T) {
	t.Parallel()
	srv, _ := newTestPortal(t, &upstream{enabled: true})
	anon := browser(t)
	res, err := anon.Get(srv.URL + "/credits") //nolint:noctx // test
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/signin" {
		t.Fatalf("anonymous /credits: HTTP %d to %q, want 303 to /signin", res.StatusCode, res.Header.Get("Location"))
	}
	c := browser(t)
	signIn(t, c, srv.URL, "client", "client-1")
	for _, path := range []string{"/agency", "/agency/requests", "/agency/clients/client-2"} {
		res, err := c.Get(srv.URL + path) //nolint:noctx // test
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("client GET %s: HTTP %d, want 403", path, res.StatusCode)
		}
	}
}

func TestCardPurchaseGoesToTheCheckoutURLOnlyIfItIsAWebPage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		checkoutURL string
		follow      bool
	}{
		{"https://checkout.stripe.example/c/pay/cs_test_1", true},
		{"http://127.0.0.1:12111/pay/cs_test_2", true},
		{"javascript:alert(1)", false},
		{"", false},
		{"//elsewhere.example/pay", false},
	} {
		up := &upstream{enabled: true, checkoutURL: tc.checkoutURL}
		srv, _ := newTestPortal(t, up)
		c := browser(t)
		signIn(t, c, srv.URL, "client", "client-1")
		_, csrf := get(t, c, srv.URL+"/credits")
		form := url.Values{"csrf": {csrf}, "nonce": {"0123456789abcdef0123"}, "package": {"starter"}, "method": {"STRIPE"}}
		res := post(t, c, srv.URL+"/buy", form)
		if tc.follow && (res.StatusCode != http.StatusSeeOther || res.Location != tc.checkoutURL) {
			t.Errorf("checkout_url %q: HTTP %d to %q, want 303 to it", tc.checkoutURL, res.StatusCode, res.Location)
		}
		if !tc.follow && res.Location != "/buy" {
			t.Errorf("checkout_url %q: redirected to %q, want back to /buy", tc.checkoutURL, res.Location)
		}
		// The same form again is the same purchase for checkout.
		post(t, c, srv.URL+"/buy", form)
		up.mu.Lock()
		if len(up.purchases) != 2 || up.keys[0] != "portal:0123456789abcdef0123" || up.keys[1] != up.keys[0] {
			t.Errorf("purchases %v with keys %q: want two with the form's key", up.purchases, up.keys)
		}
		p := up.purchases[0]
		if p["success_url"] != "http://portal.test/buy/return?outcome=paid" || p["cancel_url"] != "http://portal.test/buy/return?outcome=cancelled" ||
			p["payment_method"] != "STRIPE" || p["package_id"] != "starter" {
			t.Errorf("purchase sent to checkout: %v", p)
		}
		up.mu.Unlock()
	}
}

// takeReads returns the balance and history requests since the last call.
func (u *upstream) takeReads() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	r := u.reads
	u.reads = nil
	return r
}

// TestReadsNeverGoBackInVersions: with reads served by replicas that may
// lag, a session's pages ask the ledger for an account at least as new as
// the newest version the session saw or wrote (min_version): the history
// as new as the balance beside it, a second visit as new as the first, and
// the client's page after the agency accepted a request as new as the
// credit.
func TestReadsNeverGoBackInVersions(t *testing.T) {
	t.Parallel()
	up := &upstream{enabled: true, version: "5"}
	srv, _ := newTestPortal(t, up)
	c := browser(t)
	signIn(t, c, srv.URL, "client", "client-1")
	up.takeReads()
	get(t, c, srv.URL+"/credits")
	reads := up.takeReads()
	if len(reads) < 2 || strings.Contains(reads[0], "minVersion") || !strings.Contains(reads[len(reads)-1], "minVersion=5") {
		t.Errorf("first visit read %q: want the balance at any version, then the history at its version 5", reads)
	}
	get(t, c, srv.URL+"/credits")
	for _, r := range up.takeReads() {
		if !strings.Contains(r, "minVersion=5") {
			t.Errorf("second visit read %q without minVersion=5", r)
		}
	}

	agency := browser(t)
	signIn(t, agency, srv.URL, "admin", "")
	_, csrf := get(t, agency, srv.URL+"/agency/requests")
	if res := post(t, agency, srv.URL+"/agency/requests/r1/accept", url.Values{"csrf": {csrf}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("accept: HTTP %d, want 303", res.StatusCode)
	}
	up.takeReads()
	get(t, agency, srv.URL+"/agency/clients/client-1")
	reads = up.takeReads()
	if len(reads) == 0 || !strings.Contains(reads[0], "/accounts/client-1/balance?minVersion=9") {
		t.Errorf("the client's page after the acceptance read %q: want the balance at version 9 or later", reads)
	}
}
