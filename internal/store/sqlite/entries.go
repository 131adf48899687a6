package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/creditledger/creditledger/internal/ledger"
)

// Transactions: the ledger's entries, append-only.

const transactionColumns = `id, workspace, account, type, kind, amount, balance_after, account_version,
	reference, idempotency_key, metadata, package_id, request_id, create_time,
	reverses_transaction_id, hold_id, expire_time`

// transactionSelect reads the stored columns and ReversedAmount, which the
// reversals of the entry sum to (one probe of transactions_reversals).
const transactionSelect = transactionColumns + `,
	(SELECT COALESCE(SUM(r.amount), 0) FROM transactions r
	 WHERE r.workspace = transactions.workspace AND r.reverses_transaction_id = transactions.id)`

const (
	qTransaction    = `SELECT ` + transactionSelect + ` FROM transactions WHERE workspace = ? AND id = ?`
	qTransactionsIn = `SELECT ` + transactionSelect + ` FROM transactions
		WHERE workspace = ? AND id IN (SELECT value FROM json_each(?))`
)

// transactionsQuery is the history query with the optional filters that
// are set, newest first (keyset below :before) or, with asc, oldest first
// (keyset above :after); the UNIQUE (workspace, account, account_version)
// index serves the keyset range and the order. Every variant is prepared
// at Open.
func transactionsQuery(typ, kind, start, end, asc bool) string {
	var b strings.Builder
	b.WriteString(`SELECT ` + transactionSelect + ` FROM transactions
		WHERE workspace = :ws AND account = :account`)
	if asc {
		b.WriteString(` AND account_version > :after`)
	} else {
		b.WriteString(` AND account_version < :before`)
	}
	if typ {
		b.WriteString(` AND type = :type`)
	}
	if kind {
		b.WriteString(` AND kind = :kind`)
	}
	if start {
		b.WriteString(` AND create_time >= :start`)
	}
	if end {
		b.WriteString(` AND create_time < :end`)
	}
	if asc {
		b.WriteString(` ORDER BY account_version ASC LIMIT :limit`)
	} else {
		b.WriteString(` ORDER BY account_version DESC LIMIT :limit`)
	}
	return b.String()
}

func scanTransaction(row scanner) (ledger.Transaction, error) {
	var tr ledger.Transaction
	var typ, kind string
	var md, pkg, req, reverses, hold sql.NullString
	var created, expires sql.NullInt64
	if err := row.Scan(&tr.ID, &tr.Workspace, &tr.Account, &typ, &kind, &tr.Amount, &tr.BalanceAfter,
		&tr.AccountVersion, &tr.Reference, &tr.IdempotencyKey, &md, &pkg, &req, &created,
		&reverses, &hold, &expires, &tr.ReversedAmount); err != nil {
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
	tr.PackageID, tr.RequestID, tr.CreateTime = pkg.String, req.String, fromMicros(created)
	tr.ReversesTransactionID, tr.HoldID, tr.ExpireTime = reverses.String, hold.String, fromMicros(expires)
	return tr, nil
}

// Transaction implements ledger.ReadTx.
func (t *readTx) Transaction(ctx context.Context, workspace, id string) (ledger.Transaction, error) {
	var tr ledger.Transaction
	err := t.one(ctx, qTransaction, []any{workspace, id}, func(row scanner) (err error) {
		tr, err = scanTransaction(row)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.Transaction{}, ledger.NotFoundError("transaction", id)
	}
	if err != nil {
		return ledger.Transaction{}, mapErr(ctx, "read transaction", err)
	}
	return tr, nil
}

// ListTransactions implements ledger.ReadTx: newest first (or oldest first
// with q.Ascending), keyset on the account version.
func (t *readTx) ListTransactions(ctx context.Context, q ledger.TransactionQuery) ([]ledger.Transaction, error) {
	args := []any{sql.Named("ws", q.Workspace), sql.Named("account", q.Account), sql.Named("limit", q.Limit)}
	if q.Ascending {
		args = append(args, sql.Named("after", max(q.AfterVersion, 0)))
	} else {
		before := q.BeforeVersion
		if before <= 0 {
			before = math.MaxInt64
		}
		args = append(args, sql.Named("before", before))
	}
	hasType, hasKind := q.Type != ledger.TypeUnspecified, q.Kind != ledger.KindUnspecified
	if hasType {
		args = append(args, sql.Named("type", q.Type.String()))
	}
	if hasKind {
		args = append(args, sql.Named("kind", q.Kind.String()))
	}
	if !q.Start.IsZero() {
		args = append(args, sql.Named("start", q.Start.UnixMicro()))
	}
	if !q.End.IsZero() {
		args = append(args, sql.Named("end", q.End.UnixMicro()))
	}
	var out []ledger.Transaction
	err := t.each(ctx, transactionsQuery(hasType, hasKind, !q.Start.IsZero(), !q.End.IsZero(), q.Ascending), args,
		func(row scanner) error {
			tr, err := scanTransaction(row)
			out = append(out, tr)
			return err
		})
	if err != nil {
		return nil, mapErr(ctx, "list transactions", err)
	}
	return out, nil
}

// transactionsIn adds the transactions of ids to into.
func (t *writeTx) transactionsIn(ctx context.Context, workspace string, ids []string, into map[string]ledger.Transaction) error {
	err := t.eachIn(ctx, qTransactionsIn, workspace, ids, func(row scanner) error {
		tr, err := scanTransaction(row)
		into[tr.ID] = tr
		return err
	})
	return mapErr(ctx, "read transactions", err)
}

// insertTransactions appends the batch's entries, after their accounts
// moved; the schema's triggers check each against the previous entry of
// its account and against the account.
// qInsertTransactions is the multi-row insert of entries (see multiRow).
const (
	qInsertTransactions    = `INSERT INTO transactions (` + transactionColumns + `) VALUES `
	transactionColumnCount = 17
)

func (t *writeTx) insertTransactions(ctx context.Context, trs []ledger.Transaction) error {
	err := execRows(ctx, &t.readTx, qInsertTransactions, transactionColumnCount, trs, func(tr ledger.Transaction) ([]any, error) {
		md, err := toMetadata(tr.Metadata)
		if err != nil {
			return nil, err
		}
		return []any{
			tr.ID, tr.Workspace, tr.Account, tr.Type.String(), tr.Kind.String(), tr.Amount, tr.BalanceAfter,
			tr.AccountVersion, tr.Reference, tr.IdempotencyKey, md, nullString(tr.PackageID), nullString(tr.RequestID),
			toMicros(tr.CreateTime), nullString(tr.ReversesTransactionID), nullString(tr.HoldID), toMicros(tr.ExpireTime),
		}, nil
	})
	return mapErr(ctx, "insert transactions", err)
}
