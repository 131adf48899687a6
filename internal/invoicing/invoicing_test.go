package invoicing

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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

type env struct {
	t      testing.TB
	ledger *ledgertest.Server
	client *ledgerclient.Client
	dbPath string
	store  *Store
	app    *App
	srv    *httptest.Server
}

func newEnv(t testing.TB, clientOpts ...ledgerclient.Option) *env {
	t.Helper()
	e := &env{t: t, ledger: ledgertest.Start(t), dbPath: filepath.Join(t.TempDir(), "invoicing.db")}
	e.client = e.ledger.Dial(t, clientOpts...)
	e.open(nil)
	t.Cleanup(e.close)
	return e
}

func (e *env) open(afterDebit func(Invoice)) {
	e.t.Helper()
	st, err := OpenStore(context.Background(), e.dbPath)
	if err != nil {
		e.t.Fatal(err)
	}
	app, err := NewApp(Config{Store: st, Ledger: e.client, AfterDebit: afterDebit, Verifier: consumertest.TestKeys(e.t).Verifier, Events: fastEvents})
	if err != nil {
		e.t.Fatal(err)
	}
	e.store, e.app, e.srv = st, app, httptest.NewServer(app.Handler())
}

func (e *env) close() {
	if e.srv != nil {
		e.srv.Close()
		_ = e.store.Close()
		e.srv = nil
	}
}

func (e *env) restart(afterDebit func(Invoice)) {
	e.close()
	e.open(afterDebit)
}

func (e *env) do(method, path string, body, out any) int {
	e.t.Helper()
	// The agency's admin.
	return e.doAs("Bearer "+mintToken(e.t, token.RoleAdmin, ws, ""), method, path, body, out)
}

// doAs sends the request with the Authorization header auth ("" for none).
func (e *env) doAs(auth, method, path string, body, out any) int {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := testClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return res.StatusCode
}

func (e *env) agency() {
	e.ledger.SetEnabled(e.t, ws, true)
	e.ledger.SetRate(e.t, ws, "USD", "10")
}

func (e *env) invoice(number string, amount Money) Invoice {
	e.t.Helper()
	var inv Invoice
	if code := e.do("POST", "/v1/workspaces/"+ws+"/invoices", NewInvoice{Account: "client-1", Number: number, Amount: amount}, &inv); code != 201 {
		e.t.Fatalf("create invoice: HTTP %d", code)
	}
	return inv
}

func (e *env) pay(id string) (int, apiError) {
	e.t.Helper()
	var body apiError
	code := e.do("POST", "/v1/workspaces/"+ws+"/invoices/"+id+"/pay-with-credit", nil, &body)
	return code, body
}

// apiError decodes both a success (the invoice's fields) and an error body.
type apiError struct {
	Invoice
	Error struct {
		Code     string            `json:"code"`
		Metadata map[string]string `json:"metadata"`
	} `json:"error"`
	Inv *Invoice `json:"invoice"`
}

func usd(units int64, nanos int32) Money {
	return Money{CurrencyCode: "USD", Units: units, Nanos: nanos}
}

func debits(e *env) []*pb.Transaction {
	var out []*pb.Transaction
	for _, t := range e.ledger.Transactions(e.t, ws, "client-1") {
		if t.GetType() == pb.TransactionType_TRANSACTION_TYPE_OUT {
			out = append(out, t)
		}
	}
	return out
}

func TestStoreIsDurable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for name, want := range map[string]string{"journal_mode": "wal", "synchronous": "2"} {
		if got, err := e.store.pragma(t.Context(), name); err != nil || got != want {
			t.Errorf("PRAGMA %s = %q (%v), want %q", name, got, err, want)
		}
	}
	inv := e.invoice("", usd(3, 510_000_000))
	e.restart(nil)
	got, err := e.app.Get(t.Context(), ws, inv.ID)
	if err != nil || got.Number != "INV-000001" || got.Amount != usd(3, 510_000_000) || got.Status != StatusOpen {
		t.Errorf("after restart: %+v, %v", got, err)
	}
}

