package ledgerclient

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/type/money"
)

// ParseMoney reads a non-negative price written "USD 3.51", "USD:3.51" or
// "3.51 USD" into a google.type.Money, exactly (no floating point): at most
// 9 fractional digits.
func ParseMoney(s string) (*money.Money, error) {
	s = strings.TrimSpace(s)
	var cur, amt string
	switch f := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ':' }); {
	case len(f) != 2:
		return nil, fmt.Errorf("price %q: want \"<CUR> <amount>\", e.g. \"USD 3.51\"", s)
	case isCurrency(f[0]):
		cur, amt = f[0], f[1]
	case isCurrency(f[1]):
		cur, amt = f[1], f[0]
	default:
		return nil, fmt.Errorf("price %q: no three-letter upper-case currency code", s)
	}
	units, nanos, err := ParseAmount(amt)
	if err != nil {
		return nil, fmt.Errorf("price %q: %w", s, err)
	}
	return &money.Money{CurrencyCode: cur, Units: units, Nanos: nanos}, nil
}

// ParseAmount reads a non-negative decimal such as "3.51" into whole units
// and nanos.
func ParseAmount(s string) (units int64, nanos int32, err error) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || strings.ContainsAny(whole, "+-") {
		return 0, 0, errors.New("amount must be a non-negative decimal like 3.51")
	}
	units, err = strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, 0, errors.New("amount must be a non-negative decimal like 3.51")
	}
	if len(frac) > 9 {
		return 0, 0, errors.New("amount has more than 9 fractional digits")
	}
	if frac != "" {
		for _, r := range frac {
			if r < '0' || r > '9' {
				return 0, 0, errors.New("amount must be a non-negative decimal like 3.51")
			}
		}
		n, _ := strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 32)
		nanos = int32(n)
	}
	return units, nanos, nil
}

// FormatMoney renders m as "USD 3.51" (trailing zeros trimmed, at least
// two fractional digits when there is a fraction).
func FormatMoney(m *money.Money) string {
	if m == nil {
		return ""
	}
	return m.GetCurrencyCode() + " " + FormatAmount(m.GetUnits(), m.GetNanos())
}

// FormatAmount renders units and nanos as a decimal: 3, 510000000 → "3.51".
func FormatAmount(units int64, nanos int32) string {
	neg := units < 0 || nanos < 0
	if units < 0 {
		units = -units
	}
	if nanos < 0 {
		nanos = -nanos
	}
	s := strconv.FormatInt(units, 10)
	if nanos != 0 {
		frac := strings.TrimRight(fmt.Sprintf("%09d", nanos), "0")
		if len(frac) < 2 {
			frac += "0"
		}
		s += "." + frac
	}
	if neg {
		s = "-" + s
	}
	return s
}

func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := range 3 {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}
