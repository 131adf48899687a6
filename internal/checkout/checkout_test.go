package checkout

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/type/money"
	"google.golang.org/grpc/codes"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/consumer/consumertest"
	"github.com/creditledger/creditledger/internal/ledgertest"
	"github.com/creditledger/creditledger/internal/token"
	"github.com/creditledger/creditledger/ledgerclient"
)

// testClient has a connection pool of its own (.golangci.yml's forbidigo
// rule says why tests need one).
var testClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}

const ws = "agency-1"

// env is one checkout under test: its own SQLite file, the real ledger on a
// loopback gRPC port, the real HTTP handler on a loopback HTTP port.
type env struct {
	t      testing.TB
	ledger *ledgertest.Server
	client *ledgerclient.Client
	dbPath string
	store  *Store
	app    *App
	srv    *httptest.Server
	sd     *stripeDev // the Stripe stand-in card purchases are paid on
}

type envOpt func(*Config)

func newEnv(t testing.TB, opts ...envOpt) *env {
	t.Helper()
	e := &env{t: t, ledger: ledgertest.Start(t), dbPath: filepath.Join(t.TempDir(), "checkout.db")}
	e.client = e.ledger.Dial(t)
	e.open(opts...)
	t.Cleanup(func() { e.close() })
	return e
}

// open (re)starts the checkout on the same database file.
func (e *env) open(opts ...envOpt) {
	e.t.Helper()
	st, err := OpenStore(context.Background(), e.dbPath)
	if err != nil {
		e.t.Fatal(err)
	}
	if e.sd == nil {
		e.sd = startStripeDev(e.t)
	}
	cfg := Config{
		Store: st, Ledger: e.client, Verifier: consumertest.TestKeys(e.t).Verifier, StripeWebhookSecret: stripeSecret,
		Providers: map[PaymentMethod]PaymentProvider{MethodStripe: e.sd.provider(e.t)},
	}
	for _, o := range opts {
		o(&cfg)
	}
	app, err := NewApp(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.store, e.app, e.srv = st, app, httptest.NewServer(app.Handler())
	if err := e.sd.SetWebhookURL(e.srv.URL + "/webhooks/payments"); err != nil {
		e.t.Fatal(err)
	}
}

// close stops the checkout as a crash would leave it: no clean-up of state.
func (e *env) close() {
	if e.srv != nil {
		e.srv.Close()
		_ = e.store.Close()
		e.srv = nil
	}
}

func (e *env) restart(opts ...envOpt) {
	e.close()
	e.open(opts...)
}

// do sends a JSON request and decodes the JSON answer into out (when non-nil).
func (e *env) do(method, path string, body any, out any, headers ...string) int {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	// The agency's admin unless the caller says otherwise.
	req.Header.Set("Authorization", "Bearer "+mintToken(e.t, token.RoleAdmin, ws, ""))
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := testClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return res.StatusCode
}

func (e *env) putService(id string, price Money, eligible bool) {
	e.t.Helper()
	if code := e.do("PUT", "/v1/workspaces/"+ws+"/services/"+id, map[string]any{
		"name": "Service " + id, "price": price, "credit_eligible": eligible,
	}, nil); code != http.StatusOK {
		e.t.Fatalf("put service %s: HTTP %d", id, code)
	}
}

// agency sets the workspace up the way an agency would: credits on, USD at 10/unit.
func (e *env) agency() {
	e.ledger.SetEnabled(e.t, ws, true)
	e.ledger.SetRate(e.t, ws, "USD", "10")
}

func usd(units int64, nanos int32) Money {
	return Money{CurrencyCode: "USD", Units: units, Nanos: nanos}
}

type apiError struct {
	Error struct {
		Code     string            `json:"code"`
		Message  string            `json:"message"`
		Metadata map[string]string `json:"metadata"`
	} `json:"error"`
	Order    *Order    `json:"order"`
	Purchase *Purchase `json:"purchase"`
	Payment  *Payment  `json:"payment"`
}

func outs(txs []*pb.Transaction) []*pb.Transaction {
	var out []*pb.Transaction
	for _, t := range txs {
		if t.GetType() == pb.TransactionType_TRANSACTION_TYPE_OUT {
			out = append(out, t)
		}
	}
	return out
}

func TestStoreIsDurable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for name, want := range map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1"} {
		got, err := e.store.pragma(t.Context(), name)
		if err != nil || got != want {
			t.Errorf("PRAGMA %s = %q (%v), want %q", name, got, err, want)
		}
	}
	e.putService("logo", usd(5, 0), true)
	e.restart()
	var s Service
	if code := e.do("GET", "/v1/workspaces/"+ws+"/services/logo", nil, &s); code != http.StatusOK || s.Price != usd(5, 0) || !s.CreditEligible {
		t.Errorf("after restart: HTTP %d %+v", code, s)
	}
}

func TestCheckoutOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		setup     func(e *env)
		service   string
		want      CreditOption
		wantCalls int
	}{
		{
			name:      "offered",
			setup:     func(e *env) { e.agency(); e.ledger.Fund(e.t, ws, "client-1", 100) },
			service:   "logo",
			want:      CreditOption{Offered: true, CreditsRequired: 36, Balance: 100, CreditPaymentsEnabled: true},
			wantCalls: 1,
		},
		{
			name:      "balance exactly covers the rounded-up price",
			setup:     func(e *env) { e.agency(); e.ledger.Fund(e.t, ws, "client-1", 36) },
			service:   "logo",
			want:      CreditOption{Offered: true, CreditsRequired: 36, Balance: 36, CreditPaymentsEnabled: true},
			wantCalls: 1,
		},
		{
			name:      "price above the balance",
			setup:     func(e *env) { e.agency(); e.ledger.Fund(e.t, ws, "client-1", 35) },
			service:   "logo",
			want:      CreditOption{Reason: "INSUFFICIENT_CREDITS", CreditsRequired: 36, Balance: 35, CreditPaymentsEnabled: true},
			wantCalls: 1,
		},
		{
			name:      "ineligible service: no ledger call",
			setup:     func(e *env) { e.agency(); e.ledger.Fund(e.t, ws, "client-1", 100) },
			service:   "domain",
			want:      CreditOption{Reason: "SERVICE_NOT_ELIGIBLE"},
			wantCalls: 0,
		},
		{
			name:      "credit payments disabled, balance preserved",
			setup:     func(e *env) { e.ledger.SetRate(e.t, ws, "USD", "10"); e.ledger.Fund(e.t, ws, "client-1", 100) },
			service:   "logo",
			want:      CreditOption{Reason: "CREDIT_PAYMENTS_DISABLED", CreditsRequired: 36, Balance: 100},
			wantCalls: 1,
		},
		{
			name:      "no conversion rate",
			setup:     func(e *env) { e.ledger.SetEnabled(e.t, ws, true); e.ledger.Fund(e.t, ws, "client-1", 100) },
			service:   "logo",
			want:      CreditOption{Reason: "NO_CONVERSION_RATE", Balance: 100, CreditPaymentsEnabled: true},
			wantCalls: 1,
		},
		{
			name: "ledger unavailable hides the option",
			setup: func(e *env) {
				e.agency()
				for range 3 {
					e.ledger.InjectFault("CheckCreditPayment", ledgertest.Fault{Code: codes.Unavailable})
				}
			},
			service:   "logo",
			want:      CreditOption{Reason: "LEDGER_UNAVAILABLE"},
			wantCalls: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.putService("logo", usd(3, 510_000_000), true) // 35.1 credits → 36
			e.putService("domain", usd(2, 0), false)
			tt.setup(e)
			var got Options
			if code := e.do("GET", "/v1/workspaces/"+ws+"/accounts/client-1/services/"+tt.service+"/checkout-options", nil, &got); code != http.StatusOK {
				t.Fatalf("HTTP %d", code)
			}
			if diff := cmp.Diff(tt.want, got.BuyWithCredit); diff != "" {
				t.Errorf("buy_with_credit (-want +got):\n%s", diff)
			}
			if got.Service.ID != tt.service {
				t.Errorf("service = %+v", got.Service)
			}
			if n := len(e.ledger.Calls("CheckCreditPayment")); n != tt.wantCalls {
				t.Errorf("%d CheckCreditPayment calls, want %d", n, tt.wantCalls)
			}
		})
	}
}

