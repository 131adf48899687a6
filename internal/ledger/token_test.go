package ledger

import (
	"encoding/base64"
	"testing"
)

func TestPageTokens(t *testing.T) {
	t.Parallel()
	p := NewPageTokens([]byte("k1"))
	bind := binding("transactions", "ws", "acct", "IN", "", "", "")
	tok := p.Encode(bind, "42")
	got, err := p.Decode(bind, tok)
	if err != nil || got != "42" {
		t.Fatalf("round trip: %q %v", got, err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	for _, tc := range []struct {
		name  string
		p     *PageTokens
		bind  []byte
		token string
	}{
		{"other key", NewPageTokens([]byte("k2")), bind, tok},
		{"other account", p, binding("transactions", "ws", "other", "IN", "", "", ""), tok},
		{"other filter", p, binding("transactions", "ws", "acct", "OUT", "", "", ""), tok},
		{"truncated", p, bind, tok[:len(tok)-2]},
		{"empty", p, bind, "x"},
		{"not base64", p, bind, "!!!"},
		{"cursor changed", p, bind, func() string {
			b := append([]byte(nil), raw...)
			b[1+bindLen] ^= 1
			return base64.RawURLEncoding.EncodeToString(b)
		}()},
		{"version changed", p, bind, func() string {
			b := append([]byte(nil), raw...)
			b[0] = 2
			return base64.RawURLEncoding.EncodeToString(b)
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if c, err := tc.p.Decode(tc.bind, tc.token); err == nil {
				t.Fatalf("accepted a bad token, cursor %q", c)
			}
		})
	}
}

func TestFingerprintIsUnambiguous(t *testing.T) {
	t.Parallel()
	// Length prefixes keep field boundaries: ("ab","c") differs from ("a","bc").
	a := newFingerprint(OpCredit).str("ab").str("c").sum()
	b := newFingerprint(OpCredit).str("a").str("bc").sum()
	if string(a) == string(b) {
		t.Fatal("field boundaries are not encoded")
	}
	m1 := newFingerprint(OpCredit).strMap(map[string]string{"x": "1", "y": "2"}).sum()
	m2 := newFingerprint(OpCredit).strMap(map[string]string{"y": "2", "x": "1"}).sum()
	if string(m1) != string(m2) {
		t.Fatal("map order changes the fingerprint")
	}
	var zero int64
	if string(newFingerprint(OpDebit).optInt(nil).sum()) == string(newFingerprint(OpDebit).optInt(&zero).sum()) {
		t.Fatal("absent and zero expected_version collide")
	}
	if string(newFingerprint(OpDebit).sum()) == string(newFingerprint(OpCredit).sum()) {
		t.Fatal("operation not part of the fingerprint")
	}
}

func BenchmarkFingerprint(b *testing.B) {
	md := map[string]string{"order": "42", "channel": "portal"}
	for b.Loop() {
		newFingerprint(OpDebit).str("workspace").str("account").int(100).str("SERVICE_PURCHASE").
			str("invoice:INV-1042").optInt(nil).strMap(md).sum()
	}
}

func BenchmarkPageToken(b *testing.B) {
	p := NewPageTokens([]byte("bench"))
	bind := binding("transactions", "ws", "acct", "", "", "", "")
	for b.Loop() {
		tok := p.Encode(bind, "123456")
		if _, err := p.Decode(bind, tok); err != nil {
			b.Fatal(err)
		}
	}
}
