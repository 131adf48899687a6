package ledger_test

import (
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/creditledger/creditledger/internal/ledger"
)

func TestParseDecimal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    string // canonical; "" means an error is expected
		mant    int64
		scale   int32
		wantErr bool
	}{
		{in: "10", want: "10", mant: 10},
		{in: "9.5", want: "9.5", mant: 95, scale: 1},
		{in: "9.50", want: "9.5", mant: 95, scale: 1},
		{in: "0009.500", want: "9.5", mant: 95, scale: 1},
		{in: "0.000000001", want: "0.000000001", mant: 1, scale: 9},
		{in: "0", want: "0"},
		{in: "0.0", want: "0"},
		{in: "123456789012345678", want: "123456789012345678", mant: 123456789012345678},
		{in: "123456789.123456789", want: "123456789.123456789", mant: 123456789123456789, scale: 9},
		{in: "", wantErr: true},
		{in: ".5", wantErr: true},
		{in: "5.", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "+1", wantErr: true},
		{in: "1e3", wantErr: true},
		{in: " 1", wantErr: true},
		{in: "1,5", wantErr: true},
		{in: "0.0000000001", wantErr: true},        // 10 fractional digits
		{in: "1234567890123456789", wantErr: true}, // 19 significant digits
		{in: "NaN", wantErr: true},
		{in: "Infinity", wantErr: true},
		{in: strings.Repeat("1", 65), wantErr: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			d, err := ledger.ParseDecimal(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseDecimal(%q) = %v, want an error", tc.in, d)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.String() != tc.want || d.Mantissa != tc.mant || d.Scale != tc.scale {
				t.Fatalf("ParseDecimal(%q) = %s (%d, %d), want %s (%d, %d)", tc.in, d, d.Mantissa, d.Scale, tc.want, tc.mant, tc.scale)
			}
		})
	}
}

func TestCreditsForExamples(t *testing.T) {
	t.Parallel()
	rate := func(s string) ledger.Decimal {
		d, err := ledger.ParseDecimal(s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, tc := range []struct {
		name  string
		price ledger.Money
		rate  string
		want  int64
	}{
		{"spec example 3.51 at 10", ledger.Money{Currency: "USD", Units: 3, Nanos: 510_000_000}, "10", 36},
		{"exact", ledger.Money{Currency: "USD", Units: 3, Nanos: 500_000_000}, "10", 35},
		{"zero price", ledger.Money{Currency: "USD"}, "10", 0},
		{"one nano rounds up", ledger.Money{Currency: "USD", Nanos: 1}, "10", 1},
		{"fractional rate", ledger.Money{Currency: "EUR", Units: 10}, "9.5", 95},
		{"fractional both", ledger.Money{Currency: "EUR", Units: 1, Nanos: 10_000_000}, "9.5", 10}, // 9.595
		{"tiny rate", ledger.Money{Currency: "JPY", Units: 1}, "0.000000001", 1},
		{"many decimals", ledger.Money{Currency: "USD", Units: 0, Nanos: 999_999_999}, "123456789.123456789", 123456789},
		{"largest that fits", ledger.Money{Currency: "USD", Units: math.MaxInt64 / 10}, "10", math.MaxInt64 / 10 * 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ledger.CreditsFor(tc.price, rate(tc.rate))
			if err != nil || got != tc.want {
				t.Fatalf("CreditsFor(%v, %s) = %d, %v; want %d", tc.price, tc.rate, got, err, tc.want)
			}
		})
	}
	_, err := ledger.CreditsFor(ledger.Money{Currency: "USD", Units: math.MaxInt64}, rate("10"))
	var e *ledger.Error
	if !errors.As(err, &e) || e.Reason != ledger.ReasonAmountOverflow {
		t.Fatalf("overflow: %v", err)
	}
}

// TestCreditsForMatchesBigRat compares the conversion with big.Rat
// arithmetic over many random prices and rates.
func TestCreditsForMatchesBigRat(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	pow10 := func(n int32) *big.Int { return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil) }
	for i := 0; i < 20000; i++ {
		var units int64
		switch rng.IntN(3) {
		case 0:
			units = rng.Int64N(100)
		case 1:
			units = rng.Int64N(1_000_000_000)
		default:
			units = rng.Int64N(math.MaxInt64 / 1000)
		}
		nanos := int32(rng.Int64N(1_000_000_000))
		if rng.IntN(4) == 0 {
			nanos = int32(rng.Int64N(100)) * 10_000_000 // cents
		}
		scale := int32(rng.IntN(10))
		mant := rng.Int64N(1_000_000_000_000) + 1
		price := ledger.Money{Currency: "USD", Units: units, Nanos: nanos}
		rate := ledger.Decimal{Mantissa: mant, Scale: scale}

		p := new(big.Rat).SetFrac(new(big.Int).Add(new(big.Int).Mul(big.NewInt(units), big.NewInt(1_000_000_000)), big.NewInt(int64(nanos))), big.NewInt(1_000_000_000))
		r := new(big.Rat).SetFrac(big.NewInt(mant), pow10(scale))
		exact := new(big.Rat).Mul(p, r)
		ceil := new(big.Int).Quo(exact.Num(), exact.Denom())
		if new(big.Rat).SetInt(ceil).Cmp(exact) < 0 {
			ceil.Add(ceil, big.NewInt(1))
		}

		got, err := ledger.CreditsFor(price, rate)
		if !ceil.IsInt64() {
			if err == nil {
				t.Fatalf("CreditsFor(%v, %v) = %d, want overflow (exact %s)", price, rate, got, exact.FloatString(9))
			}
			continue
		}
		if err != nil || got != ceil.Int64() {
			t.Fatalf("CreditsFor(%v, %v) = %d, %v; want %s (exact %s)", price, rate, got, err, ceil, exact.FloatString(12))
		}
	}
}

func FuzzParseDecimal(f *testing.F) {
	for _, s := range []string{"10", "9.5", "0.000000001", "1e3", "-1", "", "00.10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ledger.ParseDecimal(s)
		if err != nil {
			return
		}
		// A parsed decimal prints canonically and re-parses to itself.
		again, err := ledger.ParseDecimal(d.String())
		if err != nil || again != d {
			t.Fatalf("%q → %v → %q → %v, %v", s, d, d.String(), again, err)
		}
		// And it equals the input as an exact rational.
		in, ok := new(big.Rat).SetString(s)
		out, _ := new(big.Rat).SetString(d.String())
		if !ok || in.Cmp(out) != 0 {
			t.Fatalf("%q parsed as %s", s, d)
		}
	})
}