func TestBuyWithCreditsHoldsThenConfirmCaptures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	e.ledger.Fund(e.t, ws, "client-1", 100)
	e.putService("logo", usd(3, 510_000_000), true)

	var o Order
	if code := e.do("POST", "/v1/workspaces/"+ws+"/accounts/client-1/orders", map[string]string{"service_id": "logo"}, &o); code != http.StatusCreated {
		t.Fatalf("HTTP %d: %+v", code, o)
	}
	if o.Status != OrderHeld || o.Credits != 36 || o.IdempotencyKey != "checkout-order:"+o.ID || o.HoldID == "" || o.HoldExpireTime == nil || o.TransactionID != "" {
		t.Errorf("order = %+v", o)
	}
	h := e.ledger.Hold(e.t, ws, o.HoldID)
	if h.GetAmount() != 36 || h.GetKind() != pb.TransactionKind_TRANSACTION_KIND_SERVICE_PURCHASE || h.GetReference() != "order:"+o.ID ||
		h.GetIdempotencyKey() != o.IdempotencyKey || h.GetStatus() != pb.HoldStatus_HOLD_STATUS_ACTIVE || !h.GetExpireTime().AsTime().Truncate(time.Microsecond).Equal(*o.HoldExpireTime) {
		t.Errorf("hold = %v", h)
	}
	if b, _ := e.client.Balance(t.Context(), ws, "client-1"); b.GetBalance() != 100 || b.GetAvailable() != 64 || len(outs(e.ledger.Transactions(e.t, ws, "client-1"))) != 0 {
		t.Errorf("after placing: %v, want the 36 credits held, nothing spent", b)
	}
	var got Order
	if code := e.do("GET", "/v1/workspaces/"+ws+"/orders/"+o.ID, nil, &got); code != http.StatusOK || got.Status != OrderHeld {
		t.Errorf("GET order: HTTP %d %+v", code, got)
	}

	var conf Order
	if code := e.do("POST", "/v1/workspaces/"+ws+"/orders/"+o.ID+":confirm", nil, &conf); code != http.StatusOK {
		t.Fatalf("confirm: HTTP %d %+v", code, conf)
	}
	debits := outs(e.ledger.Transactions(e.t, ws, "client-1"))
	if len(debits) != 1 {
		t.Fatalf("%d debits, want 1", len(debits))
	}
	d := debits[0]
	if conf.Status != OrderConfirmed || conf.TransactionID != d.GetId() || d.GetAmount() != 36 || d.GetHoldId() != o.HoldID ||
		d.GetKind() != pb.TransactionKind_TRANSACTION_KIND_SERVICE_PURCHASE || d.GetReference() != "order:"+o.ID {
		t.Errorf("confirmed %+v, debit %v", conf, d)
	}
	if calls := e.ledger.Calls("CaptureHold"); len(calls) != 1 || calls[0].IdempotencyKey != o.IdempotencyKey+":capture" {
		t.Errorf("CaptureHold calls %+v", calls)
	}
	// Confirming again answers the same order; cancelling it is refused.
	var again Order
	if code := e.do("POST", "/v1/workspaces/"+ws+"/orders/"+o.ID+":confirm", nil, &again); code != 200 || again.TransactionID != conf.TransactionID {
		t.Errorf("confirm again: HTTP %d %+v", code, again)
	}
	var body apiError
	if code := e.do("POST", "/v1/workspaces/"+ws+"/orders/"+o.ID+":cancel", nil, &body); code != 409 || body.Error.Code != CodeOrderNotHeld || body.Order.Status != OrderConfirmed {
		t.Errorf("cancel a confirmed order: HTTP %d %+v", code, body)
	}
	if n := len(e.ledger.Calls("CaptureHold")) + len(e.ledger.Calls("VoidHold")); n != 1 {
		t.Errorf("%d capture/void calls, want 1", n)
	}
	if bal, _ := e.ledger.Balance(e.t, ws, "client-1"); bal != 64 {
		t.Errorf("balance %d, want 64", bal)
	}
	var list struct{ Orders []Order }
	e.do("GET", "/v1/workspaces/"+ws+"/accounts/client-1/orders", nil, &list)
	if len(list.Orders) != 1 || list.Orders[0].ID != o.ID {
		t.Errorf("orders = %+v", list.Orders)
	}
}

