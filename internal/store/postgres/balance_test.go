package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/creditledger/creditledger/internal/ledger"
)

// TestBalanceViewMatchesSeparateReads: the one-statement balance read
// answers what the four reads it replaces answer, for an account with
// expiring grants, a spent grant, pending requests and settings, for one
// never credited, and in a workspace without settings.
func TestBalanceViewMatchesSeparateReads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, Options{})
	now := time.Now().UTC().Truncate(time.Second)
	svc := ledger.NewService(s, ledger.WithClock(func() time.Time { return now }))
	if _, err := svc.UpdateSettings(ctx, "ws", ledger.Settings{
		CreditPaymentsEnabled: true, PaymentMethods: []ledger.PaymentMethod{ledger.MethodBankTransfer}, LowBalanceThreshold: 7,
	}, []string{"credit_payments_enabled", "payment_methods", "low_balance_threshold"}); err != nil {
		t.Fatal(err)
	}
	for i, c := range []ledger.CreditInput{
		{Amount: 30, ExpireTime: now.Add(48 * time.Hour)},
		{Amount: 20, ExpireTime: now.Add(24 * time.Hour)},
		{Amount: 5, ExpireTime: now.Add(24 * time.Hour)},
		{Amount: 100},
	} {
		c.Workspace, c.Account = "ws", "a"
		c.Reference, c.IdempotencyKey = "r", "k"+string(rune('0'+i))
		if _, err := svc.Credit(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.Debit(ctx, ledger.DebitInput{Workspace: "ws", Account: "a", Amount: 22, Reference: "r", IdempotencyKey: "d1"}); err != nil {
		t.Fatal(err)
	}
	for i, amount := range []int64{40, 2} {
		if _, err := svc.SubmitRequest(ctx, ledger.SubmitInput{
			Workspace: "ws", Account: "a", Amount: amount, PaymentMethod: ledger.MethodBankTransfer,
			IdempotencyKey: "s" + string(rune('0'+i)), SubmittedBy: "client",
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ ws, account string }{{"ws", "a"}, {"ws", "never"}, {"other", "b"}} {
		err := s.View(ctx, func(ctx context.Context, tx ledger.ReadTx) error {
			got, err := tx.(ledger.BalanceReader).BalanceView(ctx, c.ws, c.account)
			if err != nil {
				return err
			}
			var want ledger.BalanceView
			if want.Account, err = tx.Account(ctx, c.ws, c.account); err != nil {
				return err
			}
			if want.Settings, err = tx.Settings(ctx, c.ws); err != nil {
				return err
			}
			if want.Pending, err = tx.PendingCredits(ctx, c.ws, c.account); err != nil {
				return err
			}
			if want.Grants, err = tx.Grants(ctx, c.ws, c.account); err != nil {
				return err
			}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%s/%s: BalanceView differs from the separate reads (-want +got):\n%s", c.ws, c.account, diff)
			}
			if c.account == "a" && (len(got.Grants) != 2 || got.Pending != 42 || got.Account.Balance != 133 || !got.Settings.PaymentMethodsSet) {
				t.Errorf("a: %+v; want 2 open grants, 42 pending, balance 133, payment methods set", got)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	b, err := svc.GetBalance(ctx, "ws", "a")
	if err != nil {
		t.Fatal(err)
	}
	if !b.NextExpireTime.Equal(now.Add(24*time.Hour)) || b.NextExpiringCredits != 3 || b.PendingRequestCredits != 42 || !b.CreditPaymentsEnabled {
		t.Errorf("balance %+v: want 3 credits expiring in 24h (20+5 less the 22 spent first), 42 pending, payments on", b)
	}
}
