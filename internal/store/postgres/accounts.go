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

const accountColumns = `workspace, id, balance, version, update_time, held`

const (
	qAccount      = `SELECT ` + accountColumns + ` FROM accounts WHERE workspace = $1 AND id = $2`
	qListAccounts = `SELECT ` + accountColumns + ` FROM accounts
		WHERE workspace = $1 AND id > $2 ORDER BY id LIMIT $3`

	// Batch reads and writes (batch.go). Every batch statement is a
	// prepared statement whose plan must not depend on statistics (a plan
	// cached while a table was nearly empty would otherwise keep scanning
	// it as it grows): rows are found one ID at a time by a LATERAL probe
	// of the primary key that cannot be flattened into a join (FOR UPDATE
	// or OFFSET 0), in the order of the sorted ID array, which is also the
	// order in which the rows are locked.
	// Each locked account also says whether it has open grants (granted,
	// the sum of their remaining credits, migration 0005), so that a batch
	// reads the grants of those accounts only (batch.go).
	qLockAccounts = `SELECT a.* FROM unnest($2::text[]) AS q(id)
		CROSS JOIN LATERAL (SELECT ` + accountColumns + `, granted FROM accounts
			WHERE workspace = $1 AND id = q.id FOR UPDATE) a`
	// ... and with the accounts of the batch's credit requests, holds
	// (both locked just before, in the same round trip) and entries.
	qLockAccountsOf = `SELECT a.* FROM (
			SELECT id FROM unnest($2::text[]) AS q(id)
			UNION
			SELECT r.account FROM unnest($3::text[]) AS q(id)
			CROSS JOIN LATERAL (SELECT account FROM credit_requests WHERE workspace = $1 AND id = q.id OFFSET 0) r
			UNION
			SELECT h.account FROM unnest($4::text[]) AS q(id)
			CROSS JOIN LATERAL (SELECT account FROM holds WHERE workspace = $1 AND id = q.id OFFSET 0) h
			UNION
			SELECT t.account FROM unnest($5::text[]) AS q(id)
			CROSS JOIN LATERAL (SELECT account FROM transactions WHERE id = q.id AND workspace = $1 OFFSET 0) t
			ORDER BY 1) AS q(id)
		CROSS JOIN LATERAL (SELECT ` + accountColumns + `, granted FROM accounts
			WHERE workspace = $1 AND id = q.id FOR UPDATE) a`
	// An account moves only from the version the batch read (and locked),
	// one primary-key update each. Should it not be there, the batch's
	// entries fail the chain check or the unique version before COMMIT,
	// and the batch is a conflict (batch.go).
	qMoveAccount = `UPDATE accounts SET balance = $3, version = $4, update_time = $5, held = $7
		WHERE workspace = $1 AND id = $2 AND version = $6`
	// ... and every such move of a batch in one statement: the executor's
	// start (and the parsing of the table's CHECK constraints and trigger
	// conditions that comes with it) is paid once per batch, not once per
	// account. The rows are found by one scan of the primary key for the
	// array of IDs (no join for a generic plan to get wrong; plan_test.go
	// checks it), each takes its values at its ID's position, and the
	// statement's row count must be the number of moves (batch.go).
	qMoveAccounts = `UPDATE accounts a SET balance = m.balance, version = m.version, update_time = m.update_time, held = m.held
		FROM (SELECT l.tid, u.* FROM (SELECT * FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::timestamptz[], $6::bigint[], $7::bigint[])
				AS u(id, balance, version, update_time, held, from_version) OFFSET 0) u
			CROSS JOIN LATERAL (SELECT ctid AS tid FROM accounts
				WHERE workspace = $1 AND id = u.id AND version = u.from_version OFFSET 0) l) m
		WHERE a.ctid = m.tid`
	// A move of held alone (a hold created or ended) posts no entry that
	// could fail in its place: the batch asserts that it found the
	// account at the version it read.
	qMoveAccountHeld = `WITH moved AS (
		UPDATE accounts SET balance = $3, version = $4, update_time = $5, held = $7
		WHERE workspace = $1 AND id = $2 AND version = $6
		RETURNING 1
	)
	SELECT ledger_expect(1, count(*), 'account ' || $2::text) FROM moved`
	qCreateAccounts = `INSERT INTO accounts (workspace, id, balance, version, update_time, held)
		SELECT $1, u.id, u.balance, u.version, u.update_time, u.held
		FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::timestamptz[], $6::bigint[])
			AS u(id, balance, version, update_time, held)`
)

func scanAccount(row pgx.Row) (ledger.Account, error) {
	var a ledger.Account
	var upd pgtype.Timestamptz
	if err := row.Scan(&a.Workspace, &a.ID, &a.Balance, &a.Version, &upd, &a.Held); err != nil {
		return ledger.Account{}, err
	}
	a.UpdateTime = fromTime(upd)
	return a, nil
}

// scanLockedAccount scans a row of qLockAccounts or qLockAccountsOf: the
// account, and the credits its open grants hold.
func scanLockedAccount(row pgx.Row) (lockedAccount, error) {
	var l lockedAccount
	var upd pgtype.Timestamptz
	if err := row.Scan(&l.Workspace, &l.ID, &l.Balance, &l.Version, &upd, &l.Held, &l.granted); err != nil {
		return lockedAccount{}, err
	}
	l.UpdateTime = fromTime(upd)
	return l, nil
}

type lockedAccount struct {
	ledger.Account
	granted int64
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