// The one-step "Buy with Credit": "confirm": true places and captures.
func TestBuyWithConfirmCapturesAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	e.ledger.Fund(e.t, ws, "client-1", 100)
	e.putService("logo", usd(3, 510_000_000), true)
	var o Order
	if code := e.do("POST", "/v1/workspaces/"+ws+"/accounts/client-1/orders", map[string]any{"service_id": "logo", "confirm": true}, &o); code != 201 {
		t.Fatalf("HTTP %d: %+v", code, o)
	}
	debits := outs(e.ledger.Transactions(e.t, ws, "client-1"))
	if o.Status != OrderConfirmed || len(debits) != 1 || debits[0].GetId() != o.TransactionID || debits[0].GetAmount() != 36 ||
		debits[0].GetReference() != "order:"+o.ID || o.HoldID == "" || debits[0].GetHoldId() != o.HoldID {
		t.Errorf("order %+v, debits %v", o, debits)
	}
	if b, _ := e.client.Balance(t.Context(), ws, "client-1"); b.GetBalance() != 64 || b.GetHeld() != 0 {
		t.Errorf("balance %v, want 64 and nothing held", b)
	}
}

func TestBuyIsRefusedWithoutAnOrderWhenNotOffered(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		setup   func(e *env)
		service string
		status  int
		code    string
	}{
		{"insufficient credits", func(e *env) { e.agency(); e.ledger.Fund(e.t, ws, "client-1", 10) }, "logo", 422, "INSUFFICIENT_CREDITS"},
		{"disabled", func(e *env) { e.ledger.SetRate(e.t, ws, "USD", "10"); e.ledger.Fund(e.t, ws, "client-1", 100) }, "logo", 422, "CREDIT_PAYMENTS_DISABLED"},
		{"ineligible", func(e *env) { e.agency(); e.ledger.Fund(e.t, ws, "client-1", 100) }, "domain", 422, "SERVICE_NOT_ELIGIBLE"},
		{"unknown service", func(e *env) { e.agency() }, "nope", 404, "NOT_FOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.putService("logo", usd(5, 0), true)
			e.putService("domain", usd(1, 0), false)
			tt.setup(e)
			var body apiError
			if code := e.do("POST", "/v1/workspaces/"+ws+"/accounts/client-1/orders", map[string]string{"service_id": tt.service}, &body); code != tt.status {
				t.Fatalf("HTTP %d, want %d: %+v", code, tt.status, body)
			}
			if body.Error.Code != tt.code || body.Order != nil {
				t.Errorf("body = %+v, want code %s and no order", body, tt.code)
			}
			if n := len(e.ledger.Calls("CreateHold")) + len(e.ledger.Calls("Debit")); n != 0 {
				t.Errorf("%d holds or debits attempted, want 0", n)
			}
		})
	}
}

func TestHoldRefusalMarksTheOrderFailed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	e.ledger.Fund(e.t, ws, "client-1", 100)
	e.putService("logo", usd(5, 0), true)
	// The balance is spent elsewhere between the check and the hold.
	e.ledger.InjectFault("CreateHold", ledgertest.Fault{Code: codes.FailedPrecondition, Reason: "INSUFFICIENT_CREDITS"})

	var body apiError
	if code := e.do("POST", "/v1/workspaces/"+ws+"/accounts/client-1/orders", map[string]string{"service_id": "logo"}, &body); code != 422 {
		t.Fatalf("HTTP %d: %+v", code, body)
	}
	if body.Error.Code != "INSUFFICIENT_CREDITS" || body.Order == nil || body.Order.Status != OrderFailed ||
		body.Order.FailureReason != "INSUFFICIENT_CREDITS" || body.Order.TransactionID != "" || body.Order.HoldID != "" {
		t.Errorf("body = %+v / order %+v", body.Error, body.Order)
	}
	if n := len(e.ledger.Calls("CreateHold")); n != 1 {
		t.Errorf("%d CreateHold calls, want 1 (a refusal is not retried)", n)
	}
	// A failed order is final: reconciliation leaves it alone.
	rep, err := e.app.Reconcile(t.Context())
	if err != nil || rep.Orders != 0 {
		t.Errorf("Reconcile = %+v, %v", rep, err)
	}
}

