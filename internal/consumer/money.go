package consumer

import (
	"google.golang.org/genproto/googleapis/type/money"

	"github.com/creditledger/creditledger/ledgerclient"
)

// Money is an amount of money: google.type.Money in the services'
// snake_case JSON. {"currency_code": "USD", "units": 3, "nanos": 510000000}
// is USD 3.51.
type Money struct {
	CurrencyCode string `json:"currency_code"`
	Units        int64  `json:"units"`
	Nanos        int32  `json:"nanos"`
}

// Proto is m as the ledger's API takes it.
func (m Money) Proto() *money.Money {
	return &money.Money{CurrencyCode: m.CurrencyCode, Units: m.Units, Nanos: m.Nanos}
}

// String renders "USD 3.51".
func (m Money) String() string { return ledgerclient.FormatMoney(m.Proto()) }

// Check requires a positive amount with a three-letter upper-case ISO 4217
// code; a mistake is INVALID_ARGUMENT on field (or field.currency_code).
func (m Money) Check(field string) error {
	if len(m.CurrencyCode) != 3 {
		return Invalidf(field+".currency_code", "must be a three-letter upper-case ISO 4217 code")
	}
	for i := range 3 {
		if c := m.CurrencyCode[i]; c < 'A' || c > 'Z' {
			return Invalidf(field+".currency_code", "must be a three-letter upper-case ISO 4217 code")
		}
	}
	if m.Units < 0 || m.Nanos < 0 || m.Nanos > 999_999_999 {
		return Invalidf(field, "must be non-negative with nanos in [0, 999999999]")
	}
	if m.Units == 0 && m.Nanos == 0 {
		return Invalidf(field, "must be greater than zero")
	}
	return nil
}
