// Package e2e proves every product flow end to end across separate
// processes: the real ledgerd, checkout and invoicing binaries, built with
// go build and started on loopback ports, driven over HTTP as a portal and
// a payment provider would, and the real ledgerctl as the agency's
// operator. The flows run against both ledger stores: the embedded one and
// PostgreSQL.
package e2e

import (
	"encoding/csv"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/checkout"
	"github.com/creditledger/creditledger/internal/invoicing"
	"github.com/creditledger/creditledger/ledgerclient"
)

const ws = "agency-e2e"

// TestFlows builds the binaries once and walks every flow against each store.
func TestFlows(t *testing.T) {
	bin := binaries(t)

	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		walkFlows(t, bin, envKV("LEDGER_DATA_DIR", filepath.Join(t.TempDir(), "ledger")))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		walkFlows(t, bin, postgresEnv(t)...)
	})
}

// system is one ledgerd with its consumers.
type system struct {
	t         *testing.T
	bin, dir  string
	grpcAddr  string
	ledger    *ledgerclient.Client
	checkout  api
	invoicing api
	invProc   *proc
	coProc    *proc
	coArgs    []string
	coEnv     []string
	stripe    *stripeDev
	// kept across steps to check them after a restart
	cardEvent  []byte // the signed card payment's Stripe event
	cardPI     string // its payment intent
	cardTx     string
	purchaseID string
	orderID    string
	orderTx    string
	ctl        ctl
}

// checkoutDevEnv runs checkout in its development modes, as ledgerd runs
// here with LEDGER_AUTH=none: no tokens, and besides Stripe's signed events
// (card purchases, paid on cmd/stripe-dev) the unsigned payment
// confirmations some flows post (loopback only). The authorization of both
// consumers is tested in their packages.
var checkoutDevEnv = []string{envKV("CHECKOUT_AUTH", "none"), envKV("CHECKOUT_WEBHOOKS", "unsigned")}

func walkFlows(t *testing.T, bin string, storeEnv ...string) {
	s := &system{t: t, bin: bin, dir: t.TempDir()}
	ledgerd := startProc(t, filepath.Join(bin, exe("ledgerd")),
		[]string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"},
		append([]string{envKV("LEDGER_AUTH", "none")}, storeEnv...)...)
	s.grpcAddr = ledgerd.field(t, "grpc_addr")
	ledgerd.field(t, "http_addr")

	lc, err := ledgerclient.Dial(t.Context(), s.grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lc.Close() })
	s.ledger = lc
	s.ctl = ctl{t: t, bin: filepath.Join(bin, exe("ledgerctl")), env: []string{envKV("LEDGER_ADDR", s.grpcAddr), envKV("LEDGER_WORKSPACE", ws)}}

	s.coArgs = []string{
		"--http-addr", "127.0.0.1:0",
		"--db", filepath.Join(s.dir, "checkout.db"), "--ledger-addr", s.grpcAddr,
	}
	s.coEnv = append(s.startStripeDev(), checkoutDevEnv...)
	s.coProc = startProc(t, filepath.Join(bin, exe("checkout")), s.coArgs, s.coEnv...)
	s.checkout = api{t: t, base: "http://" + s.coProc.field(t, "http_addr")}
	s.forwardWebhooks()
	s.startInvoicing()

	steps := []struct {
		name string
		fn   func(s *system)
	}{
		{"agency enables credits, creates packages and a rate", agencySetsUp},
		{"card purchase on the Stripe stand-in: paid once, event delivered three times, credited once; cancel credits nothing", cardPurchase},
		{"bank transfer accepted, crypto rejected", manualPurchases},
		{"buy an eligible service with credits: hold, then confirm", buyWithCredit},
		{"cancel an order: hold voided, balance unchanged", cancelOrder},
		{"refund a confirmed order in part: a REVERSAL entry", refundOrder},
		{"checkout restarts: orders and payments kept, a late webhook credits nothing", checkoutRestarts},
		{"no Buy with Credit: ineligible, above the balance", notOffered},
		{"pay an invoice with credits", payInvoice},
		{"invoicing killed between debit and status change", crashAfterDebit},
		{"agency disables credits: balance preserved, nothing spendable", agencyDisables},
		{"history: date, In/Out, reference, amount, running balance", history},
	}
	for _, st := range steps {
		start := time.Now()
		st.fn(s)
		if t.Failed() {
			t.Fatalf("step %q failed", st.name)
		}
		t.Logf("step %q ok (%v)", st.name, time.Since(start).Round(time.Millisecond))
	}
}

