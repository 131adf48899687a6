package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/creditledger/creditledger/internal/ledger"
)

// errNotYet marks the statement this store does not serve yet; until
// holds and grants are stored, their reads answer empty.
var errNotYet = errors.New("postgres: holds, grants and statements are not implemented in this store yet")

// Hold implements ledger.ReadTx.
func (t *readTx) Hold(_ context.Context, _, id string) (ledger.Hold, error) {
	return ledger.Hold{}, ledger.NotFoundError("hold", id)
}

// ListHolds implements ledger.ReadTx.
func (t *readTx) ListHolds(context.Context, ledger.HoldQuery) ([]ledger.Hold, error) {
	return nil, nil
}

// Grants implements ledger.ReadTx.
func (t *readTx) Grants(context.Context, string, string) ([]ledger.Grant, error) {
	return nil, nil
}

// DueHolds implements ledger.ReadTx.
func (t *readTx) DueHolds(context.Context, string, time.Time, int) ([]ledger.Hold, error) {
	return nil, nil
}

// DueGrants implements ledger.ReadTx.
func (t *readTx) DueGrants(context.Context, string, time.Time, int) ([]ledger.Grant, error) {
	return nil, nil
}

// Statement implements ledger.ReadTx.
func (t *readTx) Statement(context.Context, string, string, time.Time, time.Time) (ledger.Statement, error) {
	return ledger.Statement{}, errNotYet
}
