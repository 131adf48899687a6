package portal

import (
	"errors"
	"math/big"
	"strings"
)

// maxDecimal bounds the decimals the preview accepts: a rate or a sample
// price, never a large number.
const maxDecimal = 40

// parseDecimal reads a non-negative decimal ("10", "9.5", "3.51") with at
// most frac fractional digits, exactly.
func parseDecimal(s string, frac int) (*big.Rat, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > maxDecimal {
		return nil, errors.New("enter a number like 9.5")
	}
	whole, fraction, dot := strings.Cut(s, ".")
	if whole == "" || dot && fraction == "" {
		return nil, errors.New("enter a number like 9.5")
	}
	for _, part := range []string{whole, fraction} {
		for _, c := range part {
			if c < '0' || c > '9' {
				return nil, errors.New("enter a number like 9.5, digits and one point only")
			}
		}
	}
	if len(fraction) > frac {
		return nil, errors.New("too many digits after the point")
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, errors.New("enter a number like 9.5")
	}
	return r, nil
}

// previewCredits is what a price costs in credits at rate (credits per
// currency unit): price × rate, rounded UP to a whole credit, in exact
// decimal arithmetic — the ledger's rule (USD 3.51 at 10 = 35.1 → 36).
// The ledger's Quote converts with the active rate only; this shows a
// rate before it is saved.
func previewCredits(price, rate string) (int64, error) {
	p, err := parseDecimal(price, 9)
	if err != nil {
		return 0, errors.New("sample amount: " + err.Error())
	}
	r, err := parseDecimal(rate, 9)
	if err != nil {
		return 0, errors.New("rate: " + err.Error())
	}
	if r.Sign() == 0 {
		return 0, errors.New("rate: must be greater than zero")
	}
	v := new(big.Rat).Mul(p, r)
	q, m := new(big.Int).QuoRem(v.Num(), v.Denom(), new(big.Int))
	if m.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() || q.Int64() > 1_000_000_000_000 {
		return 0, errors.New("the result is more than 10^12 credits")
	}
	return q.Int64(), nil
}

// parseMoney reads a price typed in a form ("49.99") in currency.
func parseMoney(currency, amount string) (Money, error) {
	if len(currency) != 3 || strings.ToUpper(currency) != currency || strings.ContainsFunc(currency, func(r rune) bool { return r < 'A' || r > 'Z' }) {
		return Money{}, errors.New("currency: a three-letter code like USD")
	}
	r, err := parseDecimal(amount, 9)
	if err != nil {
		return Money{}, errors.New("price: " + err.Error())
	}
	n := new(big.Int).Mul(r.Num(), big.NewInt(1_000_000_000))
	n.Quo(n, r.Denom()) // exact: at most 9 fractional digits
	units, nanos := new(big.Int).QuoRem(n, big.NewInt(1_000_000_000), new(big.Int))
	if !units.IsInt64() {
		return Money{}, errors.New("price: too large")
	}
	return Money{Currency: currency, Units: units.Int64(), Nanos: int32(nanos.Int64())}, nil //nolint:gosec // G115: nanos < 10^9
}