func (s *system) startInvoicing(env ...string) {
	s.invProc = startProc(s.t, filepath.Join(s.bin, exe("invoicing")), []string{
		"--http-addr", "127.0.0.1:0",
		"--db", filepath.Join(s.dir, "invoicing.db"), "--ledger-addr", s.grpcAddr,
	}, append([]string{envKV("INVOICING_AUTH", "none")}, env...)...)
	s.invoicing = api{t: s.t, base: "http://" + s.invProc.field(s.t, "http_addr")}
}

func (s *system) balance(account string) *pb.Balance {
	s.t.Helper()
	b, err := s.ledger.Balance(s.t.Context(), ws, account)
	if err != nil {
		s.t.Fatalf("balance of %s: %v", account, err)
	}
	return b
}

func (s *system) transactions(account string) []*pb.Transaction {
	s.t.Helper()
	var out []*pb.Transaction
	for tx, err := range s.ledger.Transactions(s.t.Context(), &pb.ListTransactionsRequest{Workspace: ws, Account: account}) {
		if err != nil {
			s.t.Fatalf("history of %s: %v", account, err)
		}
		out = append(out, tx)
	}
	return out
}

func (s *system) wantBalance(account string, balance, version int64) {
	s.t.Helper()
	if b := s.balance(account); b.GetBalance() != balance || b.GetVersion() != version {
		s.t.Errorf("%s: balance %d version %d, want %d and %d", account, b.GetBalance(), b.GetVersion(), balance, version)
	}
}

func usd(units int64, nanos int32) checkout.Money {
	return checkout.Money{CurrencyCode: "USD", Units: units, Nanos: nanos}
}

type errBody struct {
	Error struct {
		Code string `json:"code"`
	} `json:"error"`
	Order    *checkout.Order    `json:"order"`
	Purchase *checkout.Purchase `json:"purchase"`
	Invoice  *invoicing.Invoice `json:"invoice"`
}

func agencySetsUp(s *system) {
	if out := s.ctl.must("settings", "get"); !strings.Contains(out, "disabled") {
		s.t.Errorf("a new workspace must start with credit payments disabled: %q", out)
	}
	s.ctl.must("settings", "set", "--credit-payments", "on")
	s.ctl.must("packages", "create", "--id", "starter", "--name", "Starter", "--credits", "100", "--price", "USD 10")
	s.ctl.must("packages", "create", "--id", "pro", "--name", "Pro", "--credits", "500", "--price", "USD 45")
	s.ctl.must("rates", "set", "USD", "10")
	if out := s.ctl.must("quote", "USD 3.51"); !strings.Contains(out, "= 36 credits") {
		s.t.Errorf("quote USD 3.51 at 10/USD: %q, want 36 credits (35.1 rounded up)", out)
	}
	if out := s.ctl.must("packages", "list"); !strings.Contains(out, "starter") || !strings.Contains(out, "pro") {
		s.t.Errorf("packages list: %q", out)
	}
	for _, svc := range []struct {
		id       string
		price    checkout.Money
		eligible bool
	}{
		{"logo", usd(5, 0), true},              // 50 credits
		{"website", usd(20, 0), true},          // 200 credits
		{"sticker", usd(0, 300_000_000), true}, // 3 credits
		{"domain", usd(2, 0), false},           // never with credits
	} {
		s.checkout.must(200, "PUT", "/v1/workspaces/"+ws+"/services/"+svc.id,
			map[string]any{"name": svc.id, "price": svc.price, "credit_eligible": svc.eligible}, nil)
	}
}