func TestCreateValidates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.invoice("INV-1", usd(1, 0))
	tests := []struct {
		name string
		in   NewInvoice
		code int
	}{
		{"duplicate number", NewInvoice{Account: "client-1", Number: "INV-1", Amount: usd(1, 0)}, 409},
		{"zero amount", NewInvoice{Account: "client-1", Amount: usd(0, 0)}, 400},
		{"negative nanos", NewInvoice{Account: "client-1", Amount: usd(1, -1)}, 400},
		{"no currency", NewInvoice{Account: "client-1", Amount: Money{Units: 1}}, 400},
		{"bad account", NewInvoice{Account: "a b", Amount: usd(1, 0)}, 400},
		{"bad number", NewInvoice{Account: "client-1", Number: "INV 2", Amount: usd(1, 0)}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if code := e.do("POST", "/v1/workspaces/"+ws+"/invoices", tt.in, nil); code != tt.code {
				t.Errorf("HTTP %d, want %d", code, tt.code)
			}
		})
	}
	if code := e.do("POST", "/v1/workspaces/"+ws+"/invoices", map[string]any{"account": "c", "amount": usd(1, 0), "paid": true}, nil); code != 400 {
		t.Errorf("unknown field: HTTP %d, want 400", code)
	}
}

func TestPaymentOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(e *env)
		want  CreditOption
	}{
		{
			"offered", func(e *env) { e.agency(); e.ledger.Fund(e.t, ws, "client-1", 36) },
			CreditOption{Offered: true, CreditsRequired: 36, Balance: 36, CreditPaymentsEnabled: true},
		},
		{
			"amount above the balance", func(e *env) { e.agency(); e.ledger.Fund(e.t, ws, "client-1", 35) },
			CreditOption{Reason: "INSUFFICIENT_CREDITS", CreditsRequired: 36, Balance: 35, CreditPaymentsEnabled: true},
		},
		{
			"disabled", func(e *env) { e.ledger.SetRate(e.t, ws, "USD", "10"); e.ledger.Fund(e.t, ws, "client-1", 100) },
			CreditOption{Reason: "CREDIT_PAYMENTS_DISABLED", CreditsRequired: 36, Balance: 100},
		},
		{
			"no rate", func(e *env) { e.ledger.SetEnabled(e.t, ws, true); e.ledger.Fund(e.t, ws, "client-1", 100) },
			CreditOption{Reason: "NO_CONVERSION_RATE", Balance: 100, CreditPaymentsEnabled: true},
		},
		{"ledger unavailable", func(e *env) {
			for range 3 {
				e.ledger.InjectFault("CheckCreditPayment", ledgertest.Fault{Code: codes.Unavailable})
			}
		}, CreditOption{Reason: "LEDGER_UNAVAILABLE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			inv := e.invoice("INV-1", usd(3, 510_000_000))
			tt.setup(e)
			var got PaymentOptions
			if code := e.do("GET", "/v1/workspaces/"+ws+"/invoices/"+inv.ID+"/payment-options", nil, &got); code != 200 {
				t.Fatalf("HTTP %d", code)
			}
			if diff := cmp.Diff(tt.want, got.PayWithCredit); diff != "" {
				t.Errorf("pay_with_credit (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPayWithCreditHoldsThenCapturesThenMarksPaid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	e.ledger.Fund(e.t, ws, "client-1", 100)
	inv := e.invoice("INV-1042", usd(3, 510_000_000))

	code, got := e.pay(inv.ID)
	if code != 200 || got.Status != StatusPaid || got.TransactionID == "" || got.Credits != 36 || got.PaidTime == nil || got.HoldID == "" {
		t.Fatalf("pay: HTTP %d %+v", code, got)
	}
	holds := e.ledger.Holds(e.t, ws, "client-1")
	if len(holds) != 1 {
		t.Fatalf("%d holds, want 1", len(holds))
	}
	h := holds[0]
	if h.GetId() != got.HoldID || h.GetAmount() != 36 || h.GetKind() != pb.TransactionKind_TRANSACTION_KIND_INVOICE_PAYMENT ||
		h.GetIdempotencyKey() != "invoice:"+inv.ID || h.GetReference() != "invoice:INV-1042" ||
		h.GetStatus() != pb.HoldStatus_HOLD_STATUS_CAPTURED || h.GetTransactionId() != got.TransactionID {
		t.Errorf("hold %v", h)
	}
	d := debits(e)
	if len(d) != 1 {
		t.Fatalf("%d debits, want 1", len(d))
	}
	if d[0].GetKind() != pb.TransactionKind_TRANSACTION_KIND_INVOICE_PAYMENT || d[0].GetReference() != "invoice:INV-1042" ||
		d[0].GetHoldId() != got.HoldID || d[0].GetAmount() != 36 || d[0].GetId() != got.TransactionID {
		t.Errorf("debit %v", d[0])
	}
	if calls := e.ledger.Calls("CaptureHold"); len(calls) != 1 || calls[0].IdempotencyKey != "invoice:"+inv.ID+":capture" {
		t.Errorf("CaptureHold calls %+v", calls)
	}
	// Paying again is a no-op answering the same invoice.
	code, again := e.pay(inv.ID)
	if code != 200 || again.TransactionID != got.TransactionID || len(debits(e)) != 1 ||
		len(e.ledger.Calls("CreateHold")) != 1 || len(e.ledger.Calls("CaptureHold")) != 1 || len(e.ledger.Calls("Debit")) != 0 {
		t.Errorf("second pay: HTTP %d %+v, %d debits", code, again, len(debits(e)))
	}
	var opts PaymentOptions
	e.do("GET", "/v1/workspaces/"+ws+"/invoices/"+inv.ID+"/payment-options", nil, &opts)
	if opts.PayWithCredit.Offered || opts.PayWithCredit.Reason != CodeInvoiceNotOpen {
		t.Errorf("options of a paid invoice: %+v", opts.PayWithCredit)
	}
	var list struct{ Invoices []Invoice }
	e.do("GET", "/v1/workspaces/"+ws+"/invoices?account=client-1&status=paid", nil, &list)
	if len(list.Invoices) != 1 || list.Invoices[0].ID != inv.ID {
		t.Errorf("paid invoices: %+v", list.Invoices)
	}
	if bal, _ := e.ledger.Balance(e.t, ws, "client-1"); bal != 64 {
		t.Errorf("balance %d, want 64", bal)
	}
}

func TestPayRefusedLeavesTheInvoiceOpen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		setup    func(e *env)
		reason   string
		holds    int // CreateHold calls expected
		captures int // CaptureHold calls expected
		voided   bool
	}{
		{"insufficient at the check", func(e *env) { e.agency(); e.ledger.Fund(e.t, ws, "client-1", 10) }, "INSUFFICIENT_CREDITS", 0, 0, false},
		{"disabled at the check", func(e *env) { e.ledger.SetRate(e.t, ws, "USD", "10"); e.ledger.Fund(e.t, ws, "client-1", 100) }, "CREDIT_PAYMENTS_DISABLED", 0, 0, false},
		{"refused by the hold", func(e *env) {
			e.agency()
			e.ledger.Fund(e.t, ws, "client-1", 100)
			e.ledger.InjectFault("CreateHold", ledgertest.Fault{Code: codes.FailedPrecondition, Reason: "INSUFFICIENT_CREDITS"})
		}, "INSUFFICIENT_CREDITS", 1, 0, false},
		{"capture refused: the hold is voided", func(e *env) {
			e.agency()
			e.ledger.Fund(e.t, ws, "client-1", 100)
			e.ledger.InjectFault("CaptureHold", ledgertest.Fault{Code: codes.FailedPrecondition, Reason: "CREDIT_PAYMENTS_DISABLED"})
		}, "CREDIT_PAYMENTS_DISABLED", 1, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			inv := e.invoice("INV-1", usd(3, 510_000_000))
			tt.setup(e)
			code, body := e.pay(inv.ID)
			if code != 422 || body.Error.Code != tt.reason {
				t.Fatalf("HTTP %d %+v, want 422 %s", code, body.Error, tt.reason)
			}
			if body.Inv == nil || body.Inv.Status != StatusOpen || body.Inv.LastFailure != tt.reason {
				t.Errorf("invoice in the answer: %+v", body.Inv)
			}
			got, _ := e.app.Get(t.Context(), ws, inv.ID)
			if got.Status != StatusOpen || got.TransactionID != "" || got.LastFailure != tt.reason {
				t.Errorf("stored invoice %+v", got)
			}
			if n := len(e.ledger.Calls("CreateHold")); n != tt.holds {
				t.Errorf("%d CreateHold calls, want %d", n, tt.holds)
			}
			if n := len(e.ledger.Calls("CaptureHold")); n != tt.captures {
				t.Errorf("%d CaptureHold calls, want %d", n, tt.captures)
			}
			if n := len(debits(e)); n != 0 {
				t.Errorf("%d debits posted", n)
			}
			for _, h := range e.ledger.Holds(e.t, ws, "client-1") {
				if !tt.voided || h.GetStatus() != pb.HoldStatus_HOLD_STATUS_VOIDED {
					t.Errorf("hold %v left behind", h)
				}
			}
			if b, _ := e.client.Balance(t.Context(), ws, "client-1"); b.GetHeld() != 0 {
				t.Errorf("balance %v: nothing may stay held", b)
			}
		})
	}
}

func TestTimedOutLedgerCallsAreRetriedWithTheSameKeyAndTakeEffectOnce(t *testing.T) {
	t.Parallel()
	for _, method := range []string{"CreateHold", "CaptureHold"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			// Long enough for any real call, short beside the fault's delay.
			e := newEnv(t, ledgerclient.WithAttemptTimeout(2*time.Second))
			e.agency()
			e.ledger.Fund(e.t, ws, "client-1", 100)
			inv := e.invoice("INV-1", usd(1, 0))
			// The first call takes effect but its answer is late: the attempt times out.
			e.ledger.InjectFault(method, ledgertest.Fault{After: true, Delay: time.Minute})
			code, got := e.pay(inv.ID)
			if code != 200 || got.Status != StatusPaid {
				t.Fatalf("HTTP %d %+v", code, got)
			}
			calls := e.ledger.Calls(method)
			if len(calls) != 2 || calls[0].IdempotencyKey != calls[1].IdempotencyKey {
				t.Errorf("%s calls %+v, want two with one key", method, calls)
			}
			if d := debits(e); len(d) != 1 || d[0].GetId() != got.TransactionID {
				t.Errorf("debits %v, want exactly the invoice's", d)
			}
			if n := len(e.ledger.Holds(e.t, ws, "client-1")); n != 1 {
				t.Errorf("%d holds, want 1", n)
			}
		})
	}
}

