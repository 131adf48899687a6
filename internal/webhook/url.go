package webhook

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxURLLength bounds an endpoint URL, in bytes.
const MaxURLLength = 2048

// ErrInvalidURL is wrapped by every error ValidateURL returns.
var ErrInvalidURL = errors.New("invalid webhook url")

// ValidateURL checks an endpoint URL when it is registered. It must be an
// absolute https URL of at most MaxURLLength bytes with a host, no user
// information (it would end up in logs), no fragment (never sent, so
// surely a mistake), and no spaces or control characters (percent-encode
// them). A host that is a literal IP address outside public unicast space,
// or that is localhost, is refused.
//
// allowInsecure is the development setting, the same one as
// ClientOptions.AllowPrivate: it allows http as well as https, and
// loopback and private hosts.
//
// ValidateURL does not resolve names: a name that resolves to a refused
// address passes here and is refused by the client at every delivery.
// Error messages are meant for the person registering the URL.
func ValidateURL(raw string, allowInsecure bool) error {
	if len(raw) > MaxURLLength {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidURL, MaxURLLength)
	}
	if !utf8.ValidString(raw) {
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidURL)
	}
	for _, r := range raw {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("%w: contains a space or control character", ErrInvalidURL)
		}
	}
	if strings.Contains(raw, "#") {
		return fmt.Errorf("%w: has a fragment", ErrInvalidURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the input; the caller already has it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%w: %w", ErrInvalidURL, err)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowInsecure:
	case u.Scheme == "http":
		return fmt.Errorf("%w: https required", ErrInvalidURL)
	case u.Scheme == "":
		return fmt.Errorf("%w: not absolute (no scheme)", ErrInvalidURL)
	default:
		return fmt.Errorf("%w: scheme %q not supported, use https", ErrInvalidURL, u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" {
		return fmt.Errorf("%w: no host", ErrInvalidURL)
	}
	if u.User != nil {
		return fmt.Errorf("%w: credentials in the url are not allowed", ErrInvalidURL)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%w: no host", ErrInvalidURL)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%w: port %q out of range", ErrInvalidURL, p)
		}
	}
	return validateHost(host, allowInsecure)
}

// validateHost checks the host part of an endpoint URL, brackets removed.
func validateHost(host string, allowInsecure bool) error {
	if addr, err := netip.ParseAddr(host); err == nil {
		if addr.Zone() != "" {
			return fmt.Errorf("%w: an IPv6 zone is not allowed", ErrInvalidURL)
		}
		if allowInsecure {
			return nil
		}
		if err := checkAddr(addr); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidURL, err)
		}
		return nil
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	labels := strings.Split(name, ".")
	// No top-level domain is numeric, so a name ending in a number is an
	// IPv4 address in a legacy form (2130706433, 0x7f.1, 127.1) that some
	// resolvers would turn into an address. Ask for the usual form instead.
	if isNumericLabel(labels[len(labels)-1]) {
		return fmt.Errorf("%w: host %q looks like an IP address; write it as a.b.c.d", ErrInvalidURL, host)
	}
	if allowInsecure {
		return nil
	}
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return fmt.Errorf("%w: %w: %s is loopback", ErrInvalidURL, ErrAddressNotAllowed, host)
	}
	return nil
}

// isNumericLabel reports whether a DNS label is a decimal, octal or hex
// number as inet_aton reads them.
func isNumericLabel(s string) bool {
	if s == "" {
		return false
	}
	digits := s
	hex := false
	if len(s) > 1 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		digits, hex = s[2:], true
	}
	for _, c := range []byte(digits) {
		switch {
		case c >= '0' && c <= '9':
		case hex && (c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'):
		default:
			return false
		}
	}
	return true
}
