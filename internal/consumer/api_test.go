package consumer

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/codes"

	"github.com/creditledger/creditledger/internal/token"
	"github.com/creditledger/creditledger/ledgerclient"
)

// fakeVerifier accepts the tokens it knows.
type fakeVerifier map[string]token.Claims

func (f fakeVerifier) Verify(raw string) (token.Claims, error) {
	if c, ok := f[raw]; ok {
		return c, nil
	}
	return token.Claims{}, errors.New("unknown token")
}

var verifier = fakeVerifier{
	"client-1": {Role: token.RoleClient, Workspace: "ws", Account: "client-1", Scopes: token.RoleScopes(token.RoleClient)},
	"admin":    {Role: token.RoleAdmin, Workspace: "ws", Scopes: token.RoleScopes(token.RoleAdmin)},
	"no-scope": {Role: token.RoleAdmin, Workspace: "ws"},
	"other-ws": {Role: token.RoleAdmin, Workspace: "other", Scopes: token.RoleScopes(token.RoleAdmin)},
}

// errorAnswer is what the API answers on error.
type errorAnswer struct {
	Error struct {
		Code     string            `json:"code"`
		Message  string            `json:"message"`
		Metadata map[string]string `json:"metadata"`
	} `json:"error"`
}

func answer(t testing.TB, rec *httptest.ResponseRecorder) errorAnswer {
	t.Helper()
	var a errorAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("%q: %v", rec.Body, err)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	return a
}

func newTestAPI(t testing.TB) (*API, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	a, err := NewAPI(APIConfig{Name: "testsvc", Log: zap.New(core), Verifier: verifier})
	if err != nil {
		t.Fatal(err)
	}
	return a, logs
}

func TestAllow(t *testing.T) {
	t.Parallel()
	a, _ := newTestAPI(t)
	read := Access{Roles: token.Roles, Scopes: []string{token.ScopeLedgerRead}}
	adminOnly := Access{Roles: []token.Role{token.RoleAdmin}, Scopes: []string{token.ScopeSettingsAdmin}}
	tests := []struct {
		name      string
		header    string
		acc       Access
		account   string
		status    int
		code      string
		challenge string
	}{
		{"no token", "", read, "client-1", 401, CodeUnauthenticated, `Bearer realm="testsvc"`},
		{"not a bearer token", "Basic Zm9vOmJhcg==", read, "client-1", 401, CodeUnauthenticated, `Bearer realm="testsvc"`},
		{"an unknown token", "Bearer forged", read, "client-1", 401, CodeUnauthenticated, `Bearer realm="testsvc", error="invalid_token"`},
		{"the client, on its account", "Bearer client-1", read, "client-1", 200, "", ""},
		{"the scheme in any case", "bearer client-1", read, "client-1", 200, "", ""},
		{"the client, on another account", "Bearer client-1", read, "client-2", 404, CodeNotFound, ""},
		{"an admin of another workspace", "Bearer other-ws", read, "", 404, CodeNotFound, ""},
		{"the client, on an admin's route", "Bearer client-1", adminOnly, "client-1", 403, CodePermissionDenied, ""},
		{"an admin without the scope", "Bearer no-scope", adminOnly, "", 403, CodePermissionDenied, ""},
		{"the admin", "Bearer admin", adminOnly, "", 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/v1/workspaces/ws/x", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			rec := httptest.NewRecorder()
			c, ok := a.Allow(rec, r, tt.acc, "ws", tt.account, NotFound("thing", "t-1"))
			if tt.status == 200 {
				if !ok || c == nil || rec.Body.Len() != 0 {
					t.Errorf("refused: %d %s", rec.Code, rec.Body)
				}
				return
			}
			if ok || rec.Code != tt.status {
				t.Fatalf("allowed %v, HTTP %d; want %d", ok, rec.Code, tt.status)
			}
			if got := answer(t, rec); got.Error.Code != tt.code {
				t.Errorf("code %q, want %q", got.Error.Code, tt.code)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("challenge %q, want %q", got, tt.challenge)
			}
		})
	}
}

func TestScopeDeniedSaysTheScopes(t *testing.T) {
	t.Parallel()
	c := verifier["no-scope"]
	err := Authorize(&c, Access{Roles: token.Roles, Scopes: []string{"a:x", "b:y"}}, "ws", "", NotFound("thing", "t"))
	if e := AsError(err); e.Kind != KindPermissionDenied || e.Metadata["required_scope"] != "a:x or b:y" {
		t.Errorf("%+v", e)
	}
}