func TestUnconfirmedLedgerWriteIsFinishedOnceByReconcile(t *testing.T) {
	t.Parallel()
	for _, method := range []string{"CreateHold", "CaptureHold"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.agency()
			e.ledger.Fund(e.t, ws, "client-1", 100)
			e.putService("logo", usd(5, 0), true)
			// Attempt 1 takes effect but its answer is lost; attempts 2 and 3
			// find the ledger unreachable: the client gives up, the outcome is unknown.
			e.ledger.InjectFault(method,
				ledgertest.Fault{After: true, Code: codes.Unavailable},
				ledgertest.Fault{Code: codes.Unavailable},
				ledgertest.Fault{Code: codes.Unavailable})

			var body apiError
			if code := e.do("POST", "/v1/workspaces/"+ws+"/accounts/client-1/orders", map[string]any{"service_id": "logo", "confirm": true}, &body); code != 503 {
				t.Fatalf("HTTP %d: %+v", code, body)
			}
			want := map[string]OrderStatus{"CreateHold": OrderPending, "CaptureHold": OrderHeld}[method]
			if body.Error.Code != CodeLedgerUnavailable || body.Order == nil || body.Order.Status != want || body.Order.Action != ActionConfirm {
				t.Fatalf("body = %+v / order %+v, want %s with the confirm in flight", body.Error, body.Order, want)
			}
			id := body.Order.ID

			e.restart() // the process dies; the order is on disk
			rep, err := e.app.Reconcile(t.Context())
			if err != nil || rep.Orders != 1 || rep.OrdersSettled != 1 {
				t.Fatalf("Reconcile = %+v, %v", rep, err)
			}
			var o Order
			e.do("GET", "/v1/workspaces/"+ws+"/orders/"+id, nil, &o)
			debits := outs(e.ledger.Transactions(e.t, ws, "client-1"))
			if len(debits) != 1 || o.Status != OrderConfirmed || o.TransactionID != debits[0].GetId() {
				t.Fatalf("order %+v, debits %v: want CONFIRMED with the one debit", o, debits)
			}
			if n := len(e.ledger.Holds(e.t, ws, "client-1")); n != 1 {
				t.Errorf("%d holds, want 1", n)
			}
			for _, c := range e.ledger.Calls(method) {
				if want := map[string]string{"CreateHold": OrderKey(id), "CaptureHold": OrderKey(id) + ":capture"}[method]; c.IdempotencyKey != want {
					t.Errorf("%s with key %q, want only %q", method, c.IdempotencyKey, want)
				}
			}
			if bal, _ := e.ledger.Balance(e.t, ws, "client-1"); bal != 50 {
				t.Errorf("balance = %d, want 50", bal)
			}
		})
	}
}