func manualPurchases(s *system) {
	var bank checkout.Purchase
	s.checkout.must(201, "POST", "/v1/workspaces/"+ws+"/accounts/bob/credit-purchases",
		checkout.PurchaseInput{PackageID: "pro", Method: checkout.MethodBankTransfer, PaymentReference: "SEPA-E2E-1"}, &bank)
	if bank.Status != checkout.PurchasePendingApproval || bank.RequestID == "" || bank.Credits != 500 {
		s.t.Fatalf("bank purchase: %+v", bank)
	}
	var crypto checkout.Purchase
	s.checkout.must(201, "POST", "/v1/workspaces/"+ws+"/accounts/carol/credit-purchases",
		checkout.PurchaseInput{PackageID: "starter", Method: checkout.MethodCrypto, PaymentReference: "0xfeed"}, &crypto)
	if crypto.Status != checkout.PurchasePendingApproval {
		s.t.Fatalf("crypto purchase: %+v", crypto)
	}
	if b := s.balance("bob"); b.GetBalance() != 0 || b.GetPendingRequestCredits() != 500 {
		s.t.Errorf("bob before the decision: %v", b)
	}
	queue := s.ctl.must("requests", "list")
	if !strings.Contains(queue, bank.RequestID) || !strings.Contains(queue, crypto.RequestID) {
		s.t.Fatalf("the agency's queue lacks the requests:\n%s", queue)
	}
	if out := s.ctl.must("requests", "accept", bank.RequestID, "--by", "admin@agency", "--reason", "transfer received"); !strings.Contains(out, "posted IN 500") {
		s.t.Errorf("accept: %q", out)
	}
	// Repeating the operator's command replays, never posts twice.
	if out := s.ctl.must("requests", "accept", bank.RequestID, "--by", "admin@agency", "--reason", "transfer received"); !strings.Contains(out, "replayed") {
		s.t.Errorf("accept again: %q", out)
	}
	s.ctl.must("requests", "reject", crypto.RequestID, "--by", "admin@agency", "--reason", "no payment on chain")
	_, errOut, code := s.ctl.run("requests", "accept", crypto.RequestID, "--by", "admin@agency")
	if code != 1 || !strings.Contains(errOut, "REQUEST_ALREADY_DECIDED") {
		s.t.Errorf("accepting a rejected request: exit %d %q", code, errOut)
	}

	// The decisions reach checkout as the ledger's events, before anyone
	// reads the purchases (a read would also ask the ledger).
	s.coProc.waitLog(s.t, 30*time.Second, "ledger event applied",
		map[string]string{"event_type": "request.decided", "purchase_id": bank.ID, "status": string(checkout.PurchaseCredited)})
	s.coProc.waitLog(s.t, 30*time.Second, "ledger event applied",
		map[string]string{"event_type": "request.decided", "purchase_id": crypto.ID, "status": string(checkout.PurchaseRejected)})
	var got checkout.Purchase
	s.checkout.must(200, "GET", "/v1/workspaces/"+ws+"/credit-purchases/"+bank.ID, nil, &got)
	if got.Status != checkout.PurchaseCredited || got.TransactionID == "" {
		s.t.Errorf("bank purchase after acceptance: %+v", got)
	}
	s.checkout.must(200, "GET", "/v1/workspaces/"+ws+"/credit-purchases/"+crypto.ID, nil, &got)
	if got.Status != checkout.PurchaseRejected || got.FailureReason != "no payment on chain" {
		s.t.Errorf("crypto purchase after rejection: %+v", got)
	}
	s.wantBalance("bob", 500, 1)
	s.wantBalance("carol", 0, 0)
	if txs := s.transactions("carol"); len(txs) != 0 {
		s.t.Errorf("a rejected request posted %v", txs)
	}
	bobTx := s.transactions("bob")
	if len(bobTx) != 1 || bobTx[0].GetKind() != pb.TransactionKind_TRANSACTION_KIND_REQUEST_APPROVED || bobTx[0].GetRequestId() != bank.RequestID {
		s.t.Errorf("bob's history: %v", bobTx)
	}
}

func options(s *system, account, service string) checkout.Options {
	var o checkout.Options
	s.checkout.must(200, "GET", "/v1/workspaces/"+ws+"/accounts/"+account+"/services/"+service+"/checkout-options", nil, &o)
	return o
}

