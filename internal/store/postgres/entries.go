package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// ---------------------------------------------------------------------------
// Transactions

// transactionColumns are the stored columns; transactionSelect reads them
// from "transactions t" with the entry's ReversedAmount: the sum of its
// reversals, one probe of the partial index of reversals (which holds
// nothing but reversals), computed on every read.
const (
	transactionColumns = `id, workspace, account, type, kind, amount, balance_after, account_version,
	reference, idempotency_key, metadata, package_id, request_id, create_time,
	reverses_transaction_id, hold_id, expire_time`
	transactionSelect = `t.id, t.workspace, t.account, t.type, t.kind, t.amount, t.balance_after, t.account_version,
	t.reference, t.idempotency_key, t.metadata, t.package_id, t.request_id, t.create_time,
	t.reverses_transaction_id, t.hold_id, t.expire_time,
	(SELECT COALESCE(sum(r.amount), 0) FROM transactions r
		WHERE r.reverses_transaction_id = t.id AND r.workspace = t.workspace)::bigint AS reversed_amount`
)

const (
	qTransaction = `SELECT ` + transactionSelect + ` FROM transactions t WHERE t.workspace = $1 AND t.id = $2`
	// The UNIQUE (account, workspace, account_version) index serves the
	// keyset range and the order; the filters are applied along the way.
	qListTransactions = `SELECT ` + transactionSelect + ` FROM transactions t
		WHERE t.workspace = $1 AND t.account = $2 AND t.account_version < $3
		  AND ($4::text = '' OR t.type = $4::text)
		  AND ($5::text = '' OR t.kind = $5::text)
		  AND ($6::timestamptz IS NULL OR t.create_time >= $6::timestamptz)
		  AND ($7::timestamptz IS NULL OR t.create_time < $7::timestamptz)
		ORDER BY t.account_version DESC
		LIMIT $8`
	// Oldest first (exports): versions after $3.
	qListTransactionsAsc = `SELECT ` + transactionSelect + ` FROM transactions t
		WHERE t.workspace = $1 AND t.account = $2 AND t.account_version > $3
		  AND ($4::text = '' OR t.type = $4::text)
		  AND ($5::text = '' OR t.kind = $5::text)
		  AND ($6::timestamptz IS NULL OR t.create_time >= $6::timestamptz)
		  AND ($7::timestamptz IS NULL OR t.create_time < $7::timestamptz)
		ORDER BY t.account_version ASC
		LIMIT $8`

	// Batch reads and writes (batch.go): the transactions that a batch's
	// idempotency records name (replays) and those it reverses (read after
	// the account locks, so that their ReversedAmount is what the batches
	// it waited for left), one primary-key probe each (see accounts.go);
	// and the batch's new entries, sorted by account and version. The
	// schema's statement-level trigger checks the chain of all of them at
	// once.
	qTransactionsByID = `SELECT t.* FROM unnest($2::text[]) AS q(id)
		CROSS JOIN LATERAL (SELECT ` + transactionSelect + ` FROM transactions t
			WHERE t.id = q.id AND t.workspace = $1 OFFSET 0) t`
	qInsertPlainTransactions = `INSERT INTO transactions (id, workspace, account, type, kind, amount, balance_after,
		account_version, reference, idempotency_key, metadata, package_id, request_id, create_time)
		SELECT u.id, $1, u.account, u.type, u.kind, u.amount, u.balance_after, u.account_version, u.reference,
			u.idempotency_key, u.metadata::jsonb, u.package_id, u.request_id, u.create_time
		FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[],
			$9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::timestamptz[])
			AS u(id, account, type, kind, amount, balance_after, account_version, reference, idempotency_key,
			     metadata, package_id, request_id, create_time)`
	qInsertTransactions = `INSERT INTO transactions (` + transactionColumns + `)
		SELECT u.id, $1, u.account, u.type, u.kind, u.amount, u.balance_after, u.account_version, u.reference,
			u.idempotency_key, u.metadata::jsonb, u.package_id, u.request_id, u.create_time,
			u.reverses_transaction_id, u.hold_id, u.expire_time
		FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[],
			$9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::timestamptz[],
			$15::text[], $16::text[], $17::timestamptz[])
			AS u(id, account, type, kind, amount, balance_after, account_version, reference, idempotency_key,
			     metadata, package_id, request_id, create_time, reverses_transaction_id, hold_id, expire_time)`
)

func scanTransaction(row pgx.Row) (ledger.Transaction, error) {
	var tr ledger.Transaction
	var typ, kind string
	var md []byte
	var pkg, req, rev, hold pgtype.Text
	var expire pgtype.Timestamptz
	if err := row.Scan(&tr.ID, &tr.Workspace, &tr.Account, &typ, &kind, &tr.Amount, &tr.BalanceAfter,
		&tr.AccountVersion, &tr.Reference, &tr.IdempotencyKey, &md, &pkg, &req, &tr.CreateTime,
		&rev, &hold, &expire, &tr.ReversedAmount); err != nil {
		return ledger.Transaction{}, err
	}
	var ok bool
	if tr.Type, ok = ledger.ParseTxType(typ); !ok {
		return ledger.Transaction{}, fmt.Errorf("transaction %s has unknown type %q", tr.ID, typ)
	}
	if tr.Kind, ok = ledger.ParseKind(kind); !ok {
		return ledger.Transaction{}, fmt.Errorf("transaction %s has unknown kind %q", tr.ID, kind)
	}
	var err error
	if tr.Metadata, err = fromMetadata(md); err != nil {
		return ledger.Transaction{}, err
	}
	tr.PackageID, tr.RequestID, tr.CreateTime = pkg.String, req.String, tr.CreateTime.UTC()
	tr.ReversesTransactionID, tr.HoldID, tr.ExpireTime = rev.String, hold.String, fromTime(expire)
	return tr, nil
}

// Transaction implements ledger.ReadTx.
func (t *readTx) Transaction(ctx context.Context, workspace, id string) (ledger.Transaction, error) {
	rows, err := t.query(ctx, qTransaction, workspace, id)
	var tr ledger.Transaction
	if err == nil {
		tr, err = pgx.CollectExactlyOneRow(rows, func(r pgx.CollectableRow) (ledger.Transaction, error) { return scanTransaction(r) })
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.Transaction{}, ledger.NotFoundError("transaction", id)
	}
	if err != nil {
		return ledger.Transaction{}, mapErr(ctx, "read transaction", err)
	}
	return tr, nil
}

// ListTransactions implements ledger.ReadTx: newest first, keyset on the
// account version (or oldest first with q.Ascending).
func (t *readTx) ListTransactions(ctx context.Context, q ledger.TransactionQuery) ([]ledger.Transaction, error) {
	sql, bound := qListTransactions, q.BeforeVersion
	switch {
	case q.Ascending:
		sql, bound = qListTransactionsAsc, max(q.AfterVersion, 0)
	case bound <= 0:
		bound = math.MaxInt64
	}
	var typ, kind string
	if q.Type != ledger.TypeUnspecified {
		typ = q.Type.String()
	}
	if q.Kind != ledger.KindUnspecified {
		kind = q.Kind.String()
	}
	out, err := all(ctx, t, scanTransaction, sql,
		q.Workspace, q.Account, bound, typ, kind, toTime(q.Start), toTime(q.End), q.Limit)
	if err != nil {
		return nil, mapErr(ctx, "list transactions", err)
	}
	return out, nil
}
