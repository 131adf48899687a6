package invoicing

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/creditledger/creditledger/internal/consumer/consumertest"
)

// The databases earlier releases wrote (testdata: the first release's,
// version 1, and the last one's before the consumer kit, version 3) open,
// keep every invoice as it was, and end with a new database's schema.
func TestDatabasesOfEarlierReleasesOpen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		// the invoice being paid: how, and with which hold; the paid one's
		payingMethod, payingHold, paidHold string
		cursor                             int64
	}{
		{"invoicing-v1.db", MethodDebit, "", "", 0},
		{"invoicing-v3.db", MethodHold, "hold-inv-2", "hold-inv-1", 7},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			consumertest.Upgrade(t, filepath.Join("testdata", tt.file), OpenStore, func(st *Store) {
				got, err := st.List(t.Context(), "agency-1", "", "")
				if err != nil {
					t.Fatal(err)
				}
				type summary struct{ ID, Number, Amount, Status, Key, Tx, Method, Hold string }
				var sums []summary
				for _, i := range got {
					sums = append(sums, summary{i.ID, i.Number, i.Amount.String(), string(i.Status), i.IdempotencyKey, i.TransactionID, i.Method, i.HoldID})
				}
				want := []summary{
					{"inv-3", "INV-3", "USD 3.51", "OPEN", "", "", MethodHold, ""},
					{"inv-2", "INV-2", "USD 3.51", "PAYING", "invoice:inv-2", "", tt.payingMethod, tt.payingHold},
					{"inv-1", "INV-1", "USD 3.51", "PAID", "invoice:inv-1", "tx-1", MethodHold, tt.paidHold},
				}
				if d := cmp.Diff(want, sums); d != "" {
					t.Errorf("invoices (-want +got):\n%s", d)
				}
				if seq, err := st.Cursor(t.Context(), "agency-1"); err != nil || seq != tt.cursor {
					t.Errorf("cursor %d, %v; want %d", seq, err, tt.cursor)
				}
			})
		})
	}
}
