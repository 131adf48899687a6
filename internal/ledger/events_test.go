package ledger_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/creditledger/creditledger/internal/ledger"
)

// TestEventDataRoundTrip: what a store keeps of an event, and the event it
// reads back from that and its columns. An entry is kept as its ID alone,
// encoded as json.Marshal would.
func TestEventDataRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 10, 0, 0, 123000, time.UTC)
	tests := []struct {
		name     string
		ev       ledger.Event
		wantData string
	}{
		{
			"entry",
			ledger.Event{Type: ledger.EventTransactionPosted, Account: "a", CreateTime: at, TransactionID: `t"1`},
			`{"TransactionID":"t\"1"}`,
		},
		{
			"entry given whole",
			ledger.Event{Type: ledger.EventCreditsExpired, Account: "a", CreateTime: at, Transaction: &ledger.Transaction{ID: "t2", Amount: 5}},
			`{"TransactionID":"t2"}`,
		},
		{
			"balance low",
			ledger.Event{Type: ledger.EventBalanceLow, Account: "a", CreateTime: at, BalanceLow: &ledger.BalanceLow{Balance: 9, Available: 4, Threshold: 10}},
			`{"BalanceLow":{"Balance":9,"Available":4,"Threshold":10}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data, err := ledger.EncodeEventData(tt.ev)
			if err != nil || string(data) != tt.wantData {
				t.Fatalf("EncodeEventData = %s, %v; want %s", data, err, tt.wantData)
			}
			if !json.Valid(data) {
				t.Fatalf("%s is not JSON", data)
			}
			got, err := ledger.DecodeEventData(ledger.StoredEvent{
				Workspace: "ws", Sequence: 7, Type: string(tt.ev.Type), Account: tt.ev.Account, CreateTime: at, Data: data,
			})
			if err != nil {
				t.Fatal(err)
			}
			want := tt.ev
			want.Workspace, want.Sequence = "ws", 7
			if want.Transaction != nil {
				want.TransactionID, want.Transaction = want.Transaction.ID, nil
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("decoded (-want +got):\n%s", diff)
			}
		})
	}
}