func TestPendingOrderFromACrashBeforeTheHoldIsFinishedOnRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	e.ledger.Fund(e.t, ws, "client-1", 100)
	// The process died right after recording the order.
	o, _, err := e.store.InsertOrder(t.Context(), Order{
		ID: "o-1", Workspace: ws, Account: "client-1", ServiceID: "logo", ServiceName: "Logo", Price: usd(5, 0), Credits: 50,
		IdempotencyKey: OrderKey("o-1"), CreateTime: time.Now(), Action: ActionConfirm, HoldTTL: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.restart()
	if _, err := e.app.Reconcile(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, err := e.app.GetOrder(t.Context(), ws, o.ID)
	if err != nil || got.Status != OrderConfirmed {
		t.Fatalf("order = %+v, %v", got, err)
	}
	if bal, _ := e.ledger.Balance(e.t, ws, "client-1"); bal != 50 {
		t.Errorf("balance = %d, want 50", bal)
	}
}

func TestClientIdempotencyKeyReturnsTheSameOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	e.ledger.Fund(e.t, ws, "client-1", 100)
	e.putService("logo", usd(1, 0), true)
	e.putService("seo", usd(1, 0), true)
	path := "/v1/workspaces/" + ws + "/accounts/client-1/orders"

	var first, second Order
	if code := e.do("POST", path, map[string]any{"service_id": "logo", "confirm": true}, &first, "Idempotency-Key", "cart-42"); code != 201 {
		t.Fatalf("first: HTTP %d", code)
	}
	if code := e.do("POST", path, map[string]any{"service_id": "logo", "confirm": true}, &second, "Idempotency-Key", "cart-42"); code != 200 {
		t.Fatalf("retry: HTTP %d", code)
	}
	if first.ID != second.ID || second.Status != OrderConfirmed {
		t.Errorf("retry returned %+v, want order %s", second, first.ID)
	}
	var body apiError
	if code := e.do("POST", path, map[string]string{"service_id": "seo"}, &body, "Idempotency-Key", "cart-42"); code != 409 || body.Error.Code != CodeKeyReused {
		t.Errorf("key reused for another service: HTTP %d %+v", code, body.Error)
	}
	if n := len(outs(e.ledger.Transactions(e.t, ws, "client-1"))); n != 1 {
		t.Errorf("%d debits, want 1", n)
	}
}

func TestConcurrentBuysWithOneClientKeyDebitOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	e.ledger.Fund(e.t, ws, "client-1", 100)
	e.putService("logo", usd(1, 0), true)
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Go(func() {
			var o Order
			e.do("POST", "/v1/workspaces/"+ws+"/accounts/client-1/orders", map[string]any{"service_id": "logo", "confirm": true}, &o, "Idempotency-Key", "k")
			ids[i] = o.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || id == "" {
			t.Fatalf("order ids %v, want one", ids)
		}
	}
	if n := len(outs(e.ledger.Transactions(e.t, ws, "client-1"))); n != 1 {
		t.Errorf("%d debits, want 1", n)
	}
	if n := len(e.ledger.Holds(e.t, ws, "client-1")); n != 1 {
		t.Errorf("%d holds, want 1", n)
	}
}

func createPackage(t testing.TB, e *env, id string, credits int64) {
	t.Helper()
	if _, err := e.client.CreatePackage(t.Context(), &pb.CreatePackageRequest{
		Workspace: ws, PackageId: id,
		CreditPackage: &pb.CreditPackage{DisplayName: id, Credits: credits, Price: &money.Money{CurrencyCode: "USD", Units: credits / 10}},
	}); err != nil {
		t.Fatal(err)
	}
}

func TestCardPurchaseIsCreditedOnceHoweverOftenTheWebhookIsDelivered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	createPackage(t, e, "starter", 100) // USD 10

	var p Purchase
	if code := e.do("POST", "/v1/workspaces/"+ws+"/accounts/client-1/credit-purchases",
		PurchaseInput{PackageID: "starter", Method: MethodStripe}, &p); code != 201 || p.Status != PurchaseAwaitingPayment {
		t.Fatalf("start purchase: HTTP %d %+v", code, p)
	}
	hook := sessionCompleted("evt_1", "pi_3Nq1", ws, p.ID, 1000, "usd")
	var wg sync.WaitGroup
	codes := make([]int, 3)
	txs := make([]string, 3)
	for i := range 3 {
		wg.Go(func() {
			var res stripeAnswer
			codes[i] = e.stripe(hook, time.Now(), stripeSecret, &res)
			if res.Payment != nil {
				txs[i] = res.Payment.TransactionID
			}
		})
	}
	wg.Wait()
	for i := range 3 {
		if codes[i] != 200 || txs[i] == "" || txs[i] != txs[0] {
			t.Fatalf("deliveries: codes %v txs %v, want 200 and one transaction", codes, txs)
		}
	}
	if bal, ver := e.ledger.Balance(e.t, ws, "client-1"); bal != 100 || ver != 1 {
		t.Errorf("balance %d v%d, want 100 v1", bal, ver)
	}
	for _, c := range e.ledger.Calls("Credit") {
		req := c.Request.(*pb.CreditRequest)
		if c.IdempotencyKey != "stripe:pi_3Nq1" || req.GetPackageId() != "starter" || req.GetReference() != "stripe:pi_3Nq1" {
			t.Errorf("Credit call %v", req)
		}
	}
	var got Purchase
	e.do("GET", "/v1/workspaces/"+ws+"/credit-purchases/"+p.ID, nil, &got)
	if got.Status != PurchaseCredited || got.TransactionID != txs[0] || got.Credits != 100 || got.ProviderPaymentID != "pi_3Nq1" {
		t.Errorf("purchase = %+v", got)
	}
}

func TestWebhookCreditsEvenWhenCreditPaymentsAreDisabled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, unsignedWebhooks)
	createPackage(t, e, "starter", 100) // payments never enabled
	var pay Payment
	if code := e.do("POST", "/webhooks/payments", PaymentConfirmation{
		Provider: "PayPal", PaymentID: "PAY-1", Workspace: ws,
		Account: "client-1", PackageID: "starter",
	}, &pay); code != 200 || pay.Status != PaymentCredited || pay.Provider != "paypal" {
		t.Fatalf("HTTP %d %+v", code, pay)
	}
	if c := e.ledger.Calls("Credit"); len(c) != 1 || c[0].IdempotencyKey != "paypal:PAY-1" {
		t.Errorf("Credit calls %+v", c)
	}
}