func buyWithCredit(s *system) {
	o := options(s, "alice", "logo")
	if !o.BuyWithCredit.Offered || o.BuyWithCredit.CreditsRequired != 50 || o.BuyWithCredit.Balance != 100 {
		s.t.Fatalf("options for logo: %+v", o.BuyWithCredit)
	}
	var order checkout.Order
	s.checkout.must(201, "POST", "/v1/workspaces/"+ws+"/accounts/alice/orders", map[string]string{"service_id": "logo"}, &order)
	if order.Status != checkout.OrderHeld || order.Credits != 50 || order.HoldID == "" || order.TransactionID != "" {
		s.t.Fatalf("order: %+v", order)
	}
	// Placed: the credits are held, nothing is spent.
	s.wantBalance("alice", 100, 1)
	if b := s.balance("alice"); b.GetHeld() != 50 || b.GetAvailable() != 50 {
		s.t.Errorf("alice with the order held: %v, want 50 held, 50 available", b)
	}
	h := s.hold(order.HoldID)
	if h.GetStatus() != pb.HoldStatus_HOLD_STATUS_ACTIVE || h.GetAmount() != 50 || h.GetReference() != "order:"+order.ID ||
		h.GetIdempotencyKey() != "checkout-order:"+order.ID || h.GetKind() != pb.TransactionKind_TRANSACTION_KIND_SERVICE_PURCHASE {
		s.t.Errorf("the order's hold: %v", h)
	}

	s.checkout.must(200, "POST", "/v1/workspaces/"+ws+"/orders/"+order.ID+":confirm", nil, &order)
	if order.Status != checkout.OrderConfirmed || order.TransactionID == "" {
		s.t.Fatalf("confirmed order: %+v", order)
	}
	s.wantBalance("alice", 50, 2)
	if b := s.balance("alice"); b.GetHeld() != 0 || b.GetAvailable() != 50 {
		s.t.Errorf("alice after the capture: %v", b)
	}
	if h := s.hold(order.HoldID); h.GetStatus() != pb.HoldStatus_HOLD_STATUS_CAPTURED || h.GetTransactionId() != order.TransactionID {
		s.t.Errorf("the captured hold: %v", h)
	}
	// Confirming again changes nothing.
	s.checkout.must(200, "POST", "/v1/workspaces/"+ws+"/orders/"+order.ID+":confirm", nil, nil)
	s.wantBalance("alice", 50, 2)
	s.orderID, s.orderTx = order.ID, order.TransactionID
	txs := s.transactions("alice")
	if txs[0].GetId() != order.TransactionID || txs[0].GetHoldId() != order.HoldID || txs[0].GetAmount() != 50 ||
		txs[0].GetKind() != pb.TransactionKind_TRANSACTION_KIND_SERVICE_PURCHASE || txs[0].GetReference() != "order:"+order.ID {
		s.t.Errorf("the order's debit: %v", txs[0])
	}
}

// cancelOrder places an order for bob and cancels it: the hold is voided
// and bob's balance is as before.
func cancelOrder(s *system) {
	var order checkout.Order
	s.checkout.must(201, "POST", "/v1/workspaces/"+ws+"/accounts/bob/orders", map[string]string{"service_id": "logo"}, &order)
	if order.Status != checkout.OrderHeld {
		s.t.Fatalf("bob's order: %+v", order)
	}
	if b := s.balance("bob"); b.GetBalance() != 500 || b.GetAvailable() != 450 {
		s.t.Errorf("bob with the order held: %v", b)
	}
	s.checkout.must(200, "POST", "/v1/workspaces/"+ws+"/orders/"+order.ID+":cancel", nil, &order)
	if order.Status != checkout.OrderCancelled {
		s.t.Fatalf("cancelled order: %+v", order)
	}
	if h := s.hold(order.HoldID); h.GetStatus() != pb.HoldStatus_HOLD_STATUS_VOIDED {
		s.t.Errorf("the cancelled order's hold: %v", h)
	}
	s.wantBalance("bob", 500, 1)
	if b := s.balance("bob"); b.GetHeld() != 0 || b.GetAvailable() != 500 {
		s.t.Errorf("bob after the cancel: %v", b)
	}
	var e errBody
	s.checkout.must(409, "POST", "/v1/workspaces/"+ws+"/orders/"+order.ID+":confirm", nil, &e)
	if e.Error.Code != checkout.CodeOrderNotHeld {
		s.t.Errorf("confirming a cancelled order: %+v", e.Error)
	}
	s.wantBalance("bob", 500, 1)
}

