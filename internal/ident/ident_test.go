package ident

import (
	"strconv"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s    string
		want bool
	}{
		{"letters and digits", "client42", true},
		{"inner punctuation", "agency-1.eu_west", true},
		{"one character", "a", true},
		{"longest", strings.Repeat("a", MaxLength), true},
		{"empty", "", false},
		{"too long", strings.Repeat("a", MaxLength+1), false},
		{"leading dash", "-client", false},
		{"leading dot", ".client", false},
		{"leading underscore", "_client", false},
		{"colon, the key separator", "client:1", false},
		{"space", "client 1", false},
		{"slash", "a/b", false},
		{"non-ASCII", "clïent", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Valid(tt.s); got != tt.want {
				t.Errorf("Valid(%q) = %v, want %v", tt.s, got, tt.want)
			}
		})
	}
}

// FuzzValid: whatever Valid accepts obeys the rule a caller relies on.
func FuzzValid(f *testing.F) {
	for _, s := range []string{"client-1", "", "a:b", "-x", strings.Repeat("z", 65)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !Valid(s) {
			return
		}
		if len(s) > MaxLength || strings.ContainsAny(s, ":/ ") || strings.ContainsAny(s[:1], "._-") {
			t.Errorf("Valid(%q) accepted a string outside the rule", s)
		}
	})
}

func TestRuleSaysTheLength(t *testing.T) {
	t.Parallel()
	if !strings.Contains(Rule, "1-"+strconv.Itoa(MaxLength)+" ") {
		t.Errorf("Rule %q does not say the %d of MaxLength", Rule, MaxLength)
	}
}
