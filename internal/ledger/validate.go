package ledger

import (
	"unicode/utf8"

	"github.com/creditledger/creditledger/internal/ident"
)

// Input bounds. They are part of the API contract (documented in the proto).
const (
	MaxIDLength             = ident.MaxLength
	MaxIdempotencyKeyLength = 255
	MaxReferenceLength      = 256
	MaxNoteLength           = 1024
	MaxReasonLength         = 1024
	MaxDecidedByLength      = 128
	MaxDisplayNameLength    = 128
	MaxMetadataEntries      = 16
	MaxMetadataKeyLength    = 64
	MaxMetadataValueLength  = 256
	DefaultPageSize         = 50
	MaxPageSize             = 500
)

// Amount bounds, so that no sum the server computes can overflow int64
// (about 9.22 × 10^18):
//
//   - MaxAmount bounds the credits one operation moves: a Credit, a Debit,
//     a credit request, a package, a quote or a payment check. 10^12
//     credits is $100 billion at 10 credits per dollar: far beyond any
//     real purchase, and small enough to add up safely.
//   - MaxBalance bounds an account's balance: a credit (or an accepted
//     request) that would take it higher is refused with
//     BALANCE_LIMIT_EXCEEDED. Debits always stay possible.
//
// What they buy: balance + amount ≤ 10^15 + 10^12; the pending requests of
// an account (at most MaxPendingRequestsLimit of them) add up to at most
// 10^15, so balance + pending credits ≤ 2 × 10^15; a sum over one
// statement's entries would need over 9 million entries of the largest
// size to overflow, so totals over unbounded ranges are still computed
// with checked or saturating arithmetic (as the pending sum already is,
// for rows written before these bounds existed).
const (
	MaxAmount  int64 = 1_000_000_000_000     // 10^12 credits per operation
	MaxBalance int64 = 1_000_000_000_000_000 // 10^15 credits per account
)

// unsafeRune reports characters no text field may hold: C0 and C1 control
// characters (tab and newline aside, where allowNewlines) and the
// bidirectional controls that can make a rendered table lie (U+202E turns
// "…gpj.exe" into "…exe.jpg"). Both stores then hold the same text: the
// PostgreSQL store could not hold a NUL at all.
func unsafeRune(r rune, allowNewlines bool) bool {
	switch {
	case r == '\n' || r == '\t':
		return !allowNewlines
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// checkAmount requires a positive amount of credits, at most MaxAmount.
func checkAmount(v *violations, field string, n int64) {
	switch {
	case n <= 0:
		v.add(field, "must be greater than 0")
	case n > MaxAmount:
		v.add(field, "must be at most %d", MaxAmount)
	}
}

func isIDChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

func checkID(v *violations, field, s string) {
	if !ident.Valid(s) {
		v.add(field, "must be "+ident.Rule)
	}
}

// checkKey validates an idempotency key: 1-255 printable ASCII characters.
func checkKey(v *violations, key string) {
	if len(key) == 0 {
		v.add("idempotency_key", "is required")
		return
	}
	if len(key) > MaxIdempotencyKeyLength {
		v.add("idempotency_key", "must be at most %d characters", MaxIdempotencyKeyLength)
		return
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			v.add("idempotency_key", "must be printable ASCII")
			return
		}
	}
}

// checkText validates free text: valid UTF-8, no control characters but
// newline and tab, at most max characters.
func checkText(v *violations, field, s string, maxChars int) {
	if !utf8.ValidString(s) {
		v.add(field, "must be valid UTF-8")
		return
	}
	if utf8.RuneCountInString(s) > maxChars {
		v.add(field, "must be at most %d characters", maxChars)
		return
	}
	for _, r := range s {
		if unsafeRune(r, true) {
			v.add(field, "must not contain control or bidirectional-override characters")
			return
		}
	}
}

// checkMetadata bounds a caller's metadata map.
func checkMetadata(v *violations, md map[string]string) {
	if len(md) > MaxMetadataEntries {
		v.add("metadata", "must have at most %d entries", MaxMetadataEntries)
		return
	}
	for k, val := range md {
		if len(k) == 0 || len(k) > MaxMetadataKeyLength {
			v.add("metadata", "keys must be 1-%d characters", MaxMetadataKeyLength)
			return
		}
		for i := 0; i < len(k); i++ {
			if !isIDChar(k[i]) {
				v.add("metadata", "key %q must be characters of [A-Za-z0-9._-]", truncate(k, 16))
				return
			}
		}
		if len(val) > MaxMetadataValueLength {
			v.add("metadata", "value of %q must be at most %d bytes", k, MaxMetadataValueLength)
			return
		}
		if !utf8.ValidString(val) {
			v.add("metadata", "value of %q must be valid UTF-8", k)
			return
		}
		for _, r := range val {
			if unsafeRune(r, false) {
				v.add("metadata", "value of %q must not contain control or bidirectional-override characters", k)
				return
			}
		}
	}
}

// pageSize applies AIP-158: 0 → default, above the maximum → the maximum.
func pageSize(v *violations, n int32) int {
	switch {
	case n < 0:
		v.add("page_size", "must not be negative")
		return 0
	case n == 0:
		return DefaultPageSize
	case n > MaxPageSize:
		return MaxPageSize
	}
	return int(n)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// creditKinds are the kinds Credit may post; the first is the default.
var creditKinds = []Kind{KindPurchase, KindRefund, KindAdjustment}

// debitKinds are the kinds Debit may post; the first is the default.
var debitKinds = []Kind{KindServicePurchase, KindInvoicePayment, KindAdjustment}

func checkKind(v *violations, k Kind, allowed []Kind) Kind {
	if k == KindUnspecified {
		return allowed[0]
	}
	for _, a := range allowed {
		if a == k {
			return k
		}
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = a.String()
	}
	v.add("kind", "must be one of %v", names)
	return k
}
