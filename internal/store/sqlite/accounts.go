package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/creditledger/creditledger/internal/ledger"
)

const accountColumns = `workspace, id, balance, version, update_time, held`

const (
	qAccount      = `SELECT ` + accountColumns + ` FROM accounts WHERE workspace = ? AND id = ?`
	qListAccounts = `SELECT ` + accountColumns + ` FROM accounts WHERE workspace = ? AND id > ? ORDER BY id LIMIT ?`
	qAccountsIn   = `SELECT ` + accountColumns + ` FROM accounts
		WHERE workspace = ? AND id IN (SELECT value FROM json_each(?))`
	// A new account is inserted at its batch's final state and an existing
	// one moves there from the version the batch read; the schema checks
	// both against the entries inserted after them (0002_batch_writes.sql).
	// A move of held alone keeps the version (0005_holds_reversals_expiry.sql).
	qInsertAccount = `INSERT INTO accounts (` + accountColumns + `) VALUES (?, ?, ?, ?, ?, ?)`
	qMoveAccount   = `UPDATE accounts SET balance = ?, version = ?, update_time = ?, held = ?
		WHERE workspace = ? AND id = ? AND version = ?`
)

func scanAccount(row scanner) (ledger.Account, error) {
	var a ledger.Account
	var upd sql.NullInt64
	if err := row.Scan(&a.Workspace, &a.ID, &a.Balance, &a.Version, &upd, &a.Held); err != nil {
		return ledger.Account{}, err
	}
	a.UpdateTime = fromMicros(upd)
	return a, nil
}

// Account implements ledger.ReadTx.
func (t *readTx) Account(ctx context.Context, workspace, id string) (ledger.Account, error) {
	var a ledger.Account
	err := t.one(ctx, qAccount, []any{workspace, id}, func(row scanner) (err error) {
		a, err = scanAccount(row)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.Account{Workspace: workspace, ID: id}, nil
	}
	if err != nil {
		return ledger.Account{}, mapErr(ctx, "read account", err)
	}
	return a, nil
}

// ListAccounts implements ledger.ReadTx.
func (t *readTx) ListAccounts(ctx context.Context, q ledger.AccountQuery) ([]ledger.Account, error) {
	var out []ledger.Account
	err := t.each(ctx, qListAccounts, []any{q.Workspace, q.AfterID, q.Limit}, func(row scanner) error {
		a, err := scanAccount(row)
		out = append(out, a)
		return err
	})
	if err != nil {
		return nil, mapErr(ctx, "list accounts", err)
	}
	return out, nil
}

// accountsIn adds the existing accounts of ids to into.
func (t *writeTx) accountsIn(ctx context.Context, workspace string, ids []string, into map[string]ledger.Account) error {
	err := t.eachIn(ctx, qAccountsIn, workspace, ids, func(row scanner) error {
		a, err := scanAccount(row)
		into[a.ID] = a
		return err
	})
	return mapErr(ctx, "read accounts", err)
}

// moveAccounts writes every account at its new state: a new account is
// inserted, an existing one moves only if it is still at the version the
// batch read (ErrConflict otherwise).
func (t *writeTx) moveAccounts(ctx context.Context, moves []ledger.AccountMove) error {
	var created, moved []ledger.AccountMove
	for _, m := range moves {
		if m.Create {
			created = append(created, m)
		} else {
			moved = append(moved, m)
		}
	}
	err := execEach(ctx, &t.readTx, qInsertAccount, created, func(m ledger.AccountMove) ([]any, error) {
		return []any{m.Workspace, m.ID, m.Balance, m.Version, toMicros(m.UpdateTime), m.Held}, nil
	}, nil)
	if err != nil {
		return mapErr(ctx, "insert accounts", err)
	}
	err = execEach(ctx, &t.readTx, qMoveAccount, moved, func(m ledger.AccountMove) ([]any, error) {
		return []any{m.Balance, m.Version, toMicros(m.UpdateTime), m.Held, m.Workspace, m.ID, m.FromVersion}, nil
	}, func(m ledger.AccountMove, res sql.Result) error {
		return oneRow(res, fmt.Sprintf("account %s/%s is no longer at version %d", m.Workspace, m.ID, m.FromVersion))
	})
	return mapErr(ctx, "move accounts", err)
}
