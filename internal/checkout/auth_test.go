package checkout

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/creditledger/creditledger/internal/consumer/consumertest"
	"github.com/creditledger/creditledger/internal/token"
)

// mintToken returns a token of role in workspace (and account, for a
// client) with every scope the role may hold, or with scopes when given.
func mintToken(t testing.TB, role token.Role, workspace, account string, scopes ...string) string {
	t.Helper()
	return consumertest.TestKeys(t).Mint(t, role, workspace, account, scopes...)
}

// principals are the callers of the authorization table.
var principals = consumertest.Principals(ws)

func TestAuthorizationTable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	e.ledger.Fund(e.t, ws, "client-1", 10_000)
	e.putService("logo", usd(1, 0), true)
	createPackage(t, e, "starter", 100)
	var o Order
	if code := e.do("POST", "/v1/workspaces/"+ws+"/accounts/client-1/orders", map[string]string{"service_id": "logo"}, &o); code != 201 {
		t.Fatalf("order: HTTP %d", code)
	}
	p := e.stripePurchase("client-1", "starter")

	const (
		u  = 401
		f  = 403
		nf = 404
	)
	// Columns in the order of principals.
	tests := []struct {
		method, path string
		body         any
		want         [7]int
	}{
		{"PUT", "/v1/workspaces/" + ws + "/services/seo", map[string]any{"name": "SEO", "price": usd(2, 0)}, [7]int{u, f, f, nf, 200, nf, f}},
		{"GET", "/v1/workspaces/" + ws + "/services", nil, [7]int{u, 200, 200, nf, 200, nf, 200}},
		{"GET", "/v1/workspaces/" + ws + "/services/logo", nil, [7]int{u, 200, 200, nf, 200, nf, 200}},
		{"GET", "/v1/workspaces/" + ws + "/accounts/client-1/services/logo/checkout-options", nil, [7]int{u, 200, nf, nf, 200, nf, 200}},
		{"POST", "/v1/workspaces/" + ws + "/accounts/client-1/orders", map[string]string{"service_id": "logo"}, [7]int{u, 201, nf, nf, 201, nf, 201}},
		{"GET", "/v1/workspaces/" + ws + "/accounts/client-1/orders", nil, [7]int{u, 200, nf, nf, 200, nf, 200}},
		{"GET", "/v1/workspaces/" + ws + "/orders/" + o.ID, nil, [7]int{u, 200, nf, nf, 200, nf, 200}},
		{"POST", "/v1/workspaces/" + ws + "/accounts/client-1/credit-purchases", PurchaseInput{PackageID: "starter", Method: MethodStripe}, [7]int{u, 201, nf, nf, 201, nf, 201}},
		{"GET", "/v1/workspaces/" + ws + "/credit-purchases/" + p.ID, nil, [7]int{u, 200, nf, nf, 200, nf, 200}},
		{"GET", "/v1/workspaces/" + ws + "/payment-methods", nil, [7]int{u, 200, 200, nf, 200, nf, 200}},
		// A card purchase is settled by its provider: whoever may cancel
		// is told it does not wait for the agency.
		{"POST", "/v1/workspaces/" + ws + "/credit-purchases/" + p.ID + ":cancel", nil, [7]int{u, 409, nf, nf, 409, nf, 409}},
		// Tokens do not open the webhook: only a provider's signature does.
		{"POST", "/webhooks/payments", PaymentConfirmation{Provider: "stripe", PaymentID: "pi_x", Workspace: ws, Account: "client-1", PackageID: "starter"}, [7]int{400, 400, 400, 400, 400, 400, 400}},
		{"GET", "/healthz", nil, [7]int{200, 200, 200, 200, 200, 200, 200}},
	}
	for _, tt := range tests {
		for i, pr := range principals {
			t.Run(tt.method+" "+tt.path+"/"+pr.Name, func(t *testing.T) {
				auth := ""
				if !pr.Anonymous {
					auth = "Bearer " + mintToken(t, pr.Role, pr.Workspace, pr.Account)
				}
				var body apiError
				code := e.do(tt.method, tt.path, tt.body, &body, "Authorization", auth)
				if code != tt.want[i] {
					t.Fatalf("HTTP %d, want %d (%+v)", code, tt.want[i], body.Error)
				}
				switch code {
				case 401:
					if body.Error.Code != CodeUnauthenticated {
						t.Errorf("error %+v", body.Error)
					}
				case 403:
					if body.Error.Code != CodePermissionDenied {
						t.Errorf("error %+v", body.Error)
					}
				case 404:
					if body.Error.Code != CodeNotFound {
						t.Errorf("error %+v", body.Error)
					}
				}
			})
		}
	}
	if b, _ := e.client.Balance(t.Context(), ws, "client-1"); b.GetBalance() != 10_000 || b.GetHeld() != 4*10 {
		t.Errorf("balance %v: want four orders of 10 credits held (the setup's and three allowed callers')", b)
	}
	if n := len(e.ledger.Calls("Credit")); n != 0 {
		t.Errorf("%d credits through the webhook", n)
	}
}

