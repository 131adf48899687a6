package ledger

import "testing"

// BenchmarkValidatePosting measures the checks every Credit and Debit runs
// before touching the store.
func BenchmarkValidatePosting(b *testing.B) {
	md := map[string]string{"order": "42", "channel": "portal"}
	for b.Loop() {
		var v violations
		validatePostingCommon(&v, "agency-42", "client-7", "invoice:INV-1042", "checkout-order:8c1e9f", nil, md)
		if len(v) != 0 {
			b.Fatal(v)
		}
	}
}
