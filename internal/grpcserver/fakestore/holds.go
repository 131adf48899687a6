package fakestore

import (
	"context"
	"time"

	"github.com/creditledger/creditledger/internal/ledger"
)

// The fake keeps no holds or grants: these reads answer empty, as for an
// account that never had any.

// Hold implements ledger.ReadTx.
func (t *tx) Hold(_ context.Context, _, id string) (ledger.Hold, error) {
	return ledger.Hold{}, ledger.NotFoundError("hold", id)
}

// ListHolds implements ledger.ReadTx.
func (t *tx) ListHolds(context.Context, ledger.HoldQuery) ([]ledger.Hold, error) { return nil, nil }

// Grants implements ledger.ReadTx.
func (t *tx) Grants(context.Context, string, string) ([]ledger.Grant, error) { return nil, nil }

// DueHolds implements ledger.ReadTx.
func (t *tx) DueHolds(context.Context, string, time.Time, int) ([]ledger.Hold, error) {
	return nil, nil
}

// DueGrants implements ledger.ReadTx.
func (t *tx) DueGrants(context.Context, string, time.Time, int) ([]ledger.Grant, error) {
	return nil, nil
}

// Statement implements ledger.ReadTx.
func (t *tx) Statement(_ context.Context, ws, acct string, start, end time.Time) (ledger.Statement, error) {
	return ledger.Statement{Workspace: ws, Account: acct, Start: start, End: end}, nil
}