func TestWebhookRedeliveredWithOtherFieldsIsAConflict(t *testing.T) {
	t.Parallel()
	e := newEnv(t, unsignedWebhooks)
	createPackage(t, e, "starter", 100)
	hook := PaymentConfirmation{Provider: "stripe", PaymentID: "pi_1", Workspace: ws, Account: "client-1", PackageID: "starter"}
	if code := e.do("POST", "/webhooks/payments", hook, nil); code != 200 {
		t.Fatalf("HTTP %d", code)
	}
	hook.Account = "client-2"
	var body apiError
	if code := e.do("POST", "/webhooks/payments", hook, &body); code != 409 || body.Error.Code != CodePaymentMismatch {
		t.Errorf("HTTP %d %+v", code, body.Error)
	}
	if bal, _ := e.ledger.Balance(e.t, ws, "client-2"); bal != 0 {
		t.Errorf("client-2 credited %d", bal)
	}
}

func TestWebhookWhileTheLedgerIsDownAsksForRedelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	createPackage(t, e, "starter", 100)
	p := e.stripePurchase("client-1", "starter")
	for range 3 {
		e.ledger.InjectFault("Credit", ledgertest.Fault{Code: codes.Unavailable})
	}
	hook := sessionCompleted("evt_9", "pi_9", ws, p.ID, 1000, "usd")
	var body apiError
	if code := e.stripe(hook, time.Now(), stripeSecret, &body); code != 503 || body.Payment == nil || body.Payment.Status != PaymentReceived {
		t.Fatalf("HTTP %d %+v", code, body)
	}
	// The payment is on record: the reconciliation pass credits it even if
	// the provider never redelivers.
	rep, err := e.app.Reconcile(t.Context())
	if err != nil || rep.PaymentsSettled != 1 {
		t.Fatalf("Reconcile = %+v, %v", rep, err)
	}
	var res stripeAnswer
	if code := e.stripe(hook, time.Now(), stripeSecret, &res); code != 200 || res.Payment == nil || res.Payment.Deliveries != 2 || res.Payment.Status != PaymentCredited {
		t.Errorf("redelivery: HTTP %d %+v", code, res)
	}
	if bal, ver := e.ledger.Balance(e.t, ws, "client-1"); bal != 100 || ver != 1 {
		t.Errorf("balance %d v%d, want 100 v1", bal, ver)
	}
}

func TestBankTransferPurchaseWaitsForTheAgency(t *testing.T) {
	t.Parallel()
	for _, decision := range []pb.Decision{pb.Decision_DECISION_ACCEPT, pb.Decision_DECISION_REJECT} {
		t.Run(decision.String(), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.agency()
			createPackage(t, e, "pro", 500)
			var p Purchase
			if code := e.do("POST", "/v1/workspaces/"+ws+"/accounts/client-1/credit-purchases",
				PurchaseInput{PackageID: "pro", Method: MethodBankTransfer, PaymentReference: "SEPA-77"}, &p); code != 201 {
				t.Fatalf("HTTP %d %+v", code, p)
			}
			if p.Status != PurchasePendingApproval || p.RequestID == "" || p.Credits != 500 {
				t.Fatalf("purchase = %+v", p)
			}
			sub := e.ledger.Calls("SubmitRequest")
			if len(sub) != 1 || sub[0].IdempotencyKey != "checkout-purchase:"+p.ID ||
				sub[0].Request.(*pb.SubmitRequestRequest).GetPaymentMethod() != pb.PaymentMethod_PAYMENT_METHOD_BANK_TRANSFER {
				t.Fatalf("SubmitRequest calls %+v", sub)
			}
			if bal, _ := e.ledger.Balance(e.t, ws, "client-1"); bal != 0 {
				t.Fatalf("credited %d before the decision", bal)
			}
			if _, err := e.client.DecideRequest(t.Context(), &pb.DecideRequestRequest{
				Workspace: ws, RequestId: p.RequestID,
				Decision: decision, Reason: "checked the bank statement", DecidedBy: "admin", IdempotencyKey: "decide-1",
			}); err != nil {
				t.Fatal(err)
			}
			var got Purchase
			e.do("GET", "/v1/workspaces/"+ws+"/credit-purchases/"+p.ID, nil, &got)
			bal, _ := e.ledger.Balance(e.t, ws, "client-1")
			if decision == pb.Decision_DECISION_ACCEPT {
				if got.Status != PurchaseCredited || got.TransactionID == "" || bal != 500 {
					t.Errorf("purchase %+v, balance %d: want CREDITED and 500", got, bal)
				}
			} else if got.Status != PurchaseRejected || got.FailureReason != "checked the bank statement" || bal != 0 {
				t.Errorf("purchase %+v, balance %d: want REJECTED and 0", got, bal)
			}
		})
	}
}

