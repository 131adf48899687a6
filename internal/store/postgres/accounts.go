package postgres

import (
	"context"
	"errors"

	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// ---------------------------------------------------------------------------
// Accounts

const accountColumns = `workspace, id, balance, version, update_time`

const (
	qAccount      = `SELECT ` + accountColumns + ` FROM accounts WHERE workspace = $1 AND id = $2`
	qListAccounts = `SELECT ` + accountColumns + ` FROM accounts
		WHERE workspace = $1 AND id > $2 ORDER BY id LIMIT $3`

	// Batch reads and writes (batch.go). Locks are taken in ID order.
	qLockAccounts = `SELECT ` + accountColumns + ` FROM accounts
		WHERE workspace = $1 AND id = ANY($2::text[]) ORDER BY id FOR UPDATE`
	// ... and with the accounts of the batch's credit requests, gathered
	// into an array first, so that the lock is an index probe per ID
	// whatever the plan.
	qLockAccountsOfRequests = `SELECT ` + accountColumns + ` FROM accounts
		WHERE workspace = $1 AND id = ANY(ARRAY(
			SELECT unnest($2::text[])
			UNION SELECT account FROM credit_requests WHERE workspace = $1 AND id = ANY($3::text[])))
		ORDER BY id FOR UPDATE`
	// An account moves only from the version the batch read; anything else
	// fails the batch as a conflict before COMMIT is reached.
	qMoveAccounts = `WITH moved AS (
		UPDATE accounts a SET balance = u.balance, version = u.version, update_time = u.update_time
		FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::timestamptz[], $6::bigint[])
			AS u(id, balance, version, update_time, from_version)
		WHERE a.workspace = $1 AND a.id = u.id AND a.version = u.from_version
		RETURNING 1
	)
	SELECT ledger_expect(cardinality($2::text[]), count(*), 'accounts') FROM moved`
	qCreateAccounts = `INSERT INTO accounts (workspace, id, balance, version, update_time)
		SELECT $1, u.id, u.balance, u.version, u.update_time
		FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::timestamptz[]) AS u(id, balance, version, update_time)`
)

func scanAccount(row pgx.Row) (ledger.Account, error) {
	var a ledger.Account
	var upd pgtype.Timestamptz
	if err := row.Scan(&a.Workspace, &a.ID, &a.Balance, &a.Version, &upd); err != nil {
		return ledger.Account{}, err
	}
	a.UpdateTime = fromTime(upd)
	return a, nil
}

func (t *readTx) account(ctx context.Context, sql, workspace, id string) (ledger.Account, error) {
	rows, err := t.query(ctx, sql, workspace, id)
	if err != nil {
		return ledger.Account{}, err
	}
	return pgx.CollectExactlyOneRow(rows, func(r pgx.CollectableRow) (ledger.Account, error) { return scanAccount(r) })
}

// Account implements ledger.ReadTx.
func (t *readTx) Account(ctx context.Context, workspace, id string) (ledger.Account, error) {
	a, err := t.account(ctx, qAccount, workspace, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.Account{Workspace: workspace, ID: id}, nil
	}
	if err != nil {
		return ledger.Account{}, mapErr(ctx, "read account", err)
	}
	return a, nil
}

// ListAccounts implements ledger.ReadTx.
func (t *readTx) ListAccounts(ctx context.Context, q ledger.AccountQuery) ([]ledger.Account, error) {
	out, err := all(ctx, t, scanAccount, qListAccounts, q.Workspace, q.AfterID, q.Limit)
	if err != nil {
		return nil, mapErr(ctx, "list accounts", err)
	}
	return out, nil
}
