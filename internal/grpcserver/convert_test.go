package grpcserver

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/type/money"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledger"
)

func TestEnumsRoundTrip(t *testing.T) {
	t.Parallel()
	// Every value the API defines maps to a domain value and back; the
	// numbering of the two is deliberately not relied on.
	for n := range pb.TransactionKind_name {
		var f fieldErrors
		k := pb.TransactionKind(n)
		if got := toProtoKind(fromProtoKind(&f, "kind", k)); got != k || f.err() != nil {
			t.Errorf("kind %v → %v (%v)", k, got, f.err())
		}
	}
	for n := range pb.TransactionType_name {
		var f fieldErrors
		v := pb.TransactionType(n)
		if got := toProtoTxType(fromProtoTxType(&f, "type", v)); got != v || f.err() != nil {
			t.Errorf("type %v → %v", v, got)
		}
	}
	for n := range pb.PaymentMethod_name {
		var f fieldErrors
		v := pb.PaymentMethod(n)
		if got := toProtoPaymentMethod(fromProtoPaymentMethod(&f, "payment_method", v)); got != v || f.err() != nil {
			t.Errorf("method %v → %v", v, got)
		}
	}
	for n := range pb.RequestStatus_name {
		var f fieldErrors
		v := pb.RequestStatus(n)
		if got := toProtoRequestStatus(fromProtoRequestStatus(&f, "status", v)); got != v || f.err() != nil {
			t.Errorf("status %v → %v", v, got)
		}
	}
	for n := range pb.HoldStatus_name {
		var f fieldErrors
		v := pb.HoldStatus(n)
		if got := toProtoHoldStatus(fromProtoHoldStatus(&f, "status", v)); got != v || f.err() != nil {
			t.Errorf("hold status %v → %v", v, got)
		}
	}
	// And every domain kind and hold status has its API value.
	for k := ledger.KindPurchase; k <= ledger.KindExpiry; k++ {
		if toProtoKind(k) == pb.TransactionKind_TRANSACTION_KIND_UNSPECIFIED {
			t.Errorf("domain kind %v has no API value", k)
		}
	}
	for _, m := range ledger.AllPaymentMethods() {
		if toProtoPaymentMethod(m) == pb.PaymentMethod_PAYMENT_METHOD_UNSPECIFIED {
			t.Errorf("domain payment method %v has no API value", m)
		}
	}
	for st := ledger.StatusPending; st <= ledger.StatusCancelled; st++ {
		if toProtoRequestStatus(st) == pb.RequestStatus_REQUEST_STATUS_UNSPECIFIED {
			t.Errorf("domain request status %v has no API value", st)
		}
	}
	for h := ledger.HoldActive; h <= ledger.HoldExpired; h++ {
		if toProtoHoldStatus(h) == pb.HoldStatus_HOLD_STATUS_UNSPECIFIED {
			t.Errorf("domain hold status %v has no API value", h)
		}
	}
	for n, want := range map[pb.Decision]ledger.Decision{
		pb.Decision_DECISION_UNSPECIFIED: ledger.DecisionUnspecified,
		pb.Decision_DECISION_ACCEPT:      ledger.DecisionAccept,
		pb.Decision_DECISION_REJECT:      ledger.DecisionReject,
	} {
		var f fieldErrors
		if got := fromProtoDecision(&f, "decision", n); got != want || f.err() != nil {
			t.Errorf("decision %v → %v", n, got)
		}
	}
}

func TestUnknownEnumsAreInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		conv  func() error
		field string
	}{
		{"credit kind", func() error { _, err := fromProtoCredit(&pb.CreditRequest{Kind: 42}); return err }, "kind"},
		{"debit kind", func() error { _, err := fromProtoDebit(&pb.DebitRequest{Kind: -1}); return err }, "kind"},
		{"history type", func() error {
			_, err := fromProtoListTransactions(&pb.ListTransactionsRequest{Type: 3})
			return err
		}, "type"},
		{"history kind", func() error {
			_, err := fromProtoListTransactions(&pb.ListTransactionsRequest{Kind: 42})
			return err
		}, "kind"},
		{"payment method", func() error {
			_, err := fromProtoSubmit(&pb.SubmitRequestRequest{PaymentMethod: 9})
			return err
		}, "payment_method"},
		{"decision", func() error { _, err := fromProtoDecide(&pb.DecideRequestRequest{Decision: 5}); return err }, "decision"},
		{"status filter", func() error {
			_, err := fromProtoListRequests(&pb.ListRequestsRequest{Status: 5})
			return err
		}, "status"},
		{"offered payment method", func() error {
			_, err := fromProtoSettings(&pb.Settings{PaymentMethods: []pb.PaymentMethod{pb.PaymentMethod_PAYMENT_METHOD_CRYPTO, 7}})
			return err
		}, "settings.payment_methods"},
		{"hold kind", func() error { _, err := fromProtoCreateHold(&pb.CreateHoldRequest{Kind: 99}); return err }, "kind"},
		{"hold status filter", func() error {
			_, err := fromProtoListHolds(&pb.ListHoldsRequest{Status: 5})
			return err
		}, "status"},
		{"invalid ttl", func() error {
			_, err := fromProtoCreateHold(&pb.CreateHoldRequest{Ttl: &durationpb.Duration{Seconds: 1, Nanos: -1}})
			return err
		}, "ttl"},
		{"invalid hold expire time", func() error {
			_, err := fromProtoCreateHold(&pb.CreateHoldRequest{ExpireTime: &timestamppb.Timestamp{Nanos: -1}})
			return err
		}, "expire_time"},
		{"invalid credit expire time", func() error {
			_, err := fromProtoCredit(&pb.CreditRequest{ExpireTime: &timestamppb.Timestamp{Seconds: 1 << 50}})
			return err
		}, "expire_time"},
		{"invalid package validity", func() error {
			_, err := fromProtoPackage(&pb.CreditPackage{Validity: &durationpb.Duration{Seconds: -1, Nanos: 1}})
			return err
		}, "credit_package.validity"},
		{"statement start", func() error {
			_, _, err := fromProtoPeriod(&timestamppb.Timestamp{Nanos: -1}, timestamppb.Now())
			return err
		}, "start_time"},
		{"invalid timestamp", func() error {
			_, err := fromProtoListTransactions(&pb.ListTransactionsRequest{StartTime: &timestamppb.Timestamp{Nanos: -1}})
			return err
		}, "start_time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := ledger.ErrorOf(tt.conv())
			if e.Code != ledger.CodeInvalid || e.Reason != ledger.ReasonInvalidArgument ||
				len(e.Violations) != 1 || e.Violations[0].Field != tt.field {
				t.Fatalf("error = %+v, want one INVALID_ARGUMENT violation on %s", e, tt.field)
			}
		})
	}
}