func TestUnconfirmedPaymentStaysPayingAndIsReconciled(t *testing.T) {
	t.Parallel()
	for _, method := range []string{"CreateHold", "CaptureHold"} {
		for _, posted := range []bool{true, false} {
			name := method + "/" + map[bool]string{true: "posted, answer lost", false: "never arrived"}[posted]
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t)
				e.agency()
				e.ledger.Fund(e.t, ws, "client-1", 100)
				inv := e.invoice("INV-1", usd(1, 0))
				e.ledger.InjectFault(method,
					ledgertest.Fault{After: posted, Code: codes.Unavailable},
					ledgertest.Fault{Code: codes.Unavailable},
					ledgertest.Fault{Code: codes.Unavailable})
				code, body := e.pay(inv.ID)
				if code != 503 || body.Error.Code != CodeLedgerUnavailable || body.Inv.Status != StatusPaying {
					t.Fatalf("HTTP %d %+v %+v", code, body.Error, body.Inv)
				}
				e.restart(nil)
				rep, err := e.app.Reconcile(t.Context())
				if err != nil || rep != (ReconcileReport{Paying: 1, Paid: 1}) {
					t.Fatalf("Reconcile = %+v, %v", rep, err)
				}
				got, _ := e.app.Get(t.Context(), ws, inv.ID)
				d := debits(e)
				if got.Status != StatusPaid || len(d) != 1 || d[0].GetId() != got.TransactionID || d[0].GetHoldId() != got.HoldID {
					t.Errorf("invoice %+v, debits %v", got, d)
				}
				if hs := e.ledger.Holds(e.t, ws, "client-1"); len(hs) != 1 || hs[0].GetStatus() != pb.HoldStatus_HOLD_STATUS_CAPTURED {
					t.Errorf("holds %v, want one, captured", hs)
				}
				for _, c := range e.ledger.Calls(method) {
					if want := map[string]string{"CreateHold": Key(inv.ID), "CaptureHold": Key(inv.ID) + ":capture"}[method]; c.IdempotencyKey != want {
						t.Errorf("%s key %q, want %q", method, c.IdempotencyKey, want)
					}
				}
			})
		}
	}
}

