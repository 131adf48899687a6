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

const transactionColumns = `id, workspace, account, type, kind, amount, balance_after, account_version,
	reference, idempotency_key, metadata, package_id, request_id, create_time`

const (
	qTransaction = `SELECT ` + transactionColumns + ` FROM transactions WHERE workspace = $1 AND id = $2`
	// The UNIQUE (account, workspace, account_version) index serves the
	// keyset range and the order; the filters are applied along the way.
	qListTransactions = `SELECT ` + transactionColumns + ` FROM transactions
		WHERE workspace = $1 AND account = $2 AND account_version < $3
		  AND ($4::text = '' OR type = $4::text)
		  AND ($5::text = '' OR kind = $5::text)
		  AND ($6::timestamptz IS NULL OR create_time >= $6::timestamptz)
		  AND ($7::timestamptz IS NULL OR create_time < $7::timestamptz)
		ORDER BY account_version DESC
		LIMIT $8`

	// Batch reads and writes (batch.go): the transactions that a batch's
	// idempotency records name (replays; one primary-key probe each, see
	// accounts.go), and the batch's new entries, sorted by account and
	// version. The schema's statement-level trigger checks the chain of all
	// of them at once.
	qTransactionsByID = `SELECT t.* FROM unnest($2::text[]) AS q(id)
		CROSS JOIN LATERAL (SELECT ` + transactionColumns + ` FROM transactions
			WHERE id = q.id AND workspace = $1 OFFSET 0) t`
	qInsertTransactions = `INSERT INTO transactions (` + transactionColumns + `)
		SELECT u.id, $1, u.account, u.type, u.kind, u.amount, u.balance_after, u.account_version, u.reference,
			u.idempotency_key, u.metadata::jsonb, u.package_id, u.request_id, u.create_time
		FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[],
			$9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::timestamptz[])
			AS u(id, account, type, kind, amount, balance_after, account_version, reference, idempotency_key,
			     metadata, package_id, request_id, create_time)`
)

func scanTransaction(row pgx.Row) (ledger.Transaction, error) {
	var tr ledger.Transaction
	var typ, kind string
	var md []byte
	var pkg, req pgtype.Text
	if err := row.Scan(&tr.ID, &tr.Workspace, &tr.Account, &typ, &kind, &tr.Amount, &tr.BalanceAfter,
		&tr.AccountVersion, &tr.Reference, &tr.IdempotencyKey, &md, &pkg, &req, &tr.CreateTime); err != nil {
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
// account version.
func (t *readTx) ListTransactions(ctx context.Context, q ledger.TransactionQuery) ([]ledger.Transaction, error) {
	before := q.BeforeVersion
	if before <= 0 {
		before = math.MaxInt64
	}
	var typ, kind string
	if q.Type != ledger.TypeUnspecified {
		typ = q.Type.String()
	}
	if q.Kind != ledger.KindUnspecified {
		kind = q.Kind.String()
	}
	out, err := all(ctx, t, scanTransaction, qListTransactions,
		q.Workspace, q.Account, before, typ, kind, toTime(q.Start), toTime(q.End), q.Limit)
	if err != nil {
		return nil, mapErr(ctx, "list transactions", err)
	}
	return out, nil
}