// refundOrder has bob buy the website in one step, then refunds 80 of its
// 200 credits: a REVERSAL entry on bob's history, linked to the purchase.
func refundOrder(s *system) {
	var order checkout.Order
	s.checkout.must(201, "POST", "/v1/workspaces/"+ws+"/accounts/bob/orders", map[string]any{"service_id": "website", "confirm": true}, &order)
	if order.Status != checkout.OrderConfirmed || order.Credits != 200 {
		s.t.Fatalf("bob's website: %+v", order)
	}
	s.wantBalance("bob", 300, 2)
	var res struct {
		Refund checkout.Refund `json:"refund"`
		Order  checkout.Order  `json:"order"`
	}
	s.checkout.must(201, "POST", "/v1/workspaces/"+ws+"/orders/"+order.ID+":refund", map[string]int64{"credits": 80}, &res)
	if res.Refund.Status != checkout.RefundRefunded || res.Refund.Credits != 80 || res.Order.Status != checkout.OrderPartiallyRefunded ||
		res.Order.RefundedCredits != 80 {
		s.t.Fatalf("refund: %+v", res)
	}
	s.wantBalance("bob", 380, 3)
	txs := s.transactions("bob")
	rev := txs[0]
	if rev.GetId() != res.Refund.TransactionID || rev.GetKind() != pb.TransactionKind_TRANSACTION_KIND_REVERSAL ||
		rev.GetType() != pb.TransactionType_TRANSACTION_TYPE_IN || rev.GetAmount() != 80 || rev.GetBalanceAfter() != 380 ||
		rev.GetReversesTransactionId() != order.TransactionID || rev.GetIdempotencyKey() != checkout.RefundKey(res.Refund.ID) {
		s.t.Errorf("bob's REVERSAL entry: %v", rev)
	}
	orig, err := s.ledger.GetTransaction(s.t.Context(), &pb.GetTransactionRequest{Workspace: ws, TransactionId: order.TransactionID})
	if err != nil || orig.GetTransaction().GetReversedAmount() != 80 {
		s.t.Errorf("the refunded purchase: %v, %v; want reversed_amount 80", orig, err)
	}
	// More than what remains is refused; nothing moves.
	var e errBody
	s.checkout.must(422, "POST", "/v1/workspaces/"+ws+"/orders/"+order.ID+":refund", map[string]int64{"credits": 121}, &e)
	if e.Error.Code != checkout.CodeRefundExceedsOrder {
		s.t.Errorf("refunding beyond the order: %+v", e.Error)
	}
	s.wantBalance("bob", 380, 3)
}

func (s *system) hold(id string) *pb.Hold {
	s.t.Helper()
	h, err := s.ledger.Hold(s.t.Context(), ws, id)
	if err != nil {
		s.t.Fatalf("hold %s: %v", id, err)
	}
	return h
}

// checkoutRestarts stops checkout (SIGTERM) and starts it again on the same
// database: its orders and purchases are still there, and the provider
// redelivering the card webhook after the restart credits nothing more.
func checkoutRestarts(s *system) {
	if code := s.coProc.stop(s.t); code != 0 {
		s.t.Fatalf("checkout exited %d on SIGTERM", code)
	}
	s.coProc = startProc(s.t, filepath.Join(s.bin, exe("checkout")), s.coArgs, s.coEnv...)
	s.checkout = api{t: s.t, base: "http://" + s.coProc.field(s.t, "http_addr")}
	s.forwardWebhooks()

	var order checkout.Order
	s.checkout.must(200, "GET", "/v1/workspaces/"+ws+"/orders/"+s.orderID, nil, &order)
	if order.Status != checkout.OrderConfirmed || order.TransactionID != s.orderTx {
		s.t.Errorf("order after the restart: %+v", order)
	}
	var p checkout.Purchase
	s.checkout.must(200, "GET", "/v1/workspaces/"+ws+"/credit-purchases/"+s.purchaseID, nil, &p)
	if p.Status != checkout.PurchaseCredited || p.TransactionID != s.cardTx {
		s.t.Errorf("card purchase after the restart: %+v", p)
	}
	if pay := deliverSigned(s, s.cardEvent); pay.Status != checkout.PaymentCredited || pay.TransactionID != s.cardTx || pay.Deliveries != 4 {
		s.t.Errorf("webhook after the restart: %+v", pay)
	}
	s.wantBalance("alice", 50, 2)
}