func TestExpiredHoldReopensAndTheNextPaymentTakesANewKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	e.ledger.Fund(e.t, ws, "client-1", 100)
	inv := e.invoice("INV-1", usd(1, 0))
	// The hold is placed, the capture does not get through, and nothing
	// finishes the payment before the hold expires.
	for range 3 {
		e.ledger.InjectFault("CaptureHold", ledgertest.Fault{Code: codes.Unavailable})
	}
	if code, body := e.pay(inv.ID); code != 503 || body.Inv.Status != StatusPaying || body.Inv.HoldID == "" {
		t.Fatalf("HTTP %d %+v", code, body.Inv)
	}
	e.ledger.Advance(e.t, HoldTTL+time.Minute)
	e.restart(nil)
	rep, err := e.app.Reconcile(t.Context())
	if err != nil || rep != (ReconcileReport{Paying: 1, Reopened: 1}) {
		t.Fatalf("Reconcile = %+v, %v", rep, err)
	}
	got, _ := e.app.Get(t.Context(), ws, inv.ID)
	if got.Status != StatusOpen || got.LastFailure != CodeHoldExpired || len(debits(e)) != 0 {
		t.Fatalf("invoice %+v, %d debits: want OPEN with HOLD_EXPIRED and nothing spent", got, len(debits(e)))
	}
	if b, _ := e.client.Balance(t.Context(), ws, "client-1"); b.GetAvailable() != 100 {
		t.Errorf("balance %v: the expired hold must hold nothing", b)
	}

	code, paid := e.pay(inv.ID)
	if code != 200 || paid.Status != StatusPaid || paid.IdempotencyKey != Key(inv.ID)+":2" || paid.HoldID == got.HoldID {
		t.Fatalf("second attempt: HTTP %d %+v, want PAID with key %s:2 and a new hold", code, paid, Key(inv.ID))
	}
	if d := debits(e); len(d) != 1 || d[0].GetId() != paid.TransactionID {
		t.Errorf("debits %v", d)
	}
}

