package checkout

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/creditledger/creditledger/internal/consumer/consumertest"
)

// The databases earlier releases wrote open with their catalog, orders,
// purchases and payments as they were, and with a new database's schema:
// testdata has the first release's (version 1, orders paid by one debit)
// and the last one's before the consumer kit (version 4).
func TestDatabasesOfEarlierReleasesOpen(t *testing.T) {
	t.Parallel()
	type order struct{ ID, Status, Method, Hold, Tx string }
	tests := map[string]struct {
		orders []order
		cursor int64
	}{
		"checkout-v1.db": {orders: []order{
			{"order-pending", "PENDING", MethodDebit, "", ""},
			{"order-confirmed", "CONFIRMED", MethodDebit, "", "tx-1"},
		}},
		"checkout-v4.db": {orders: []order{
			{"order-held", "HELD", MethodHold, "hold-order-held", ""},
			{"order-confirmed", "CONFIRMED", MethodHold, "hold-order-confirmed", "tx-1"},
		}, cursor: 7},
	}
	for file, want := range tests {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			consumertest.Upgrade(t, filepath.Join("testdata", file), OpenStore, func(st *Store) {
				ctx := t.Context()
				if svc, err := st.GetService(ctx, "agency-1", "logo"); err != nil || svc.Price.String() != "USD 5" || !svc.CreditEligible {
					t.Errorf("service %+v, %v", svc, err)
				}
				orders, err := st.ListOrders(ctx, "agency-1", "client-1")
				if err != nil {
					t.Fatal(err)
				}
				var got []order
				for _, o := range orders {
					got = append(got, order{o.ID, string(o.Status), o.Method, o.HoldID, o.TransactionID})
				}
				if d := cmp.Diff(want.orders, got); d != "" {
					t.Errorf("orders (-want +got):\n%s", d)
				}
				if p, err := st.GetPurchase(ctx, "agency-1", "purchase-bank"); err != nil || p.Status != PurchaseSubmitting || p.PaymentReference != "SEPA-1" {
					t.Errorf("purchase %+v, %v", p, err)
				}
				if ps, err := st.ReceivedPayments(ctx); err != nil || len(ps) != 1 || ps[0].PaymentID != "PAY-1" {
					t.Errorf("payments %+v, %v", ps, err)
				}
				if seq, err := st.Cursor(ctx, "agency-1"); err != nil || seq != want.cursor {
					t.Errorf("cursor %d, %v; want %d", seq, err, want.cursor)
				}
			})
		})
	}
}