func notOffered(s *system) {
	if o := options(s, "alice", "domain"); o.BuyWithCredit.Offered || o.BuyWithCredit.Reason != "SERVICE_NOT_ELIGIBLE" {
		s.t.Errorf("ineligible service: %+v", o.BuyWithCredit)
	}
	if o := options(s, "alice", "website"); o.BuyWithCredit.Offered || o.BuyWithCredit.Reason != "INSUFFICIENT_CREDITS" ||
		o.BuyWithCredit.CreditsRequired != 200 || o.BuyWithCredit.Balance != 50 {
		s.t.Errorf("price above the balance: %+v", o.BuyWithCredit)
	}
	for service, reason := range map[string]string{"website": "INSUFFICIENT_CREDITS", "domain": "SERVICE_NOT_ELIGIBLE"} {
		var e errBody
		s.checkout.must(422, "POST", "/v1/workspaces/"+ws+"/accounts/alice/orders", map[string]string{"service_id": service}, &e)
		if e.Error.Code != reason {
			s.t.Errorf("buying %s anyway: %+v, want %s", service, e.Error, reason)
		}
	}
	s.wantBalance("alice", 50, 2)
}

func payInvoice(s *system) {
	var inv invoicing.Invoice
	s.invoicing.must(201, "POST", "/v1/workspaces/"+ws+"/invoices",
		invoicing.NewInvoice{Account: "alice", Number: "INV-1001", Amount: invoicing.Money{CurrencyCode: "USD", Units: 3, Nanos: 510_000_000}}, &inv)
	var opts invoicing.PaymentOptions
	s.invoicing.must(200, "GET", "/v1/workspaces/"+ws+"/invoices/"+inv.ID+"/payment-options", nil, &opts)
	if !opts.PayWithCredit.Offered || opts.PayWithCredit.CreditsRequired != 36 {
		s.t.Fatalf("Pay with Credit for USD 3.51: %+v", opts.PayWithCredit)
	}
	var paid invoicing.Invoice
	s.invoicing.must(200, "POST", "/v1/workspaces/"+ws+"/invoices/"+inv.ID+"/pay-with-credit", nil, &paid)
	if paid.Status != invoicing.StatusPaid || paid.TransactionID == "" || paid.Credits != 36 {
		s.t.Fatalf("paid invoice: %+v", paid)
	}
	s.wantBalance("alice", 14, 3)
	tx := s.transactions("alice")[0]
	if tx.GetId() != paid.TransactionID || tx.GetReference() != "invoice:INV-1001" || tx.GetHoldId() != paid.HoldID || paid.HoldID == "" ||
		tx.GetKind() != pb.TransactionKind_TRANSACTION_KIND_INVOICE_PAYMENT || tx.GetAmount() != 36 {
		s.t.Errorf("the invoice's debit: %v", tx)
	}
	if h := s.hold(paid.HoldID); h.GetStatus() != pb.HoldStatus_HOLD_STATUS_CAPTURED || h.GetIdempotencyKey() != "invoice:"+inv.ID ||
		h.GetAmount() != 36 || h.GetTransactionId() != paid.TransactionID {
		s.t.Errorf("the invoice's hold: %v", h)
	}
	// A larger invoice is refused and stays open.
	var big invoicing.Invoice
	s.invoicing.must(201, "POST", "/v1/workspaces/"+ws+"/invoices",
		invoicing.NewInvoice{Account: "alice", Number: "INV-1001-B", Amount: invoicing.Money{CurrencyCode: "USD", Units: 99}}, &big)
	var e errBody
	s.invoicing.must(422, "POST", "/v1/workspaces/"+ws+"/invoices/"+big.ID+"/pay-with-credit", nil, &e)
	if e.Error.Code != "INSUFFICIENT_CREDITS" || e.Invoice == nil || e.Invoice.Status != invoicing.StatusOpen {
		s.t.Errorf("invoice above the balance: %+v %+v", e.Error, e.Invoice)
	}
	s.wantBalance("alice", 14, 3)
}