// A hidden resource answers exactly as a missing one.
func TestHiddenIsIndistinguishableFromMissing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	e.ledger.Fund(e.t, ws, "client-1", 100)
	e.putService("logo", usd(1, 0), true)
	var o Order
	e.do("POST", "/v1/workspaces/"+ws+"/accounts/client-1/orders", map[string]string{"service_id": "logo"}, &o)
	other := "Bearer " + mintToken(t, token.RoleClient, ws, "client-2")
	get := func(id string) (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", e.srv.URL+"/v1/workspaces/"+ws+"/orders/"+id, nil)
		req.Header.Set("Authorization", other)
		res, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, strings.ReplaceAll(string(b), id, "ID")
	}
	c1, b1 := get(o.ID)
	c2, b2 := get("0190aaaa-0000-7000-8000-000000000000")
	if c1 != 404 || c1 != c2 || b1 != b2 {
		t.Errorf("another's order: %d %s; a missing one: %d %s", c1, b1, c2, b2)
	}
}

func TestTokensRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	now := time.Now()
	claims := func(mod func(c *token.Claims)) string {
		c := token.New(token.DefaultIssuer, token.DefaultAudience, token.RoleAdmin, "a", ws, "", token.RoleScopes(token.RoleAdmin), now, time.Hour)
		mod(&c)
		return consumertest.TestKeys(t).MintClaims(t, c)
	}
	dev, err := token.MintDev([]byte(strings.Repeat("s", 32)), token.New(token.DefaultIssuer, token.DefaultAudience, token.RoleAdmin, "a", ws, "", token.RoleScopes(token.RoleAdmin), now, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		header    string
		challenge string
	}{
		"no header":           {"", `Bearer realm="checkout"`},
		"basic auth":          {"Basic YTpi", `Bearer realm="checkout"`},
		"empty bearer":        {"Bearer ", `Bearer realm="checkout"`},
		"garbage":             {"Bearer not.a.token", `Bearer realm="checkout", error="invalid_token"`},
		"expired":             {"Bearer " + claims(func(c *token.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute)) }), `Bearer realm="checkout", error="invalid_token"`},
		"wrong audience":      {"Bearer " + claims(func(c *token.Claims) { c.Audience = jwt.ClaimStrings{"elsewhere"} }), `Bearer realm="checkout", error="invalid_token"`},
		"wrong issuer":        {"Bearer " + claims(func(c *token.Claims) { c.Issuer = "evil" }), `Bearer realm="checkout", error="invalid_token"`},
		"HS256 in production": {"Bearer " + dev, `Bearer realm="checkout", error="invalid_token"`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequestWithContext(t.Context(), "GET", e.srv.URL+"/v1/workspaces/"+ws+"/services", nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			res, err := testClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = res.Body.Close()
			if res.StatusCode != 401 || res.Header.Get("WWW-Authenticate") != tt.challenge || res.Header.Get("Content-Type") != "application/json" {
				t.Errorf("HTTP %d, WWW-Authenticate %q", res.StatusCode, res.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestScopesAreChecked(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	e.ledger.Fund(e.t, ws, "client-1", 100)
	e.putService("logo", usd(1, 0), true)
	tests := []struct {
		name, method, path string
		body               any
		tok                string
		want               int
	}{
		{
			"client reading without ledger:read", "GET", "/v1/workspaces/" + ws + "/accounts/client-1/orders", nil,
			mintToken(t, token.RoleClient, ws, "client-1", token.ScopeRequestsSubmit), 403,
		},
		{
			"client buying without requests:submit", "POST", "/v1/workspaces/" + ws + "/accounts/client-1/orders",
			map[string]string{"service_id": "logo"},
			mintToken(t, token.RoleClient, ws, "client-1", token.ScopeLedgerRead), 403,
		},
		{
			"admin writing the catalog without settings:admin", "PUT", "/v1/workspaces/" + ws + "/services/x",
			map[string]any{"name": "x", "price": usd(1, 0)},
			mintToken(t, token.RoleAdmin, ws, "", token.ScopeLedgerRead), 403,
		},
		{
			"service buying with ledger:write only", "POST", "/v1/workspaces/" + ws + "/accounts/client-1/orders",
			map[string]string{"service_id": "logo"},
			mintToken(t, token.RoleService, ws, "", token.ScopeLedgerWrite), 201,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body apiError
			if code := e.do(tt.method, tt.path, tt.body, &body, "Authorization", "Bearer "+tt.tok); code != tt.want {
				t.Errorf("HTTP %d, want %d: %+v", code, tt.want, body.Error)
			}
		})
	}
}

func TestNewAppNeedsAVerifierOrAnExplicitDevelopmentMode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := NewApp(Config{Store: e.store, Ledger: e.client}); err == nil {
		t.Error("an App without authentication was made without NoAuth")
	}
	app, err := NewApp(Config{Store: e.store, Ledger: e.client, NoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(app.Handler())
	t.Cleanup(srv.Close)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/v1/workspaces/"+ws+"/services", nil)
	res, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("NoAuth: HTTP %d", res.StatusCode)
	}
}

func TestFingerprintHidesTheKey(t *testing.T) {
	t.Parallel()
	k := "stripe:pi_3Nq1secret"
	f := fingerprint(k)
	if len(f) != 16 || strings.Contains(k, f) || f != fingerprint(k) || f == fingerprint(k+"x") {
		t.Errorf("fingerprint(%q) = %q", k, f)
	}
}