func TestManualPurchaseRefusedWhileDisabled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	createPackage(t, e, "pro", 500)
	var body apiError
	if code := e.do("POST", "/v1/workspaces/"+ws+"/accounts/client-1/credit-purchases",
		PurchaseInput{PackageID: "pro", Method: MethodCrypto}, &body); code != 422 {
		t.Fatalf("HTTP %d %+v", code, body)
	}
	if body.Error.Code != "CREDIT_PAYMENTS_DISABLED" || body.Purchase == nil || body.Purchase.Status != PurchaseFailed {
		t.Errorf("body %+v purchase %+v", body.Error, body.Purchase)
	}
}

func TestSubmitLostInTransitIsReplayedOnRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	createPackage(t, e, "pro", 500)
	e.ledger.InjectFault("SubmitRequest",
		ledgertest.Fault{After: true, Code: codes.Unavailable},
		ledgertest.Fault{Code: codes.Unavailable},
		ledgertest.Fault{Code: codes.Unavailable})
	var body apiError
	if code := e.do("POST", "/v1/workspaces/"+ws+"/accounts/client-1/credit-purchases",
		PurchaseInput{PackageID: "pro", Method: MethodBankTransfer}, &body); code != 503 || body.Purchase.Status != PurchaseSubmitting {
		t.Fatalf("HTTP %d %+v", code, body)
	}
	e.restart()
	if _, err := e.app.Reconcile(t.Context()); err != nil {
		t.Fatal(err)
	}
	p, err := e.app.GetPurchase(t.Context(), ws, body.Purchase.ID)
	if err != nil || p.Status != PurchasePendingApproval {
		t.Fatalf("purchase %+v, %v", p, err)
	}
	res, err := e.client.ListRequests(t.Context(), &pb.ListRequestsRequest{Workspace: ws})
	if err != nil || len(res.GetRequests()) != 1 || res.GetRequests()[0].GetId() != p.RequestID {
		t.Errorf("requests %v (%v), want exactly the purchase's", res.GetRequests(), err)
	}
}

func TestInvalidInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, unsignedWebhooks)
	tests := []struct {
		name, method, path string
		body               any
	}{
		{"zero price", "PUT", "/v1/workspaces/" + ws + "/services/x", map[string]any{"name": "x", "price": usd(0, 0)}},
		{"lower-case currency", "PUT", "/v1/workspaces/" + ws + "/services/x", map[string]any{"name": "x", "price": Money{CurrencyCode: "usd", Units: 1}}},
		{"no name", "PUT", "/v1/workspaces/" + ws + "/services/x", map[string]any{"price": usd(1, 0)}},
		{"bad service id", "PUT", "/v1/workspaces/" + ws + "/services/-x", map[string]any{"name": "x", "price": usd(1, 0)}},
		{"unknown field", "POST", "/v1/workspaces/" + ws + "/accounts/a/orders", map[string]any{"service_id": "x", "credits": 5}},
		{"bad method", "POST", "/v1/workspaces/" + ws + "/accounts/a/credit-purchases", map[string]any{"package_id": "p", "payment_method": "CASH"}},
		{"bad provider", "POST", "/webhooks/payments", PaymentConfirmation{Provider: "venmo", PaymentID: "1", Workspace: ws, Account: "a", PackageID: "p"}},
		{"payment id with spaces", "POST", "/webhooks/payments", PaymentConfirmation{Provider: "stripe", PaymentID: "pi 1", Workspace: ws, Account: "a", PackageID: "p"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var body apiError
			if code := e.do(tt.method, tt.path, tt.body, &body); code != 400 || body.Error.Code != CodeInvalidArgument {
				t.Errorf("HTTP %d %+v, want 400 INVALID_ARGUMENT", code, body.Error)
			}
		})
	}
	if n := len(e.ledger.Calls("")); n != 0 {
		t.Errorf("%d ledger calls for invalid input", n)
	}
}