func TestFromProtoCredit(t *testing.T) {
	t.Parallel()
	r := &pb.CreditRequest{
		Workspace: "acme", Account: "alice", Amount: 100, Kind: pb.TransactionKind_TRANSACTION_KIND_REFUND,
		Reference: "stripe:pi_1", IdempotencyKey: "k1", ExpectedVersion: proto.Int64(0), Metadata: map[string]string{"a": "b"},
	}
	got, err := fromProtoCredit(r)
	if err != nil {
		t.Fatal(err)
	}
	zero := int64(0)
	want := ledger.CreditInput{
		Workspace: "acme", Account: "alice", Amount: 100, Kind: ledger.KindRefund, Reference: "stripe:pi_1",
		IdempotencyKey: "k1", ExpectedVersion: &zero, Metadata: map[string]string{"a": "b"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// The domain holds its own copies: changing the message afterwards
	// changes nothing.
	*r.ExpectedVersion = 7
	r.Metadata["a"] = "changed"
	if *got.ExpectedVersion != 0 || got.Metadata["a"] != "b" {
		t.Error("domain input aliases the generated message")
	}
	// Unset optional stays unset: "expected version 0" and "no expectation"
	// are different requests.
	got, _ = fromProtoCredit(&pb.CreditRequest{})
	if got.ExpectedVersion != nil {
		t.Error("unset expected_version became a value")
	}
}

func TestFromProtoCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   *pb.CheckCreditPaymentRequest
		want ledger.CheckInput
	}{
		{
			"credits", &pb.CheckCreditPaymentRequest{Workspace: "w", Account: "a", Cost: &pb.CheckCreditPaymentRequest_Credits{Credits: 12}},
			ledger.CheckInput{Workspace: "w", Account: "a", Credits: 12},
		},
		{
			"price", &pb.CheckCreditPaymentRequest{Workspace: "w", Account: "a", Cost: &pb.CheckCreditPaymentRequest_Price{Price: &money.Money{CurrencyCode: "USD", Units: 3, Nanos: 510_000_000}}},
			ledger.CheckInput{Workspace: "w", Account: "a", Price: &ledger.Money{Currency: "USD", Units: 3, Nanos: 510_000_000}},
		},
		{
			"price oneof set to nil", &pb.CheckCreditPaymentRequest{Workspace: "w", Account: "a", Cost: &pb.CheckCreditPaymentRequest_Price{}},
			ledger.CheckInput{Workspace: "w", Account: "a", Price: &ledger.Money{}},
		},
		{"unset", &pb.CheckCreditPaymentRequest{Workspace: "w", Account: "a"}, ledger.CheckInput{Workspace: "w", Account: "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, fromProtoCheck(tt.in)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestTimesMoneyMasks(t *testing.T) {
	t.Parallel()
	if toProtoTime(time.Time{}) != nil {
		t.Error("zero time must be unset")
	}
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	var f fieldErrors
	if got := fromProtoTime(&f, "t", toProtoTime(ts)); !got.Equal(ts) || f.err() != nil {
		t.Errorf("time round trip: %v", got)
	}
	if got := fromProtoTime(&f, "t", nil); !got.IsZero() {
		t.Error("unset timestamp must be the zero time")
	}
	m := ledger.Money{Currency: "EUR", Units: 12, Nanos: 340_000_000}
	if got := fromProtoMoney(toProtoMoney(m)); got != m {
		t.Errorf("money round trip: %v", got)
	}
	if fromProtoMoney(nil) != (ledger.Money{}) || toProtoMoney(ledger.Money{}) != nil {
		t.Error("unset money must be the zero Money and back")
	}
	if got := fromProtoFieldMask(&fieldmaskpb.FieldMask{Paths: []string{"credits", "price"}}); !cmp.Equal(got, []string{"credits", "price"}) {
		t.Errorf("mask = %v", got)
	}
	if fromProtoFieldMask(nil) != nil {
		t.Error("unset mask must be nil")
	}
}

func TestToProtoTransaction(t *testing.T) {
	t.Parallel()
	ct := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	got := toProtoTransaction(ledger.Transaction{
		ID: "t1", Workspace: "acme", Account: "alice", Type: ledger.TypeOut, Kind: ledger.KindInvoicePayment,
		Amount: 5, BalanceAfter: 95, AccountVersion: 2, Reference: "invoice:INV-1", IdempotencyKey: "k",
		Metadata: map[string]string{"x": "y"}, PackageID: "p", RequestID: "r", CreateTime: ct,
	})
	want := &pb.Transaction{
		Id: "t1", Workspace: "acme", Account: "alice", Type: pb.TransactionType_TRANSACTION_TYPE_OUT,
		Kind: pb.TransactionKind_TRANSACTION_KIND_INVOICE_PAYMENT, Amount: 5, BalanceAfter: 95, AccountVersion: 2,
		Reference: "invoice:INV-1", IdempotencyKey: "k", Metadata: map[string]string{"x": "y"}, PackageId: "p", RequestId: "r",
		CreateTime: timestamppb.New(ct),
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	rate, err := ledger.ParseDecimal("9.5")
	if err != nil {
		t.Fatal(err)
	}
	if r := toProtoConversionRate(ledger.ConversionRate{Currency: "USD", Rate: rate}); r.GetRate() != "9.5" || r.GetCreateTime() != nil {
		t.Errorf("rate = %v", r)
	}
}

// BenchmarkConvertDebit measures the transport's share of a Debit: the
// request into the domain and the transaction back into proto.
func BenchmarkConvertDebit(b *testing.B) {
	req := &pb.DebitRequest{
		Workspace: "agency-42", Account: "client-7", Amount: 350, IdempotencyKey: "checkout-order:8c1e9f",
		Kind: pb.TransactionKind_TRANSACTION_KIND_SERVICE_PURCHASE, Reference: "order:8c1e9f",
		Metadata: map[string]string{"order": "42"},
	}
	tx := ledger.Transaction{
		ID: "tx_01", Workspace: "agency-42", Account: "client-7", Type: ledger.TypeOut, Kind: ledger.KindServicePurchase,
		Amount: 350, BalanceAfter: 650, AccountVersion: 12, Reference: "order:8c1e9f", IdempotencyKey: "checkout-order:8c1e9f",
		Metadata: map[string]string{"order": "42"}, CreateTime: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC),
	}
	for b.Loop() {
		if _, err := fromProtoDebit(req); err != nil {
			b.Fatal(err)
		}
		_ = toProtoTransaction(tx)
	}
}

func TestHoldsReversalsExpiryConverters(t *testing.T) {
	t.Parallel()
	ct := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	exp := ct.Add(time.Hour)

	t.Run("credit expire time", func(t *testing.T) {
		t.Parallel()
		got, err := fromProtoCredit(&pb.CreditRequest{Workspace: "w", Account: "a", Amount: 1, ExpireTime: timestamppb.New(exp)})
		if err != nil || !got.ExpireTime.Equal(exp) {
			t.Errorf("ExpireTime = %v, %v", got.ExpireTime, err)
		}
		if got, _ := fromProtoCredit(&pb.CreditRequest{}); !got.ExpireTime.IsZero() {
			t.Error("unset expire_time must be the zero time (never)")
		}
	})

	t.Run("create hold", func(t *testing.T) {
		t.Parallel()
		got, err := fromProtoCreateHold(&pb.CreateHoldRequest{
			Workspace: "w", Account: "a", Amount: 30, Kind: pb.TransactionKind_TRANSACTION_KIND_INVOICE_PAYMENT,
			Reference: "order:1", ExpireTime: timestamppb.New(exp), Ttl: durationpb.New(10 * time.Minute),
			IdempotencyKey: "k", Metadata: map[string]string{"a": "b"},
		})
		if err != nil {
			t.Fatal(err)
		}
		want := ledger.CreateHoldInput{
			Workspace: "w", Account: "a", Amount: 30, Kind: ledger.KindInvoicePayment, Reference: "order:1",
			ExpireTime: exp, TTL: 10 * time.Minute, IdempotencyKey: "k", Metadata: map[string]string{"a": "b"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})

	t.Run("list holds and reverse", func(t *testing.T) {
		t.Parallel()
		got, err := fromProtoListHolds(&pb.ListHoldsRequest{Workspace: "w", Account: "a", Status: pb.HoldStatus_HOLD_STATUS_ACTIVE, PageSize: 7, PageToken: "p"})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(ledger.ListHoldsInput{Workspace: "w", Account: "a", Status: ledger.HoldActive, PageSize: 7, PageToken: "p"}, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		rev := fromProtoReverse(&pb.ReverseTransactionRequest{
			Workspace: "w", TransactionId: "t1", Amount: 5, Reason: "refund", Reference: "r", IdempotencyKey: "k", Metadata: map[string]string{"x": "y"},
		})
		if diff := cmp.Diff(ledger.ReverseInput{
			Workspace: "w", TransactionID: "t1", Amount: 5, Reason: "refund", Reference: "r", IdempotencyKey: "k", Metadata: map[string]string{"x": "y"},
		}, rev); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})

	t.Run("hold", func(t *testing.T) {
		t.Parallel()
		got := toProtoHold(ledger.Hold{
			ID: "h1", Workspace: "w", Account: "a", Amount: 30, Kind: ledger.KindServicePurchase, Reference: "order:1",
			Metadata: map[string]string{"a": "b"}, Status: ledger.HoldCaptured, ExpireTime: exp, CapturedAmount: 20,
			TransactionID: "t9", IdempotencyKey: "k", CreateTime: ct, UpdateTime: ct.Add(time.Minute),
		})
		want := &pb.Hold{
			Id: "h1", Workspace: "w", Account: "a", Amount: 30, Kind: pb.TransactionKind_TRANSACTION_KIND_SERVICE_PURCHASE,
			Reference: "order:1", Metadata: map[string]string{"a": "b"}, Status: pb.HoldStatus_HOLD_STATUS_CAPTURED,
			ExpireTime: timestamppb.New(exp), CapturedAmount: 20, TransactionId: "t9", IdempotencyKey: "k",
			CreateTime: timestamppb.New(ct), UpdateTime: timestamppb.New(ct.Add(time.Minute)),
		}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if toProtoHold(ledger.Hold{Status: ledger.HoldActive}).GetUpdateTime() != nil {
			t.Error("an active hold's update_time must be unset")
		}
	})

	t.Run("transaction links", func(t *testing.T) {
		t.Parallel()
		got := toProtoTransaction(ledger.Transaction{
			ID: "t2", Type: ledger.TypeIn, Kind: ledger.KindReversal, ReversesTransactionID: "t1", ReversedAmount: 0,
			HoldID: "h1", ExpireTime: exp,
		})
		if got.GetKind() != pb.TransactionKind_TRANSACTION_KIND_REVERSAL || got.GetReversesTransactionId() != "t1" ||
			got.GetHoldId() != "h1" || !got.GetExpireTime().AsTime().Equal(exp) {
			t.Errorf("transaction = %v", got)
		}
		if got := toProtoTransaction(ledger.Transaction{ReversedAmount: 40}); got.GetReversedAmount() != 40 || got.GetExpireTime() != nil {
			t.Errorf("transaction = %v", got)
		}
	})

	t.Run("balance", func(t *testing.T) {
		t.Parallel()
		got := toProtoBalance(ledger.Balance{
			Account:        ledger.Account{Workspace: "w", ID: "a", Balance: 100, Held: 30, Version: 3},
			NextExpireTime: exp, NextExpiringCredits: 25,
		})
		if got.GetBalance() != 100 || got.GetHeld() != 30 || got.GetAvailable() != 70 ||
			got.GetNextExpiringCredits() != 25 || !got.GetNextExpireTime().AsTime().Equal(exp) {
			t.Errorf("balance = %v", got)
		}
		if got := toProtoBalance(ledger.Balance{Account: ledger.Account{Balance: 5}}); got.GetAvailable() != 5 || got.GetNextExpireTime() != nil {
			t.Errorf("balance without holds or expiry = %v", got)
		}
	})

	t.Run("package validity", func(t *testing.T) {
		t.Parallel()
		in, err := fromProtoPackage(&pb.CreditPackage{DisplayName: "Pro", Credits: 10, Validity: durationpb.New(90 * 24 * time.Hour)})
		if err != nil || in.Validity != 90*24*time.Hour {
			t.Fatalf("Validity = %v, %v", in.Validity, err)
		}
		if got := toProtoPackage(ledger.Package{Validity: 90 * 24 * time.Hour}).GetValidity().AsDuration(); got != 90*24*time.Hour {
			t.Errorf("validity = %v", got)
		}
		if in, _ := fromProtoPackage(&pb.CreditPackage{}); in.Validity != 0 {
			t.Error("unset validity must be 0 (never expires)")
		}
		if toProtoPackage(ledger.Package{}).GetValidity() != nil {
			t.Error("zero validity must be unset")
		}
	})

	t.Run("statement", func(t *testing.T) {
		t.Parallel()
		got := toProtoStatement(ledger.Statement{
			Workspace: "w", Account: "a", Start: ct, End: exp, OpeningBalance: 10, ClosingBalance: 60,
			TotalIn: 100, TotalOut: 50, Count: 3,
			Lines: []ledger.StatementLine{
				{Type: ledger.TypeIn, Kind: ledger.KindPurchase, Amount: 100, Count: 1},
				{Type: ledger.TypeOut, Kind: ledger.KindExpiry, Amount: 50, Count: 2},
			},
		})
		want := &pb.Statement{
			Workspace: "w", Account: "a", StartTime: timestamppb.New(ct), EndTime: timestamppb.New(exp),
			OpeningBalance: 10, ClosingBalance: 60, TotalIn: 100, TotalOut: 50, TransactionCount: 3,
			Lines: []*pb.StatementLine{
				{Type: pb.TransactionType_TRANSACTION_TYPE_IN, Kind: pb.TransactionKind_TRANSACTION_KIND_PURCHASE, Amount: 100, Count: 1},
				{Type: pb.TransactionType_TRANSACTION_TYPE_OUT, Kind: pb.TransactionKind_TRANSACTION_KIND_EXPIRY, Amount: 50, Count: 2},
			},
		}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		start, end, err := fromProtoPeriod(timestamppb.New(ct), timestamppb.New(exp))
		if err != nil || !start.Equal(ct) || !end.Equal(exp) {
			t.Errorf("period = %v %v %v", start, end, err)
		}
	})
}

func TestSettingsConverters(t *testing.T) {
	t.Parallel()
	all := []pb.PaymentMethod{
		pb.PaymentMethod_PAYMENT_METHOD_BANK_TRANSFER, pb.PaymentMethod_PAYMENT_METHOD_CRYPTO,
		pb.PaymentMethod_PAYMENT_METHOD_STRIPE, pb.PaymentMethod_PAYMENT_METHOD_PAYPAL,
	}
	for _, tt := range []struct {
		name string
		in   ledger.Settings
		want *pb.Settings
	}{
		{"never chosen: every method", ledger.Settings{Workspace: "acme"}, &pb.Settings{Workspace: "acme", PaymentMethods: all}},
		{"chosen", ledger.Settings{
			Workspace: "acme", PaymentMethodsSet: true, PaymentMethods: []ledger.PaymentMethod{ledger.MethodCrypto, ledger.MethodPayPal},
			LowBalanceThreshold: 250,
		}, &pb.Settings{
			Workspace:           "acme",
			PaymentMethods:      []pb.PaymentMethod{pb.PaymentMethod_PAYMENT_METHOD_CRYPTO, pb.PaymentMethod_PAYMENT_METHOD_PAYPAL},
			LowBalanceThreshold: 250,
		}},
		{"none", ledger.Settings{Workspace: "acme", PaymentMethodsSet: true}, &pb.Settings{Workspace: "acme", PaymentMethods: []pb.PaymentMethod{}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, toProtoSettings(tt.in), protocmp.Transform()); diff != "" {
				t.Errorf("toProtoSettings (-want +got):\n%s", diff)
			}
		})
	}
	in, err := fromProtoSettings(&pb.Settings{
		Workspace: "ignored", CreditPaymentsEnabled: true, PaymentMethods: []pb.PaymentMethod{pb.PaymentMethod_PAYMENT_METHOD_STRIPE},
		LowBalanceThreshold: 9,
	})
	want := ledger.Settings{CreditPaymentsEnabled: true, PaymentMethods: []ledger.PaymentMethod{ledger.MethodStripe}, LowBalanceThreshold: 9}
	if err != nil || !cmp.Equal(in, want) {
		t.Errorf("fromProtoSettings = %+v, %v; want %+v", in, err, want)
	}
}
