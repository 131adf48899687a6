package ledger_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/creditledger/creditledger/internal/ledger"
)

// untouchable is a Store that fails the test when used: invalid input must
// be refused before anything reaches the store.
type untouchable struct{ t testing.TB }

func (u untouchable) Write(context.Context, ledger.WriteSet, func(*ledger.Snapshot) (*ledger.Effects, error)) error {
	u.t.Error("store written for invalid input")
	return errors.New("untouchable")
}

func (u untouchable) View(context.Context, func(context.Context, ledger.ReadTx) error) error {
	u.t.Error("store read for invalid input")
	return errors.New("untouchable")
}
func (untouchable) Ping(context.Context) error { return nil }
func (untouchable) Close() error               { return nil }

func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	var e *ledger.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want an invalid-argument *ledger.Error", err)
	}
	if e.Code != ledger.CodeInvalid || e.Reason != ledger.ReasonInvalidArgument {
		t.Fatalf("got %v/%s, want invalid/INVALID_ARGUMENT", e.Code, e.Reason)
	}
	for _, v := range e.Violations {
		if v.Field == field {
			return
		}
	}
	t.Fatalf("no violation on %q: %+v", field, e.Violations)
}

func TestCreditDebitValidation(t *testing.T) {
	t.Parallel()
	svc := ledger.NewService(untouchable{t})
	ctx := context.Background()
	ok := ledger.CreditInput{Workspace: "ws", Account: "acct", Amount: 1, IdempotencyKey: "k"}
	bigMD := map[string]string{}
	for i := 0; i < 17; i++ {
		bigMD[strings.Repeat("k", i+1)] = "v"
	}
	for _, tc := range []struct {
		name  string
		field string
		edit  func(*ledger.CreditInput)
	}{
		{"empty workspace", "workspace", func(in *ledger.CreditInput) { in.Workspace = "" }},
		{"workspace with slash", "workspace", func(in *ledger.CreditInput) { in.Workspace = "a/b" }},
		{"workspace too long", "workspace", func(in *ledger.CreditInput) { in.Workspace = strings.Repeat("w", 65) }},
		{"workspace starting with a dash", "workspace", func(in *ledger.CreditInput) { in.Workspace = "-ws" }},
		{"empty account", "account", func(in *ledger.CreditInput) { in.Account = "" }},
		{"account with space", "account", func(in *ledger.CreditInput) { in.Account = "a b" }},
		{"account with unicode", "account", func(in *ledger.CreditInput) { in.Account = "ä" }},
		{"zero amount", "amount", func(in *ledger.CreditInput) { in.Amount = 0 }},
		{"negative amount", "amount", func(in *ledger.CreditInput) { in.Amount = -5 }},
		{"min int64 amount", "amount", func(in *ledger.CreditInput) { in.Amount = math.MinInt64 }},
		{"amount above the maximum", "amount", func(in *ledger.CreditInput) { in.Amount = ledger.MaxAmount + 1 }},
		{"max int64 amount", "amount", func(in *ledger.CreditInput) { in.Amount = math.MaxInt64 }},
		{"amount with package", "amount", func(in *ledger.CreditInput) { in.PackageID = "gold" }},
		{"bad package id", "package_id", func(in *ledger.CreditInput) { in.Amount, in.PackageID = 0, "no/pe" }},
		{"missing key", "idempotency_key", func(in *ledger.CreditInput) { in.IdempotencyKey = "" }},
		{"key too long", "idempotency_key", func(in *ledger.CreditInput) { in.IdempotencyKey = strings.Repeat("k", 256) }},
		{"key with newline", "idempotency_key", func(in *ledger.CreditInput) { in.IdempotencyKey = "a\nb" }},
		{"key with non-ascii", "idempotency_key", func(in *ledger.CreditInput) { in.IdempotencyKey = "clé" }},
		{"reference too long", "reference", func(in *ledger.CreditInput) { in.Reference = strings.Repeat("r", 257) }},
		{"reference with control char", "reference", func(in *ledger.CreditInput) { in.Reference = "a\x00b" }},
		{"reference with C1 control", "reference", func(in *ledger.CreditInput) { in.Reference = "a\u0085b" }},
		{"reference with right-to-left override", "reference", func(in *ledger.CreditInput) { in.Reference = "invoice:\u202efdp.exe" }},
		{"reference with bidi isolate", "reference", func(in *ledger.CreditInput) { in.Reference = "a\u2067b" }},
		{"metadata value with NUL", "metadata", func(in *ledger.CreditInput) { in.Metadata = map[string]string{"k": "a\x00b"} }},
		{"metadata value with newline", "metadata", func(in *ledger.CreditInput) { in.Metadata = map[string]string{"k": "forged\nrow"} }},
		{"metadata value with override", "metadata", func(in *ledger.CreditInput) { in.Metadata = map[string]string{"k": "\u202e"} }},
		{"reference invalid utf-8", "reference", func(in *ledger.CreditInput) { in.Reference = "\xff" }},
		{"too many metadata entries", "metadata", func(in *ledger.CreditInput) { in.Metadata = bigMD }},
		{"metadata value too large", "metadata", func(in *ledger.CreditInput) { in.Metadata = map[string]string{"k": strings.Repeat("v", 257)} }},
		{"metadata empty key", "metadata", func(in *ledger.CreditInput) { in.Metadata = map[string]string{"": "v"} }},
		{"metadata bad key", "metadata", func(in *ledger.CreditInput) { in.Metadata = map[string]string{"a b": "v"} }},
		{"negative expected version", "expected_version", func(in *ledger.CreditInput) { v := int64(-1); in.ExpectedVersion = &v }},
		{"debit kind on credit", "kind", func(in *ledger.CreditInput) { in.Kind = ledger.KindServicePurchase }},
		{"approval kind on credit", "kind", func(in *ledger.CreditInput) { in.Kind = ledger.KindRequestApproved }},
		{"unknown kind", "kind", func(in *ledger.CreditInput) { in.Kind = ledger.Kind(42) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := ok
			tc.edit(&in)
			_, err := svc.Credit(ctx, in)
			wantInvalid(t, err, tc.field)
		})
	}
	t.Run("limits are inclusive", func(t *testing.T) {
		// Exactly at the bounds is valid, so validation passes and the store is reached.
		reached := false
		svc := ledger.NewService(storeFunc(func() { reached = true }))
		md := map[string]string{}
		for i := 0; i < 16; i++ {
			md[strings.Repeat("k", i+1)] = strings.Repeat("v", 256)
		}
		_, _ = svc.Credit(ctx, ledger.CreditInput{
			Workspace: strings.Repeat("w", 64), Account: "a.b_c-d", Amount: ledger.MaxAmount,
			IdempotencyKey: strings.Repeat("~", 255), Reference: strings.Repeat("é", 256), Metadata: md,
		})
		if !reached {
			t.Fatal("valid input at the limits was refused")
		}
	})

	okDebit := ledger.DebitInput{Workspace: "ws", Account: "acct", Amount: 1, IdempotencyKey: "k"}
	for _, tc := range []struct {
		name  string
		field string
		edit  func(*ledger.DebitInput)
	}{
		{"zero", "amount", func(in *ledger.DebitInput) { in.Amount = 0 }},
		{"negative", "amount", func(in *ledger.DebitInput) { in.Amount = -1 }},
		{"above the maximum", "amount", func(in *ledger.DebitInput) { in.Amount = ledger.MaxAmount + 1 }},
		{"credit kind on debit", "kind", func(in *ledger.DebitInput) { in.Kind = ledger.KindPurchase }},
		{"refund kind on debit", "kind", func(in *ledger.DebitInput) { in.Kind = ledger.KindRefund }},
		{"no key", "idempotency_key", func(in *ledger.DebitInput) { in.IdempotencyKey = "" }},
	} {
		t.Run("debit "+tc.name, func(t *testing.T) {
			in := okDebit
			tc.edit(&in)
			_, err := svc.Debit(ctx, in)
			wantInvalid(t, err, tc.field)
		})
	}
}

