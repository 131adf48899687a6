// Package ident is the syntax of CreditLedger's identifiers (workspaces,
// accounts, packages, requests, and the ids the consumer services accept):
// one rule, shared by the ledger's domain and every service that checks
// an id before it reaches the ledger.
package ident

// MaxLength is the longest identifier, in bytes.
const MaxLength = 64

// Rule says what Valid accepts, for error messages.
const Rule = "1-64 characters of [A-Za-z0-9._-] starting with a letter or digit"

// Valid reports whether s is an identifier: 1-64 characters of
// [A-Za-z0-9._-] starting with a letter or digit. It never contains ':',
// so an identifier can be joined into a key with ':' without ambiguity.
func Valid(s string) bool {
	if len(s) == 0 || len(s) > MaxLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}