func crashAfterDebit(s *system) {
	if code := s.invProc.stop(s.t); code != 0 {
		s.t.Fatalf("invoicing exited %d on SIGTERM", code)
	}
	s.startInvoicing(envKV("INVOICING_CRASH_AFTER_DEBIT", "1"))
	var inv invoicing.Invoice
	s.invoicing.must(201, "POST", "/v1/workspaces/"+ws+"/invoices",
		invoicing.NewInvoice{Account: "alice", Number: "INV-1002", Amount: invoicing.Money{CurrencyCode: "USD", Units: 1}}, &inv)
	if code, err := s.invoicing.call("POST", "/v1/workspaces/"+ws+"/invoices/"+inv.ID+"/pay-with-credit", nil, nil); err == nil {
		s.t.Fatalf("pay answered HTTP %d; want the process to die after the debit", code)
	}
	if code := s.invProc.wait(s.t, 30*time.Second); code != 3 {
		s.t.Fatalf("invoicing exited %d, want 3 (INVOICING_CRASH_AFTER_DEBIT)", code)
	}
	// The debit is posted; the invoice is not marked paid yet.
	s.wantBalance("alice", 4, 4)

	s.startInvoicing() // reconciles before listening
	var got invoicing.Invoice
	s.invoicing.must(200, "GET", "/v1/workspaces/"+ws+"/invoices/"+inv.ID, nil, &got)
	var debits []*pb.Transaction
	for _, tx := range s.transactions("alice") {
		if got.HoldID != "" && tx.GetHoldId() == got.HoldID {
			debits = append(debits, tx)
		}
	}
	if got.Status != invoicing.StatusPaid || len(debits) != 1 || got.TransactionID != debits[0].GetId() {
		s.t.Fatalf("after restart: invoice %+v, entries of its hold %v: want PAID with exactly one", got, debits)
	}
	s.wantBalance("alice", 4, 4)
	// Paying again is a no-op.
	s.invoicing.must(200, "POST", "/v1/workspaces/"+ws+"/invoices/"+inv.ID+"/pay-with-credit", nil, &got)
	s.wantBalance("alice", 4, 4)
}

func agencyDisables(s *system) {
	if o := options(s, "alice", "sticker"); !o.BuyWithCredit.Offered {
		s.t.Fatalf("sticker (3 credits) with 4 credits must be offered before disabling: %+v", o.BuyWithCredit)
	}
	var inv invoicing.Invoice
	s.invoicing.must(201, "POST", "/v1/workspaces/"+ws+"/invoices",
		invoicing.NewInvoice{Account: "alice", Number: "INV-1003", Amount: invoicing.Money{CurrencyCode: "USD", Nanos: 100_000_000}}, &inv)

	s.ctl.must("settings", "set", "--credit-payments", "off")

	if o := options(s, "alice", "sticker"); o.BuyWithCredit.Offered || o.BuyWithCredit.Reason != "CREDIT_PAYMENTS_DISABLED" || o.BuyWithCredit.Balance != 4 {
		s.t.Errorf("options after disabling: %+v", o.BuyWithCredit)
	}
	var e errBody
	s.checkout.must(422, "POST", "/v1/workspaces/"+ws+"/accounts/alice/orders", map[string]string{"service_id": "sticker"}, &e)
	if e.Error.Code != "CREDIT_PAYMENTS_DISABLED" {
		s.t.Errorf("order after disabling: %+v", e.Error)
	}
	var opts invoicing.PaymentOptions
	s.invoicing.must(200, "GET", "/v1/workspaces/"+ws+"/invoices/"+inv.ID+"/payment-options", nil, &opts)
	if opts.PayWithCredit.Offered || opts.PayWithCredit.Reason != "CREDIT_PAYMENTS_DISABLED" {
		s.t.Errorf("Pay with Credit after disabling: %+v", opts.PayWithCredit)
	}
	s.invoicing.must(422, "POST", "/v1/workspaces/"+ws+"/invoices/"+inv.ID+"/pay-with-credit", nil, &e)
	if e.Error.Code != "CREDIT_PAYMENTS_DISABLED" {
		s.t.Errorf("pay after disabling: %+v", e.Error)
	}
	_, errOut, code := s.ctl.run("debit", "--account", "alice", "--amount", "1", "--idempotency-key", "ops-1")
	if code != 1 || !strings.Contains(errOut, "CREDIT_PAYMENTS_DISABLED") {
		s.t.Errorf("ledgerctl debit after disabling: exit %d %q", code, errOut)
	}
	var pr errBody
	s.checkout.must(422, "POST", "/v1/workspaces/"+ws+"/accounts/carol/credit-purchases",
		checkout.PurchaseInput{PackageID: "starter", Method: checkout.MethodBankTransfer}, &pr)
	if pr.Error.Code != "CREDIT_PAYMENTS_DISABLED" {
		s.t.Errorf("bank transfer after disabling: %+v", pr.Error)
	}

	b := s.balance("alice")
	if b.GetBalance() != 4 || b.GetCreditPaymentsEnabled() {
		s.t.Errorf("balance after disabling: %v, want 4 preserved and credit_payments_enabled false", b)
	}
	// A confirmed card payment is never lost: it still credits.
	var pay checkout.Payment
	s.checkout.must(200, "POST", "/webhooks/payments", checkout.PaymentConfirmation{
		Provider: "stripe", PaymentID: "pi_e2e_alice_2",
		Workspace: ws, Account: "alice", PackageID: "starter",
	}, &pay)
	if pay.Status != checkout.PaymentCredited {
		s.t.Errorf("webhook while disabled: %+v", pay)
	}
	s.wantBalance("alice", 104, 5)
}