// storeFunc is a Store whose every call records that it was reached and fails.
type storeFunc func()

func (f storeFunc) Write(context.Context, ledger.WriteSet, func(*ledger.Snapshot) (*ledger.Effects, error)) error {
	f()
	return ledger.UnavailableError(errors.New("test store"))
}

func (f storeFunc) View(context.Context, func(context.Context, ledger.ReadTx) error) error {
	f()
	return ledger.UnavailableError(errors.New("test store"))
}
func (storeFunc) Ping(context.Context) error { return nil }
func (storeFunc) Close() error               { return nil }

func TestOtherValidation(t *testing.T) {
	t.Parallel()
	svc := ledger.NewService(untouchable{t})
	ctx := context.Background()
	usd := ledger.Money{Currency: "USD", Units: 1}
	for _, tc := range []struct {
		name  string
		field string
		call  func() error
	}{
		{"submit without method", "payment_method", func() error {
			_, err := svc.SubmitRequest(ctx, ledger.SubmitInput{Workspace: "w", Account: "a", Amount: 1, IdempotencyKey: "k"})
			return err
		}},
		{"submit note too long", "note", func() error {
			_, err := svc.SubmitRequest(ctx, ledger.SubmitInput{
				Workspace: "w", Account: "a", Amount: 1, IdempotencyKey: "k",
				PaymentMethod: ledger.MethodCrypto, Note: strings.Repeat("n", 1025),
			})
			return err
		}},
		{"submit zero amount", "amount", func() error {
			_, err := svc.SubmitRequest(ctx, ledger.SubmitInput{Workspace: "w", Account: "a", IdempotencyKey: "k", PaymentMethod: ledger.MethodCrypto})
			return err
		}},
		{"submit amount above the maximum", "amount", func() error {
			_, err := svc.SubmitRequest(ctx, ledger.SubmitInput{
				Workspace: "w", Account: "a", Amount: ledger.MaxAmount + 1, IdempotencyKey: "k", PaymentMethod: ledger.MethodCrypto,
			})
			return err
		}},
		{"package credits above the maximum", "credit_package.credits", func() error {
			_, err := svc.CreatePackage(ctx, "w", "", ledger.Package{DisplayName: "Huge", Credits: ledger.MaxAmount + 1, Price: usd})
			return err
		}},
		{"check credits above the maximum", "credits", func() error {
			_, err := svc.CheckCreditPayment(ctx, ledger.CheckInput{Workspace: "w", Account: "a", Credits: ledger.MaxAmount + 1})
			return err
		}},
		{"decide without decision", "decision", func() error {
			_, err := svc.DecideRequest(ctx, ledger.DecideInput{Workspace: "w", RequestID: "r", DecidedBy: "x", IdempotencyKey: "k"})
			return err
		}},
		{"decide without decided_by", "decided_by", func() error {
			_, err := svc.DecideRequest(ctx, ledger.DecideInput{Workspace: "w", RequestID: "r", Decision: ledger.DecisionAccept, IdempotencyKey: "k"})
			return err
		}},
		{"decide without key", "idempotency_key", func() error {
			_, err := svc.DecideRequest(ctx, ledger.DecideInput{Workspace: "w", RequestID: "r", Decision: ledger.DecisionAccept, DecidedBy: "x"})
			return err
		}},
		{"list negative page size", "page_size", func() error {
			_, err := svc.ListTransactions(ctx, ledger.ListTransactionsInput{Workspace: "w", Account: "a", PageSize: -1})
			return err
		}},
		{"list unknown type", "type", func() error {
			_, err := svc.ListTransactions(ctx, ledger.ListTransactionsInput{Workspace: "w", Account: "a", Type: 9})
			return err
		}},
		{"balance bad account", "account", func() error { _, err := svc.GetBalance(ctx, "w", "a/b"); return err }},
		{"quote lower-case currency", "price.currency_code", func() error {
			_, err := svc.Quote(ctx, "w", ledger.Money{Currency: "usd", Units: 1})
			return err
		}},
		{"quote negative", "price", func() error {
			_, err := svc.Quote(ctx, "w", ledger.Money{Currency: "USD", Units: -1})
			return err
		}},
		{"quote nanos out of range", "price.nanos", func() error {
			_, err := svc.Quote(ctx, "w", ledger.Money{Currency: "USD", Nanos: 1_000_000_000})
			return err
		}},
		{"check both credits and price", "cost", func() error {
			_, err := svc.CheckCreditPayment(ctx, ledger.CheckInput{Workspace: "w", Account: "a", Credits: 1, Price: &usd})
			return err
		}},
		{"check nothing", "credits", func() error {
			_, err := svc.CheckCreditPayment(ctx, ledger.CheckInput{Workspace: "w", Account: "a"})
			return err
		}},
		{"rate with exponent", "rate", func() error { _, err := svc.SetConversionRate(ctx, "w", "USD", "1e2"); return err }},
		{"rate zero", "rate", func() error { _, err := svc.SetConversionRate(ctx, "w", "USD", "0.000"); return err }},
		{"settings unknown mask path", "update_mask", func() error {
			_, err := svc.UpdateSettings(ctx, "w", ledger.Settings{}, []string{"nope"})
			return err
		}},
		{"package without name", "credit_package.display_name", func() error {
			_, err := svc.CreatePackage(ctx, "w", "", ledger.Package{Credits: 1, Price: usd})
			return err
		}},
		{"requests bad order", "order_by", func() error {
			_, err := svc.ListRequests(ctx, ledger.ListRequestsInput{Workspace: "w", OrderBy: "amount desc"})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { wantInvalid(t, tc.call(), tc.field) })
	}
}

func TestErrorsIs(t *testing.T) {
	t.Parallel()
	err := ledger.NotFoundError("request", "r1")
	if !errors.Is(err, ledger.ErrNotFound) || errors.Is(err, ledger.ErrInsufficientCredits) {
		t.Fatal("errors.Is does not match on code and reason")
	}
	wrapped := errors.Join(errors.New("context"), ledger.ErrConflict)
	if !errors.Is(wrapped, ledger.ErrConflict) {
		t.Fatal("wrapped conflict not recognised")
	}
	if ledger.ErrorOf(errors.New("boom")).Code != ledger.CodeInternal {
		t.Fatal("unknown errors must become internal")
	}
}