func TestRefusedCaptureWhoseVoidIsLostIsReleasedByReconcile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	e.ledger.Fund(e.t, ws, "client-1", 100)
	inv := e.invoice("INV-1", usd(1, 0))
	refused := ledgertest.Fault{Code: codes.FailedPrecondition, Reason: "CREDIT_PAYMENTS_DISABLED"}
	e.ledger.InjectFault("CaptureHold", refused, refused)
	for range 3 {
		e.ledger.InjectFault("VoidHold", ledgertest.Fault{Code: codes.Unavailable})
	}
	if code, body := e.pay(inv.ID); code != 503 || body.Inv.Status != StatusPaying {
		t.Fatalf("HTTP %d %+v %+v: want PAYING while the hold is not released", code, body.Error, body.Inv)
	}
	rep, err := e.app.Reconcile(t.Context())
	if err != nil || rep != (ReconcileReport{Paying: 1, Reopened: 1}) {
		t.Fatalf("Reconcile = %+v, %v", rep, err)
	}
	got, _ := e.app.Get(t.Context(), ws, inv.ID)
	hs := e.ledger.Holds(e.t, ws, "client-1")
	if got.Status != StatusOpen || len(hs) != 1 || hs[0].GetStatus() != pb.HoldStatus_HOLD_STATUS_VOIDED {
		t.Errorf("invoice %+v, holds %v: want OPEN and the hold voided", got, hs)
	}
}

