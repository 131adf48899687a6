package webhook

import (
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

func TestValidateURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		raw  string
		// Whether ValidateURL refuses it in production and with
		// allowInsecure; refusedAddr means the refusal is for the address.
		refused, refusedInsecure, refusedAddr bool
	}{
		{name: "https", raw: "https://hooks.example.com/ledger"},
		{name: "https with port and query", raw: "https://hooks.example.com:8443/ledger?team=1"},
		{name: "public IPv4", raw: "https://8.8.8.8/hook"},
		{name: "public IPv6", raw: "https://[2606:4700:4700::1111]/hook"},
		{name: "upper-case scheme", raw: "HTTPS://hooks.example.com/"},
		{name: "idn host", raw: "https://bücher.example/hook"},
		{name: "http", raw: "http://hooks.example.com/", refused: true},
		{name: "loopback", raw: "https://127.0.0.1/", refused: true, refusedAddr: true},
		{name: "loopback IPv6", raw: "https://[::1]:8080/", refused: true, refusedAddr: true},
		{name: "mapped loopback", raw: "https://[::ffff:127.0.0.1]/", refused: true, refusedAddr: true},
		{name: "private", raw: "https://10.0.0.1/", refused: true, refusedAddr: true},
		{name: "metadata", raw: "http://169.254.169.254/latest/meta-data/", refused: true},
		{name: "metadata over https", raw: "https://169.254.169.254/", refused: true, refusedAddr: true},
		{name: "unspecified", raw: "https://0.0.0.0/", refused: true, refusedAddr: true},
		{name: "localhost", raw: "https://localhost:8080/", refused: true, refusedAddr: true},
		{name: "localhost with dot", raw: "https://LocalHost./", refused: true, refusedAddr: true},
		{name: "sub.localhost", raw: "https://api.localhost/", refused: true, refusedAddr: true},
		{name: "local dev", raw: "http://127.0.0.1:8080/hook", refused: true},
		{name: "decimal IPv4", raw: "https://2130706433/", refused: true, refusedInsecure: true},
		{name: "hex IPv4", raw: "https://0x7f.1/", refused: true, refusedInsecure: true},
		{name: "short IPv4", raw: "https://127.1/", refused: true, refusedInsecure: true},
		{name: "zone", raw: "https://[fe80::1%25eth0]/", refused: true, refusedInsecure: true},
		{name: "empty", raw: "", refused: true, refusedInsecure: true},
		{name: "relative", raw: "/hook", refused: true, refusedInsecure: true},
		{name: "no scheme", raw: "hooks.example.com/hook", refused: true, refusedInsecure: true},
		{name: "ftp", raw: "ftp://hooks.example.com/", refused: true, refusedInsecure: true},
		{name: "file", raw: "file:///etc/passwd", refused: true, refusedInsecure: true},
		{name: "opaque", raw: "https:hooks.example.com", refused: true, refusedInsecure: true},
		{name: "no host", raw: "https:///hook", refused: true, refusedInsecure: true},
		{name: "port only", raw: "https://:443/hook", refused: true, refusedInsecure: true},
		{name: "port zero", raw: "https://hooks.example.com:0/", refused: true, refusedInsecure: true},
		{name: "port too big", raw: "https://hooks.example.com:65536/", refused: true, refusedInsecure: true},
		{name: "userinfo", raw: "https://user:pass@hooks.example.com/", refused: true, refusedInsecure: true},
		{name: "user only", raw: "https://user@hooks.example.com/", refused: true, refusedInsecure: true},
		{name: "fragment", raw: "https://hooks.example.com/#x", refused: true, refusedInsecure: true},
		{name: "empty fragment", raw: "https://hooks.example.com/#", refused: true, refusedInsecure: true},
		{name: "newline", raw: "https://hooks.example.com/\n", refused: true, refusedInsecure: true},
		{name: "nul", raw: "https://hooks.example.com/\x00", refused: true, refusedInsecure: true},
		{name: "space", raw: "https://hooks.example.com/a b", refused: true, refusedInsecure: true},
		{name: "del", raw: "https://hooks.example.com/\x7f", refused: true, refusedInsecure: true},
		{name: "invalid utf-8", raw: "https://hooks.example.com/\xff", refused: true, refusedInsecure: true},
		{name: "too long", raw: "https://hooks.example.com/" + strings.Repeat("a", MaxURLLength), refused: true, refusedInsecure: true},
		{name: "longest", raw: "https://hooks.example.com/" + strings.Repeat("a", MaxURLLength-len("https://hooks.example.com/"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := ValidateURL(tc.raw, false)
			if (err != nil) != tc.refused || (err != nil && !errors.Is(err, ErrInvalidURL)) {
				t.Errorf("ValidateURL(%q, false) = %v, want refused %v", tc.raw, err, tc.refused)
			}
			if got := errors.Is(err, ErrAddressNotAllowed); got != tc.refusedAddr {
				t.Errorf("ValidateURL(%q, false) = %v, want address refused %v", tc.raw, err, tc.refusedAddr)
			}
			err = ValidateURL(tc.raw, true)
			if (err != nil) != tc.refusedInsecure || (err != nil && !errors.Is(err, ErrInvalidURL)) {
				t.Errorf("ValidateURL(%q, true) = %v, want refused %v", tc.raw, err, tc.refusedInsecure)
			}
		})
	}
}

// FuzzValidateURL checks that whatever ValidateURL accepts in production
// is a URL the client will send to a public https endpoint, and that
// allowInsecure only ever allows more.
func FuzzValidateURL(f *testing.F) {
	for _, s := range []string{
		"https://hooks.example.com/ledger?x=1",
		"http://127.0.0.1:8080/",
		"https://[::ffff:10.0.0.1]/",
		"https://user@host/",
		"https://0x7f.1/",
		"https://[fe80::1%25en0]:1/",
		"https://host:99999/#f",
		"https:opaque",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		err := ValidateURL(raw, false)
		errInsecure := ValidateURL(raw, true)
		if err != nil {
			if !errors.Is(err, ErrInvalidURL) {
				t.Fatalf("ValidateURL(%q, false) = %v, not wrapping ErrInvalidURL", raw, err)
			}
			return
		}
		if errInsecure != nil {
			t.Fatalf("ValidateURL(%q): accepted in production, refused with allowInsecure: %v", raw, errInsecure)
		}
		u, perr := url.Parse(raw)
		switch {
		case perr != nil:
			t.Fatalf("accepted %q, which does not parse: %v", raw, perr)
		case len(raw) > MaxURLLength:
			t.Fatalf("accepted %q, %d bytes long", raw, len(raw))
		case u.Scheme != "https":
			t.Fatalf("accepted %q with scheme %q", raw, u.Scheme)
		case u.User != nil || u.Fragment != "" || strings.Contains(raw, "#"):
			t.Fatalf("accepted %q with userinfo or fragment", raw)
		case u.Hostname() == "":
			t.Fatalf("accepted %q without host", raw)
		}
		if addr, err := netip.ParseAddr(u.Hostname()); err == nil {
			if err := checkAddr(addr); err != nil {
				t.Fatalf("accepted %q: %v", raw, err)
			}
		}
	})
}
