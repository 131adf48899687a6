package ledger

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Money is an amount of a currency, as google.type.Money: whole units plus
// nanos (10^-9 units). Prices in the ledger are never negative.
type Money struct {
	Currency string // ISO 4217, three upper-case letters
	Units    int64
	Nanos    int32
}

// String renders the amount as "USD 3.510000000" trimmed ("USD 3.51").
func (m Money) String() string {
	frac := strings.TrimRight(fmt.Sprintf("%09d", m.Nanos), "0")
	if frac == "" {
		return fmt.Sprintf("%s %d", m.Currency, m.Units)
	}
	return fmt.Sprintf("%s %d.%s", m.Currency, m.Units, frac)
}

// validateMoney checks a price: a valid currency, non-negative, nanos in range.
func validateMoney(v *violations, field string, m Money) {
	if !validCurrency(m.Currency) {
		v.add(field+".currency_code", "must be a three-letter upper-case ISO 4217 code")
	}
	if m.Units < 0 || m.Nanos < 0 {
		v.add(field, "must not be negative")
	}
	if m.Nanos > 999_999_999 || m.Nanos < -999_999_999 {
		v.add(field+".nanos", "must be between -999999999 and 999999999")
	}
}

func validCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return false
		}
	}
	return true
}

// Decimal is an exact non-negative decimal number: Mantissa × 10^-Scale.
// Conversion rates are Decimals; there is no floating point in money.
type Decimal struct {
	Mantissa int64
	Scale    int32 // number of fractional digits, 0..MaxRateScale
}

// Bounds on conversion rates.
const (
	MaxRateScale  = 9  // fractional digits
	MaxRateDigits = 18 // significant digits (fits an int64 mantissa)
)

// ParseDecimal parses a rate such as "10", "9.5" or "0.000000001". It accepts
// only plain decimal notation (no sign, exponent or spaces), at most
// MaxRateScale fractional and MaxRateDigits significant digits. Trailing
// fractional zeros are dropped so that equal values print equally.
func ParseDecimal(s string) (Decimal, error) {
	if s == "" {
		return Decimal{}, fmt.Errorf("empty decimal")
	}
	if len(s) > 64 {
		return Decimal{}, fmt.Errorf("decimal too long")
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if intPart == "" || (hasDot && frac == "") {
		return Decimal{}, fmt.Errorf("%q is not a plain decimal number", s)
	}
	for _, part := range []string{intPart, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return Decimal{}, fmt.Errorf("%q is not a plain decimal number", s)
			}
		}
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > MaxRateScale {
		return Decimal{}, fmt.Errorf("at most %d fractional digits", MaxRateScale)
	}
	digits := strings.TrimLeft(intPart+frac, "0")
	if len(digits) > MaxRateDigits {
		return Decimal{}, fmt.Errorf("at most %d significant digits", MaxRateDigits)
	}
	var m int64
	if digits != "" {
		var err error
		m, err = strconv.ParseInt(digits, 10, 64)
		if err != nil {
			return Decimal{}, fmt.Errorf("decimal out of range")
		}
	}
	return Decimal{Mantissa: m, Scale: int32(len(frac))}, nil
}

// String renders the decimal in plain notation without trailing zeros.
func (d Decimal) String() string {
	s := strconv.FormatInt(d.Mantissa, 10)
	if d.Scale == 0 {
		return s
	}
	if pad := int(d.Scale) + 1 - len(s); pad > 0 {
		s = strings.Repeat("0", pad) + s
	}
	i := len(s) - int(d.Scale)
	return s[:i] + "." + s[i:]
}

// IsZero reports whether the decimal is 0.
func (d Decimal) IsZero() bool { return d.Mantissa == 0 }

var (
	bigNano = big.NewInt(1_000_000_000)
	bigTen  = big.NewInt(10)
	bigMax  = big.NewInt(math.MaxInt64)
)

// CreditsFor converts a non-negative price to credits at rate (credits per
// unit), by exact rational arithmetic, rounded up to a whole credit:
// USD 3.51 at 10/USD = 35.1 → 36. It fails with AMOUNT_OVERFLOW when the
// result does not fit an int64.
func CreditsFor(price Money, rate Decimal) (int64, error) {
	if price.Units < 0 || price.Nanos < 0 || rate.Mantissa < 0 || rate.Scale < 0 {
		return 0, invalid("price", "must not be negative")
	}
	// credits = ceil(priceNanos × mantissa / (10^9 × 10^scale))
	num := new(big.Int).Mul(big.NewInt(price.Units), bigNano)
	num.Add(num, big.NewInt(int64(price.Nanos)))
	num.Mul(num, big.NewInt(rate.Mantissa))
	den := new(big.Int).Exp(bigTen, big.NewInt(int64(rate.Scale)), nil)
	den.Mul(den, bigNano)
	q, r := new(big.Int).QuoRem(num, den, new(big.Int))
	if r.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	if q.Cmp(bigMax) > 0 {
		return 0, newErr(CodeInvalid, ReasonAmountOverflow, "the price converts to more credits than the ledger can hold", nil)
	}
	return q.Int64(), nil
}

// addCredits adds amount to a balance, refusing a result above MaxBalance.
// Both are non-negative; the comparison cannot overflow, and a balance
// stored above the limit (before it existed) only refuses further credits.
func addCredits(balance, amount int64) (int64, error) {
	if amount > MaxBalance-balance {
		b, a := strconv.FormatInt(balance, 10), strconv.FormatInt(amount, 10)
		return 0, newErr(CodeFailedPrecondition, ReasonBalanceLimitExceeded,
			"a balance of "+b+" credits plus "+a+" would exceed the limit of "+strconv.FormatInt(MaxBalance, 10)+" credits per account",
			map[string]string{"balance": b, "amount": a, "limit": strconv.FormatInt(MaxBalance, 10)})
	}
	return balance + amount, nil
}

// creditsForPrice converts a price for Quote and CheckCreditPayment: a price
// worth more than one operation may move is refused like any over-large
// amount.
func creditsForPrice(price Money, rate Decimal) (int64, error) {
	n, err := CreditsFor(price, rate)
	if ReasonOf(err) == ReasonAmountOverflow || (err == nil && n > MaxAmount) {
		return 0, invalid("price", "converts to more than %d credits, the most one operation may move", MaxAmount)
	}
	return n, err
}
