package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/creditledger/creditledger/internal/ledger"
)

// errNotYet marks the reads of holds, grants and statements this store
// does not serve yet.
var errNotYet = errors.New("postgres: holds, grants and statements are not implemented in this store yet")

// Hold implements ledger.ReadTx.
func (t *readTx) Hold(context.Context, string, string) (ledger.Hold, error) {
	return ledger.Hold{}, errNotYet
}

// ListHolds implements ledger.ReadTx.
func (t *readTx) ListHolds(context.Context, ledger.HoldQuery) ([]ledger.Hold, error) {
	return nil, errNotYet
}

// Grants implements ledger.ReadTx.
func (t *readTx) Grants(context.Context, string, string) ([]ledger.Grant, error) {
	return nil, errNotYet
}

// DueHolds implements ledger.ReadTx.
func (t *readTx) DueHolds(context.Context, string, time.Time, int) ([]ledger.Hold, error) {
	return nil, errNotYet
}

// DueGrants implements ledger.ReadTx.
func (t *readTx) DueGrants(context.Context, string, time.Time, int) ([]ledger.Grant, error) {
	return nil, errNotYet
}

// Statement implements ledger.ReadTx.
func (t *readTx) Statement(context.Context, string, string, time.Time, time.Time) (ledger.Statement, error) {
	return ledger.Statement{}, errNotYet
}