func TestNewAPI(t *testing.T) {
	t.Parallel()
	if _, err := NewAPI(APIConfig{Name: "s"}); err == nil || !strings.Contains(err.Error(), "NoAuth is for development only") {
		t.Errorf("without a verifier: %v", err)
	}
	if _, err := NewAPI(APIConfig{Name: "s", Verifier: verifier, NoAuth: true}); err == nil {
		t.Error("a verifier and NoAuth")
	}
	a, err := NewAPI(APIConfig{Name: "s", NoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.Authenticate(httptest.NewRequest("GET", "/", nil))
	if c != nil || err != nil {
		t.Errorf("without authentication: %v, %v", c, err)
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	a, _ := newTestAPI(t)
	type in struct {
		Name string `json:"name"`
	}
	tests := []struct {
		name     string
		body     string
		optional bool
		ok       bool
	}{
		{"an object", `{"name": "x"}`, false, true},
		{"an unknown field", `{"name": "x", "title": "y"}`, false, false},
		{"trailing data", `{"name": "x"} {}`, false, false},
		{"not JSON", `name=x`, false, false},
		{"empty", ``, false, false},
		{"empty where optional", " \n", true, true},
		{"an object where optional", `{"name": "x"}`, true, true},
		{"larger than MaxBody", `{"name": "` + strings.Repeat("x", MaxBody) + `"}`, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			r := httptest.NewRequest("POST", "/", strings.NewReader(tt.body))
			var v in
			decode := a.Decode
			if tt.optional {
				decode = a.DecodeOptional
			}
			if ok := decode(rec, r, &v); ok != tt.ok {
				t.Fatalf("Decode = %v, want %v (%s)", ok, tt.ok, rec.Body)
			}
			if tt.ok {
				return
			}
			if got := answer(t, rec); rec.Code != 400 || got.Error.Code != CodeInvalidArgument || got.Error.Metadata["field"] != "body" {
				t.Errorf("HTTP %d %+v", rec.Code, got)
			}
		})
	}
}

// An internal error reaches the log with its cause, and the caller
// without it.
func TestInternalErrorsAreLoggedNotShown(t *testing.T) {
	t.Parallel()
	a, logs := newTestAPI(t)
	rec := httptest.NewRecorder()
	a.Respond(rec, 200, nil, errors.New("disk on fire at /var/db"))
	got := answer(t, rec)
	if rec.Code != 500 || got.Error.Code != CodeInternal || strings.Contains(rec.Body.String(), "disk") {
		t.Errorf("HTTP %d %s", rec.Code, rec.Body)
	}
	if l := logs.FilterMessage("internal error").All(); len(l) != 1 || !strings.Contains(l[0].ContextMap()["error"].(string), "disk on fire") {
		t.Errorf("log %+v", logs.All())
	}
}

func TestRespondWithKeepsTheResource(t *testing.T) {
	t.Parallel()
	a, logs := newTestAPI(t)
	rec := httptest.NewRecorder()
	refused := &Error{Kind: KindRefused, Code: "INSUFFICIENT_CREDITS", Message: "no", Metadata: map[string]string{"balance": "3"}}
	a.RespondWith(rec, 201, "order", map[string]string{"status": "FAILED"}, true, refused)
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"order": map[string]any{"status": "FAILED"},
		"error": map[string]any{"code": "INSUFFICIENT_CREDITS", "message": "no", "metadata": map[string]any{"balance": "3"}},
	}
	if d := cmp.Diff(want, body); rec.Code != 422 || d != "" {
		t.Errorf("HTTP %d (-want +got):\n%s", rec.Code, d)
	}
	if logs.Len() != 0 {
		t.Errorf("a refusal was logged: %+v", logs.All())
	}
	rec = httptest.NewRecorder()
	a.RespondWith(rec, 201, "order", map[string]string{"status": "HELD"}, true, nil)
	if rec.Code != 201 || strings.TrimSpace(rec.Body.String()) != `{"status":"HELD"}` {
		t.Errorf("success: HTTP %d %s", rec.Code, rec.Body)
	}
}

func TestHTTPStatusOfKinds(t *testing.T) {
	t.Parallel()
	for kind, want := range map[Kind]int{
		KindInternal: 500, KindInvalid: 400, KindNotFound: 404, KindConflict: 409, KindRefused: 422,
		KindUnavailable: 503, KindUnauthenticated: 401, KindPermissionDenied: 403,
	} {
		if got := (&Error{Kind: kind}).HTTPStatus(); got != want {
			t.Errorf("kind %d: HTTP %d, want %d", kind, got, want)
		}
	}
}

func TestFromLedger(t *testing.T) {
	t.Parallel()
	const pending = "it stays pending"
	tests := []struct {
		name string
		err  error
		kind Kind
		code string
	}{
		{"a rule refused", &ledgerclient.Error{Code: codes.FailedPrecondition, Reason: ledgerclient.ReasonInsufficientCredits, Message: "short"}, KindRefused, "INSUFFICIENT_CREDITS"},
		{"a key reused", &ledgerclient.Error{Code: codes.InvalidArgument, Reason: ledgerclient.ReasonIdempotencyKeyReused}, KindConflict, "IDEMPOTENCY_KEY_REUSED"},
		{"malformed", &ledgerclient.Error{Code: codes.InvalidArgument, Reason: "INVALID_ARGUMENT"}, KindInvalid, CodeInvalidArgument},
		{"missing", &ledgerclient.Error{Code: codes.NotFound, Reason: "NOT_FOUND"}, KindNotFound, CodeNotFound},
		{"unavailable", &ledgerclient.Error{Code: codes.Unavailable}, KindUnavailable, CodeLedgerUnavailable},
		{"timed out", &ledgerclient.Error{Code: codes.DeadlineExceeded}, KindUnavailable, CodeLedgerUnavailable},
		{"not the ledger's", errors.New("bug"), KindInternal, CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := FromLedger(tt.err, pending)
			if e.Kind != tt.kind || e.Code != tt.code || !errors.Is(e, tt.err) {
				t.Errorf("%+v, want kind %d code %s", e, tt.kind, tt.code)
			}
			if tt.kind == KindUnavailable && e.Message != pending {
				t.Errorf("message %q", e.Message)
			}
		})
	}
}