func history(s *system) {
	type row struct {
		Type, Kind, Reference string
		Amount, Balance       int64
	}
	var orders struct{ Orders []checkout.Order }
	s.checkout.must(200, "GET", "/v1/workspaces/"+ws+"/accounts/alice/orders", nil, &orders)
	if len(orders.Orders) != 1 {
		s.t.Fatalf("alice's orders: %+v", orders.Orders)
	}
	order := orders.Orders[0]
	want := []row{
		{"In", "PURCHASE", "stripe:pi_e2e_alice_2", 100, 104},
		{"Out", "INVOICE_PAYMENT", "invoice:INV-1002", 10, 4},
		{"Out", "INVOICE_PAYMENT", "invoice:INV-1001", 36, 14},
		{"Out", "SERVICE_PURCHASE", "order:" + order.ID, 50, 50},
		{"In", "PURCHASE", "stripe:" + s.cardPI, 100, 100},
	}

	// Through the API.
	txs := s.transactions("alice")
	var got []row
	for i, tx := range txs {
		typ := map[pb.TransactionType]string{pb.TransactionType_TRANSACTION_TYPE_IN: "In", pb.TransactionType_TRANSACTION_TYPE_OUT: "Out"}[tx.GetType()]
		got = append(got, row{typ, strings.TrimPrefix(tx.GetKind().String(), "TRANSACTION_KIND_"), tx.GetReference(), tx.GetAmount(), tx.GetBalanceAfter()})
		if tx.GetCreateTime() == nil || tx.GetCreateTime().AsTime().IsZero() {
			s.t.Errorf("entry %d has no date", i)
		}
		if tx.GetAccountVersion() != int64(len(txs)-i) {
			s.t.Errorf("entry %d has version %d, want %d (newest first, no gaps)", i, tx.GetAccountVersion(), len(txs)-i)
		}
		if i+1 < len(txs) {
			prev := txs[i+1]
			delta := tx.GetAmount()
			if tx.GetType() == pb.TransactionType_TRANSACTION_TYPE_OUT {
				delta = -delta
			}
			if prev.GetBalanceAfter()+delta != tx.GetBalanceAfter() {
				s.t.Errorf("running balance broken at version %d: %d %+d != %d", tx.GetAccountVersion(), prev.GetBalanceAfter(), delta, tx.GetBalanceAfter())
			}
			if tx.GetCreateTime().AsTime().Before(prev.GetCreateTime().AsTime()) {
				s.t.Errorf("version %d is dated before version %d", tx.GetAccountVersion(), prev.GetAccountVersion())
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		s.t.Errorf("alice's history (-want +got):\n%s", diff)
	}

	// Through the operator's CLI, as CSV.
	out := s.ctl.must("history", "--account", "alice", "--csv", "--limit", "0")
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) != len(want)+1 {
		s.t.Fatalf("ledgerctl history --csv: %v\n%s", err, out)
	}
	// The export runs oldest first, with the stored type names.
	var fromCSV []row
	for _, r := range slices.Backward(recs[1:]) {
		amount, _ := strconv.ParseInt(strings.TrimLeft(r[4], "+-"), 10, 64)
		bal, _ := strconv.ParseInt(r[5], 10, 64)
		if _, err := time.Parse(time.RFC3339, r[0]); err != nil {
			s.t.Errorf("CSV date %q: %v", r[0], err)
		}
		fromCSV = append(fromCSV, row{map[string]string{"IN": "In", "OUT": "Out"}[r[1]], r[2], r[3], amount, bal})
	}
	if diff := cmp.Diff(want, fromCSV); diff != "" {
		s.t.Errorf("ledgerctl history --csv (-want +got):\n%s", diff)
	}

	// The agency sees every client's balance.
	accounts := s.ctl.must("accounts")
	for _, want := range []string{"alice", "104", "bob", "380"} {
		if !strings.Contains(accounts, want) {
			s.t.Errorf("ledgerctl accounts lacks %q:\n%s", want, accounts)
		}
	}
}
