package invoicing

import (
	"net/http"
	"strings"
	"testing"
	"time"

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
	inv := e.invoice("INV-1", usd(1, 0))

	const (
		u  = 401
		f  = 403
		nf = 404
	)
	base := "/v1/workspaces/" + ws + "/invoices"
	tests := []struct {
		method, path string
		body         any
		want         [7]int
	}{
		{"POST", base, NewInvoice{Account: "client-1", Amount: usd(1, 0)}, [7]int{u, f, f, nf, 201, nf, 201}},
		{"GET", base, nil, [7]int{u, 200, 200, nf, 200, nf, 200}},
		{"GET", base + "?account=client-1", nil, [7]int{u, 200, nf, nf, 200, nf, 200}},
		{"GET", base + "/" + inv.ID, nil, [7]int{u, 200, nf, nf, 200, nf, 200}},
		{"GET", base + "/" + inv.ID + "/payment-options", nil, [7]int{u, 200, nf, nf, 200, nf, 200}},
		// Paying twice is answered 200 with the PAID invoice.
		{"POST", base + "/" + inv.ID + "/pay-with-credit", nil, [7]int{u, 200, nf, nf, 200, nf, 200}},
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
				code := e.doAs(auth, tt.method, tt.path, tt.body, &body)
				if code != tt.want[i] {
					t.Fatalf("HTTP %d, want %d (%+v)", code, tt.want[i], body.Error)
				}
				want := map[int]string{u: CodeUnauthenticated, f: CodePermissionDenied, nf: CodeNotFound}[code]
				if want != "" && body.Error.Code != want {
					t.Errorf("error %+v, want %s", body.Error, want)
				}
			})
		}
	}
	if n := len(debits(e)); n != 1 {
		t.Errorf("%d debits, want the one of INV-1", n)
	}
}

func TestClientListsOnlyItsOwnInvoices(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.invoice("INV-1", usd(1, 0)) // client-1
	var two Invoice
	if code := e.do("POST", "/v1/workspaces/"+ws+"/invoices", NewInvoice{Account: "client-2", Number: "INV-2", Amount: usd(1, 0)}, &two); code != 201 {
		t.Fatalf("HTTP %d", code)
	}
	var list struct{ Invoices []Invoice }
	if code := e.doAs("Bearer "+mintToken(t, token.RoleClient, ws, "client-2"), "GET", "/v1/workspaces/"+ws+"/invoices", nil, &list); code != 200 {
		t.Fatalf("HTTP %d", code)
	}
	if len(list.Invoices) != 1 || list.Invoices[0].ID != two.ID {
		t.Errorf("client-2 sees %+v, want only INV-2", list.Invoices)
	}
}

func TestTokensRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dev, err := token.MintDev([]byte(strings.Repeat("s", 32)), token.New(token.DefaultIssuer, token.DefaultAudience, token.RoleAdmin, "a", ws, "",
		token.RoleScopes(token.RoleAdmin), time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for name, tt := range map[string]struct{ header, challenge string }{
		"no header":           {"", `Bearer realm="invoicing"`},
		"garbage":             {"Bearer x.y.z", `Bearer realm="invoicing", error="invalid_token"`},
		"HS256 in production": {"Bearer " + dev, `Bearer realm="invoicing", error="invalid_token"`},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", e.srv.URL+"/v1/workspaces/"+ws+"/invoices", nil)
		if tt.header != "" {
			req.Header.Set("Authorization", tt.header)
		}
		res, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != 401 || res.Header.Get("WWW-Authenticate") != tt.challenge {
			t.Errorf("%s: HTTP %d, WWW-Authenticate %q", name, res.StatusCode, res.Header.Get("WWW-Authenticate"))
		}
	}
}

func TestScopesAreChecked(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	e.ledger.Fund(e.t, ws, "client-1", 100)
	inv := e.invoice("INV-1", usd(1, 0))
	base := "/v1/workspaces/" + ws + "/invoices"
	tests := []struct {
		name, method, path string
		body               any
		auth               string
		want               int
	}{
		{
			"client paying without requests:submit", "POST", base + "/" + inv.ID + "/pay-with-credit", nil,
			mintToken(t, token.RoleClient, ws, "client-1", token.ScopeLedgerRead), 403,
		},
		{
			"admin issuing without settings:admin", "POST", base,
			NewInvoice{Account: "client-1", Amount: usd(1, 0)},
			mintToken(t, token.RoleAdmin, ws, "", token.ScopeLedgerRead), 403,
		},
		{
			"service reading without ledger:read", "GET", base + "/" + inv.ID, nil,
			mintToken(t, token.RoleService, ws, "", token.ScopeLedgerWrite), 403,
		},
		{
			"service paying with ledger:write", "POST", base + "/" + inv.ID + "/pay-with-credit", nil,
			mintToken(t, token.RoleService, ws, "", token.ScopeLedgerWrite), 200,
		},
	}
	for _, tt := range tests {
		var body apiError
		if code := e.doAs("Bearer "+tt.auth, tt.method, tt.path, tt.body, &body); code != tt.want {
			t.Errorf("%s: HTTP %d, want %d: %+v", tt.name, code, tt.want, body.Error)
		}
	}
}

func TestNewAppNeedsAVerifierOrAnExplicitDevelopmentMode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := NewApp(Config{Store: e.store, Ledger: e.client}); err == nil {
		t.Error("an App without authentication was made without NoAuth")
	}
	if _, err := NewApp(Config{Store: e.store, Ledger: e.client, NoAuth: true}); err != nil {
		t.Error(err)
	}
}
