package main

import (
	"bytes"
	"strings"
	"testing"
)

// A stored value cannot forge a column or a row of ledgerctl's tables, nor
// reorder what the operator reads.
func TestTableEscapesHostileCells(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	forged := "stripe:pi_1\n2026-01-01  IN  1000000  fake row"
	if err := table(&b, "REFERENCE\tAMOUNT", [][]string{
		{forged, "10"},
		{"tab\there", "20"},
		{"\u202eevil\u202c", "30"},
		{"bad \xff utf8 \ufffd", "40"},
		{"plain: ok", "50"},
	}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if lines := strings.Count(out, "\n"); lines != 6 {
		t.Fatalf("%d lines, want 6 (header and 5 rows):\n%s", lines, out)
	}
	for _, want := range []string{`stripe:pi_1\u000a2026`, `tab\u0009here`, `\u202eevil\u202c`, `bad \xff utf8 ` + "\ufffd", "plain: ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.ContainsRune(out, '\u202e') || strings.Contains(out, "\t") {
		t.Errorf("raw control characters in the output:\n%q", out)
	}
}