// crash stands for the process dying inside AfterDebit.
type crash struct{}

func TestCrashBetweenDebitAndStatusChangeIsReconciledToPaid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	e.ledger.Fund(e.t, ws, "client-1", 100)
	inv := e.invoice("INV-7", usd(2, 0))
	e.restart(func(Invoice) { panic(crash{}) })

	func() {
		defer func() {
			if r := recover(); r != (crash{}) {
				t.Fatalf("recovered %v, want the injected crash", r)
			}
		}()
		_, _ = e.app.PayWithCredit(t.Context(), ws, inv.ID)
	}()
	stored, _ := e.app.Get(t.Context(), ws, inv.ID)
	if stored.Status != StatusPaying || stored.TransactionID != "" || stored.HoldID == "" || len(debits(e)) != 1 {
		t.Fatalf("after the crash: %+v with %d debits, want PAYING and one debit", stored, len(debits(e)))
	}

	e.restart(nil)
	if _, err := e.app.Reconcile(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, _ := e.app.Get(t.Context(), ws, inv.ID)
	d := debits(e)
	if got.Status != StatusPaid || len(d) != 1 || got.TransactionID != d[0].GetId() {
		t.Fatalf("after reconcile: %+v, debits %v", got, d)
	}
	if bal, _ := e.ledger.Balance(e.t, ws, "client-1"); bal != 80 {
		t.Errorf("balance %d, want 80", bal)
	}
	for _, c := range e.ledger.Calls("CaptureHold") {
		if c.IdempotencyKey != "invoice:"+inv.ID+":capture" {
			t.Errorf("CaptureHold key %q", c.IdempotencyKey)
		}
	}
	if n := len(e.ledger.Calls("CreateHold")); n != 1 {
		t.Errorf("%d CreateHold calls, want 1: the recorded hold is captured, not made again", n)
	}
}

func TestReconcileReopensWhenNothingWasPostedAndTheLedgerRefuses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	e.ledger.Fund(e.t, ws, "client-1", 100)
	inv := e.invoice("INV-1", usd(1, 0))
	// The process died after recording the intent, before calling the ledger;
	// meanwhile the agency switched credit payments off.
	if ok, err := e.store.BeginPaying(t.Context(), ws, inv.ID, 10, Key(inv.ID), time.Now()); !ok || err != nil {
		t.Fatal(ok, err)
	}
	e.ledger.SetEnabled(e.t, ws, false)
	e.restart(nil)
	rep, err := e.app.Reconcile(t.Context())
	if err != nil || rep != (ReconcileReport{Paying: 1, Reopened: 1}) {
		t.Fatalf("Reconcile = %+v, %v", rep, err)
	}
	got, _ := e.app.Get(t.Context(), ws, inv.ID)
	if got.Status != StatusOpen || got.LastFailure != "CREDIT_PAYMENTS_DISABLED" || len(debits(e)) != 0 {
		t.Errorf("invoice %+v, %d debits", got, len(debits(e)))
	}
	if bal, _ := e.ledger.Balance(e.t, ws, "client-1"); bal != 100 {
		t.Errorf("balance %d, want 100 (preserved)", bal)
	}
}

func TestReplayAfterDisableStillMarksPaid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	e.ledger.Fund(e.t, ws, "client-1", 100)
	inv := e.invoice("INV-1", usd(1, 0))
	e.restart(func(Invoice) { panic(crash{}) })
	func() {
		defer func() { _ = recover() }()
		_, _ = e.app.PayWithCredit(t.Context(), ws, inv.ID)
	}()
	// The debit posted; then the agency disabled credits before the restart.
	e.ledger.SetEnabled(e.t, ws, false)
	e.restart(nil)
	if _, err := e.app.Reconcile(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.app.Get(t.Context(), ws, inv.ID); got.Status != StatusPaid {
		t.Errorf("invoice %+v, want PAID: a posted debit is replayed, never re-evaluated", got)
	}
}