func TestCheckIDs(t *testing.T) {
	t.Parallel()
	if err := CheckIDs("workspace", "ws-1", "account", "client.2"); err != nil {
		t.Error(err)
	}
	err := CheckIDs("workspace", "ws-1", "account", "client:2")
	if e := AsError(err); e.Kind != KindInvalid || e.Metadata["field"] != "account" || !strings.Contains(e.Message, "[A-Za-z0-9._-]") {
		t.Errorf("%+v", e)
	}
}

func TestMoneyCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		m     Money
		field string // the field refused; "" for none
	}{
		{Money{CurrencyCode: "USD", Units: 3, Nanos: 510_000_000}, ""},
		{Money{CurrencyCode: "EUR", Nanos: 1}, ""},
		{Money{CurrencyCode: "usd", Units: 1}, "price.currency_code"},
		{Money{CurrencyCode: "US", Units: 1}, "price.currency_code"},
		{Money{CurrencyCode: "US1", Units: 1}, "price.currency_code"},
		{Money{CurrencyCode: "USD"}, "price"},
		{Money{CurrencyCode: "USD", Units: -1}, "price"},
		{Money{CurrencyCode: "USD", Nanos: 1_000_000_000}, "price"},
	}
	for _, tt := range tests {
		err := tt.m.Check("price")
		switch {
		case tt.field == "" && err != nil:
			t.Errorf("%+v: %v", tt.m, err)
		case tt.field != "" && AsError(err).Metadata["field"] != tt.field:
			t.Errorf("%+v: %v, want a refusal of %s", tt.m, err, tt.field)
		}
	}
	if got := (Money{CurrencyCode: "USD", Units: 3, Nanos: 510_000_000}).String(); got != "USD 3.51" {
		t.Errorf("String = %q", got)
	}
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	Healthz(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"status":"ok"}` {
		t.Errorf("HTTP %d %s", rec.Code, rec.Body)
	}
}

func TestFromStore(t *testing.T) {
	t.Parallel()
	if err := FromStore(nil, "order", "o-1"); err != nil {
		t.Errorf("nil: %v", err)
	}
	if e := AsError(FromStore(fmt.Errorf("get order: %w", sql.ErrNoRows), "order", "o-1")); e.Kind != KindNotFound || e.Metadata["id"] != "o-1" {
		t.Errorf("no rows: %+v", e)
	}
	if e := AsError(FromStore(errors.New("disk I/O error"), "order", "o-1")); e.Kind != KindInternal || e.Message != "internal error" {
		t.Errorf("failure: %+v", e)
	}
}