func TestKeyPostedWithOtherTermsIsFoundInTheHistory(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	e.ledger.Fund(e.t, ws, "client-1", 100)
	inv := e.invoice("INV-1", usd(1, 0))
	// A debit for this invoice's key was posted for 10 credits, while the
	// stored intent says 12 (a rate change between a refusal and a retry).
	if _, err := e.client.Debit(t.Context(), &pb.DebitRequest{
		Workspace: ws, Account: "client-1", Amount: 10,
		Kind: pb.TransactionKind_TRANSACTION_KIND_INVOICE_PAYMENT, Reference: "invoice:INV-1", IdempotencyKey: Key(inv.ID),
	}); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.store.BeginPaying(t.Context(), ws, inv.ID, 12, Key(inv.ID), time.Now()); !ok || err != nil {
		t.Fatal(ok, err)
	}
	// A payment begun by a version that debited in one step.
	if _, err := e.store.db.ExecContext(t.Context(), `UPDATE invoices SET method = 'DEBIT'`); err != nil {
		t.Fatal(err)
	}
	rep, err := e.app.Reconcile(t.Context())
	if err != nil || rep.Paid != 1 {
		t.Fatalf("Reconcile = %+v, %v", rep, err)
	}
	got, _ := e.app.Get(t.Context(), ws, inv.ID)
	if d := debits(e); got.Status != StatusPaid || len(d) != 1 || got.TransactionID != d[0].GetId() {
		t.Errorf("invoice %+v, debits %v", got, d)
	}
}

// A PAYING invoice left by a version without holds is finished with the
// debit it began, under its key.
func TestPayingInvoiceFromBeforeHoldsIsSettledByItsDebit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	e.ledger.Fund(e.t, ws, "client-1", 100)
	e.close()
	// A version-1 database with an invoice whose debit was in flight.
	consumertest.OldDB(t, e.dbPath, schema, 1, `INSERT INTO invoices (id, workspace, account, seq, number, currency, units, nanos,
		status, credits, idempotency_key, create_time, update_time) VALUES ('inv-1', 'agency-1', 'client-1', 1, 'INV-1', 'USD', 1, 0,
		'PAYING', 10, 'invoice:inv-1', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')`)
	e.open(nil)
	rep, err := e.app.Reconcile(t.Context())
	if err != nil || rep != (ReconcileReport{Paying: 1, Paid: 1}) {
		t.Fatalf("Reconcile = %+v, %v", rep, err)
	}
	got, _ := e.app.Get(t.Context(), ws, "inv-1")
	calls := e.ledger.Calls("Debit")
	if got.Status != StatusPaid || len(calls) != 1 || calls[0].IdempotencyKey != "invoice:inv-1" || len(e.ledger.Calls("CreateHold")) != 0 {
		t.Errorf("invoice %+v, Debit calls %+v", got, calls)
	}
	// Its next payments (none here) would hold: the schema is current.
	latest, err := schema.Latest()
	if v, _ := e.store.pragma(t.Context(), "user_version"); err != nil || v != strconv.FormatInt(latest, 10) {
		t.Errorf("user_version %s, want %d (%v)", v, latest, err)
	}
}

func TestConcurrentPaymentsDebitOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agency()
	e.ledger.Fund(e.t, ws, "client-1", 100)
	inv := e.invoice("INV-1", usd(1, 0))
	var wg sync.WaitGroup
	txs := make([]string, 8)
	for i := range txs {
		wg.Go(func() {
			_, got := e.pay(inv.ID)
			txs[i] = got.TransactionID
		})
	}
	wg.Wait()
	for _, tx := range txs {
		if tx == "" || tx != txs[0] {
			t.Fatalf("transactions %v, want one", txs)
		}
	}
	if n := len(debits(e)); n != 1 {
		t.Errorf("%d debits, want 1", n)
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, path := range []string{"/v1/workspaces/" + ws + "/invoices/nope", "/v1/workspaces/" + ws + "/invoices/nope/payment-options"} {
		if code := e.do("GET", path, nil, nil); code != 404 {
			t.Errorf("GET %s: HTTP %d, want 404", path, code)
		}
	}
	if code, _ := e.pay("nope"); code != 404 {
		t.Errorf("pay unknown: HTTP %d, want 404", code)
	}
}
