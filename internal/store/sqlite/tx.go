package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/creditledger/creditledger/internal/ledger"
)

// readTx implements ledger.ReadTx over one SQLite transaction.
type readTx struct {
	tx    *sql.Tx
	stmts map[string]*sql.Stmt // the pool's prepared statements, by query
}

// writeTx implements ledger.Tx inside a BEGIN IMMEDIATE transaction. The
// transaction holds the database's write lock from its first statement, so
// the Lock* methods are plain reads: no other writer can run until commit.
type writeTx struct {
	readTx
}

var (
	_ ledger.ReadTx = (*readTx)(nil)
	_ ledger.Tx     = (*writeTx)(nil)
)

// ---------------------------------------------------------------------------
// Conversions between domain values and columns.

// toMicros stores a time as microseconds since the epoch, UTC; the zero
// time is NULL.
func toMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

// nullString stores "" as NULL (optional references).
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// toMetadata stores a map as JSON; an empty map is NULL.
func toMetadata(m map[string]string) (any, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("sqlite: encode metadata: %w", err)
	}
	return string(b), nil
}

// fromMetadata reads JSON back; NULL and "{}" read as a nil map.
func fromMetadata(v sql.NullString) (map[string]string, error) {
	if !v.Valid || v.String == "" || v.String == "{}" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(v.String), &m); err != nil {
		return nil, fmt.Errorf("sqlite: decode metadata: %w", err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// ---------------------------------------------------------------------------
// Statements. Each pool prepares its statements once (see prepareAll):
// SQLite's parser is a large share of a short transaction's cost,
// especially for the INSERT that compiles the ledger's triggers.

// prepared returns q as a statement of this transaction, reusing the pool's
// prepared statement when there is one. The caller closes it.
func (t *readTx) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := t.stmts[q]; ok {
		return t.tx.StmtContext(ctx, st), nil
	}
	return t.tx.PrepareContext(ctx, q)
}

func (t *readTx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	st, err := t.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	defer func() { _ = st.Close() }()
	return st.ExecContext(ctx, args...)
}

// one scans the single row q returns (sql.ErrNoRows when none).
func (t *readTx) one(ctx context.Context, q string, args []any, scan func(scanner) error) error {
	st, err := t.prepared(ctx, q)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	return scan(st.QueryRowContext(ctx, args...))
}

// each scans every row q returns.
func (t *readTx) each(ctx context.Context, q string, args []any, scan func(scanner) error) error {
	st, err := t.prepared(ctx, q)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// ---------------------------------------------------------------------------
// Settings and accounts

const qSettings = `SELECT credit_payments_enabled, update_time FROM settings WHERE workspace = ?`

// Settings implements ledger.ReadTx.
func (t *readTx) Settings(ctx context.Context, workspace string) (ledger.Settings, error) {
	st := ledger.Settings{Workspace: workspace}
	err := t.one(ctx, qSettings, []any{workspace}, func(row scanner) error {
		var enabled int64
		var upd sql.NullInt64
		if err := row.Scan(&enabled, &upd); err != nil {
			return err
		}
		st.CreditPaymentsEnabled, st.UpdateTime = enabled == 1, fromMicros(upd)
		return nil
	})
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.Settings{Workspace: workspace}, nil
	}
	if err != nil {
		return ledger.Settings{}, mapErr(ctx, "read settings", err)
	}
	return st, nil
}

const accountColumns = `workspace, id, balance, version, update_time`

const (
	qAccount      = `SELECT ` + accountColumns + ` FROM accounts WHERE workspace = ? AND id = ?`
	qListAccounts = `SELECT ` + accountColumns + ` FROM accounts WHERE workspace = ? AND id > ? ORDER BY id LIMIT ?`
)

func scanAccount(row scanner) (ledger.Account, error) {
	var a ledger.Account
	var upd sql.NullInt64
	if err := row.Scan(&a.Workspace, &a.ID, &a.Balance, &a.Version, &upd); err != nil {
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

// ---------------------------------------------------------------------------
// Transactions

const transactionColumns = `id, workspace, account, type, kind, amount, balance_after, account_version,
	reference, idempotency_key, metadata, package_id, request_id, create_time`

const qTransaction = `SELECT ` + transactionColumns + ` FROM transactions WHERE workspace = ? AND id = ?`

// transactionsQuery is the history query with the optional filters that
// are set; the UNIQUE (workspace, account, account_version) index serves
// the keyset range and the order. Every variant is prepared at Open.
func transactionsQuery(typ, kind, start, end bool) string {
	var b strings.Builder
	b.WriteString(`SELECT ` + transactionColumns + ` FROM transactions
		WHERE workspace = :ws AND account = :account AND account_version < :before`)
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
	b.WriteString(` ORDER BY account_version DESC LIMIT :limit`)
	return b.String()
}

func scanTransaction(row scanner) (ledger.Transaction, error) {
	var tr ledger.Transaction
	var typ, kind string
	var md, pkg, req sql.NullString
	var created sql.NullInt64
	if err := row.Scan(&tr.ID, &tr.Workspace, &tr.Account, &typ, &kind, &tr.Amount, &tr.BalanceAfter,
		&tr.AccountVersion, &tr.Reference, &tr.IdempotencyKey, &md, &pkg, &req, &created); err != nil {
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

// ListTransactions implements ledger.ReadTx: newest first, keyset on the
// account version.
func (t *readTx) ListTransactions(ctx context.Context, q ledger.TransactionQuery) ([]ledger.Transaction, error) {
	before := q.BeforeVersion
	if before <= 0 {
		before = math.MaxInt64
	}
	args := []any{
		sql.Named("ws", q.Workspace), sql.Named("account", q.Account), sql.Named("before", before),
		sql.Named("limit", q.Limit),
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
	err := t.each(ctx, transactionsQuery(hasType, hasKind, !q.Start.IsZero(), !q.End.IsZero()), args,
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

// ---------------------------------------------------------------------------
// Idempotency

const idempotencyColumns = `workspace, key, operation, fingerprint, transaction_id, request_id, create_time`

const (
	qIdempotency     = `SELECT ` + idempotencyColumns + ` FROM idempotency_keys WHERE workspace = ? AND key = ?`
	qIdempotencyPage = `SELECT ` + idempotencyColumns + ` FROM idempotency_keys
		WHERE workspace = ? AND key > ? ORDER BY key LIMIT ?`
	qPutIdempotency = `INSERT INTO idempotency_keys (` + idempotencyColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?)`
)

func scanIdempotency(row scanner) (ledger.IdempotencyRecord, error) {
	var rec ledger.IdempotencyRecord
	var op string
	var txID, reqID sql.NullString
	var created sql.NullInt64
	if err := row.Scan(&rec.Workspace, &rec.Key, &op, &rec.Fingerprint, &txID, &reqID, &created); err != nil {
		return ledger.IdempotencyRecord{}, err
	}
	rec.Operation = ledger.Operation(op)
	rec.TransactionID, rec.RequestID, rec.CreateTime = txID.String, reqID.String, fromMicros(created)
	return rec, nil
}

// Idempotency implements ledger.ReadTx.
func (t *readTx) Idempotency(ctx context.Context, workspace, key string) (ledger.IdempotencyRecord, bool, error) {
	var rec ledger.IdempotencyRecord
	err := t.one(ctx, qIdempotency, []any{workspace, key}, func(row scanner) (err error) {
		rec, err = scanIdempotency(row)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.IdempotencyRecord{}, false, nil
	}
	if err != nil {
		return ledger.IdempotencyRecord{}, false, mapErr(ctx, "read idempotency key", err)
	}
	return rec, true, nil
}

// ---------------------------------------------------------------------------
// Credit requests

const requestColumns = `id, workspace, account, amount, package_id, payment_method, payment_reference, note,
	status, decision_reason, decided_by, decide_time, transaction_id, metadata, idempotency_key, create_time`

const (
	qRequest = `SELECT ` + requestColumns + ` FROM credit_requests WHERE workspace = ? AND id = ?`
	//nolint:gosec // G101: SQL naming a status, not a credential
	qPendingCredits = `SELECT COALESCE(SUM(amount), 0) FROM credit_requests
		WHERE workspace = ? AND account = ? AND status = 'PENDING'`
	qInsertRequest = `INSERT INTO credit_requests (id, workspace, account, amount, package_id, payment_method,
		payment_reference, note, status, metadata, idempotency_key, create_time)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'PENDING', ?, ?, ?)`
	qDecideRequest = `UPDATE credit_requests
		SET status = ?, decision_reason = ?, decided_by = ?, decide_time = ?, transaction_id = ?
		WHERE workspace = ? AND id = ? AND status = 'PENDING'`
)

// requestsQuery is the request listing with the filters that are set, in
// ID order (IDs are time-sortable); every variant is prepared at Open.
func requestsQuery(account, status, after, desc bool) string {
	var b strings.Builder
	b.WriteString(`SELECT ` + requestColumns + ` FROM credit_requests WHERE workspace = :ws`)
	if account {
		b.WriteString(` AND account = :account`)
	}
	if status {
		b.WriteString(` AND status = :status`)
	}
	switch {
	case after && desc:
		b.WriteString(` AND id < :after`)
	case after:
		b.WriteString(` AND id > :after`)
	}
	if desc {
		b.WriteString(` ORDER BY id DESC LIMIT :limit`)
	} else {
		b.WriteString(` ORDER BY id ASC LIMIT :limit`)
	}
	return b.String()
}

func scanRequest(row scanner) (ledger.CreditRequest, error) {
	var r ledger.CreditRequest
	var method, status string
	var pkg, txID, md sql.NullString
	var decided, created sql.NullInt64
	if err := row.Scan(&r.ID, &r.Workspace, &r.Account, &r.Amount, &pkg, &method, &r.PaymentReference, &r.Note,
		&status, &r.DecisionReason, &r.DecidedBy, &decided, &txID, &md, &r.IdempotencyKey, &created); err != nil {
		return ledger.CreditRequest{}, err
	}
	var ok bool
	if r.PaymentMethod, ok = ledger.ParsePaymentMethod(method); !ok {
		return ledger.CreditRequest{}, fmt.Errorf("request %s has unknown payment method %q", r.ID, method)
	}
	if r.Status, ok = ledger.ParseRequestStatus(status); !ok {
		return ledger.CreditRequest{}, fmt.Errorf("request %s has unknown status %q", r.ID, status)
	}
	var err error
	if r.Metadata, err = fromMetadata(md); err != nil {
		return ledger.CreditRequest{}, err
	}
	r.PackageID, r.TransactionID = pkg.String, txID.String
	r.DecideTime, r.CreateTime = fromMicros(decided), fromMicros(created)
	return r, nil
}

// Request implements ledger.ReadTx.
func (t *readTx) Request(ctx context.Context, workspace, id string) (ledger.CreditRequest, error) {
	var r ledger.CreditRequest
	err := t.one(ctx, qRequest, []any{workspace, id}, func(row scanner) (err error) {
		r, err = scanRequest(row)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.CreditRequest{}, ledger.NotFoundError("credit request", id)
	}
	if err != nil {
		return ledger.CreditRequest{}, mapErr(ctx, "read credit request", err)
	}
	return r, nil
}

// ListRequests implements ledger.ReadTx: keyset on the ID, ascending or
// descending; AfterID means "after it in the chosen order".
func (t *readTx) ListRequests(ctx context.Context, q ledger.RequestQuery) ([]ledger.CreditRequest, error) {
	args := []any{sql.Named("ws", q.Workspace), sql.Named("limit", q.Limit)}
	if q.Account != "" {
		args = append(args, sql.Named("account", q.Account))
	}
	if q.Status != ledger.StatusUnspecified {
		args = append(args, sql.Named("status", q.Status.String()))
	}
	if q.AfterID != "" {
		args = append(args, sql.Named("after", q.AfterID))
	}
	var out []ledger.CreditRequest
	err := t.each(ctx, requestsQuery(q.Account != "", q.Status != ledger.StatusUnspecified, q.AfterID != "", q.Desc), args,
		func(row scanner) error {
			r, err := scanRequest(row)
			out = append(out, r)
			return err
		})
	if err != nil {
		return nil, mapErr(ctx, "list credit requests", err)
	}
	return out, nil
}

// PendingCredits implements ledger.ReadTx.
func (t *readTx) PendingCredits(ctx context.Context, workspace, account string) (int64, error) {
	var sum int64
	err := t.one(ctx, qPendingCredits, []any{workspace, account}, func(row scanner) error {
		return row.Scan(&sum)
	})
	if err != nil {
		return 0, mapErr(ctx, "sum pending credits", err)
	}
	return sum, nil
}

// ---------------------------------------------------------------------------
// Packages

const packageColumns = `workspace, id, display_name, credits, price_currency, price_units, price_nanos,
	active, create_time, update_time`

const (
	qPackage      = `SELECT ` + packageColumns + ` FROM packages WHERE workspace = ? AND id = ?`
	qListPackages = `SELECT ` + packageColumns + ` FROM packages
		WHERE workspace = ? AND id > ? AND (active = 1 OR ? = 1) ORDER BY id LIMIT ?`
	qInsertPackage = `INSERT INTO packages (` + packageColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qUpdatePackage = `UPDATE packages
		SET display_name = ?, credits = ?, price_currency = ?, price_units = ?, price_nanos = ?,
		    active = ?, update_time = ?
		WHERE workspace = ? AND id = ?`
)

func scanPackage(row scanner) (ledger.Package, error) {
	var p ledger.Package
	var active int64
	var created, updated sql.NullInt64
	if err := row.Scan(&p.Workspace, &p.ID, &p.DisplayName, &p.Credits, &p.Price.Currency, &p.Price.Units,
		&p.Price.Nanos, &active, &created, &updated); err != nil {
		return ledger.Package{}, err
	}
	p.Active, p.CreateTime, p.UpdateTime = active == 1, fromMicros(created), fromMicros(updated)
	return p, nil
}

// Package implements ledger.ReadTx.
func (t *readTx) Package(ctx context.Context, workspace, id string) (ledger.Package, error) {
	var p ledger.Package
	err := t.one(ctx, qPackage, []any{workspace, id}, func(row scanner) (err error) {
		p, err = scanPackage(row)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.Package{}, ledger.NotFoundError("package", id)
	}
	if err != nil {
		return ledger.Package{}, mapErr(ctx, "read package", err)
	}
	return p, nil
}

// ListPackages implements ledger.ReadTx.
func (t *readTx) ListPackages(ctx context.Context, q ledger.PackageQuery) ([]ledger.Package, error) {
	var out []ledger.Package
	err := t.each(ctx, qListPackages, []any{q.Workspace, q.AfterID, boolInt(q.ShowInactive), q.Limit},
		func(row scanner) error {
			p, err := scanPackage(row)
			out = append(out, p)
			return err
		})
	if err != nil {
		return nil, mapErr(ctx, "list packages", err)
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// Conversion rates

const rateColumns = `workspace, currency, rate, active, create_time`

const (
	qActiveRate = `SELECT ` + rateColumns + ` FROM conversion_rates
		WHERE workspace = ? AND currency = ? AND active = 1`
	qListRates = `SELECT ` + rateColumns + ` FROM conversion_rates
		WHERE workspace = ? AND (active = 1 OR ? = 1) ORDER BY currency, seq DESC`
	qDeactivateRate = `UPDATE conversion_rates SET active = 0 WHERE workspace = ? AND currency = ? AND active = 1`
	qInsertRate     = `INSERT INTO conversion_rates (workspace, currency, seq, rate, active, create_time)
		VALUES (:ws, :currency,
		        (SELECT COALESCE(MAX(seq), 0) + 1 FROM conversion_rates WHERE workspace = :ws AND currency = :currency),
		        :rate, 1, :time)`
)

func scanRate(row scanner) (ledger.ConversionRate, error) {
	var r ledger.ConversionRate
	var rate string
	var active int64
	var created sql.NullInt64
	if err := row.Scan(&r.Workspace, &r.Currency, &rate, &active, &created); err != nil {
		return ledger.ConversionRate{}, err
	}
	d, err := ledger.ParseDecimal(rate)
	if err != nil {
		return ledger.ConversionRate{}, fmt.Errorf("rate of %s: %w", r.Currency, err)
	}
	r.Rate, r.Active, r.CreateTime = d, active == 1, fromMicros(created)
	return r, nil
}

// ActiveRate implements ledger.ReadTx.
func (t *readTx) ActiveRate(ctx context.Context, workspace, currency string) (ledger.ConversionRate, error) {
	var r ledger.ConversionRate
	err := t.one(ctx, qActiveRate, []any{workspace, currency}, func(row scanner) (err error) {
		r, err = scanRate(row)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.ConversionRate{}, ledger.NotFoundError("conversion rate", currency)
	}
	if err != nil {
		return ledger.ConversionRate{}, mapErr(ctx, "read conversion rate", err)
	}
	return r, nil
}

// ListRates implements ledger.ReadTx: by currency, newest first within one.
func (t *readTx) ListRates(ctx context.Context, workspace string, history bool) ([]ledger.ConversionRate, error) {
	var out []ledger.ConversionRate
	err := t.each(ctx, qListRates, []any{workspace, boolInt(history)}, func(row scanner) error {
		r, err := scanRate(row)
		out = append(out, r)
		return err
	})
	if err != nil {
		return nil, mapErr(ctx, "list conversion rates", err)
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// Writes

const (
	qSavepoint     = `SAVEPOINT append_transaction`
	qRollbackTo    = `ROLLBACK TO append_transaction`
	qRelease       = `RELEASE append_transaction`
	qCreateAccount = `INSERT INTO accounts (workspace, id, balance, version, update_time) VALUES (?, ?, 0, 0, NULL)
		ON CONFLICT (workspace, id) DO NOTHING`
	// Both sides of the balance check are written so that they cannot
	// overflow: balance_after - amount for IN, balance - amount for OUT.
	qMoveAccount = `UPDATE accounts SET balance = :after, version = :version, update_time = :time
		WHERE workspace = :ws AND id = :account AND version = :version - 1
		  AND CASE :type WHEN 'IN' THEN balance = :after - :amount
		                 WHEN 'OUT' THEN balance - :amount = :after END`
	qInsertTransaction = `INSERT INTO transactions (` + transactionColumns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qPutSettings = `INSERT INTO settings (workspace, credit_payments_enabled, update_time) VALUES (?, ?, ?)
		ON CONFLICT (workspace) DO UPDATE SET
		  credit_payments_enabled = excluded.credit_payments_enabled,
		  update_time = excluded.update_time`
)

// LockIdempotency implements ledger.Tx. The transaction already holds the
// database's write lock, which serialises every writer.
func (t *writeTx) LockIdempotency(ctx context.Context, workspace, key string) (ledger.IdempotencyRecord, bool, error) {
	return t.Idempotency(ctx, workspace, key)
}

// PutIdempotency implements ledger.Tx; a duplicate key is ErrConflict.
func (t *writeTx) PutIdempotency(ctx context.Context, rec ledger.IdempotencyRecord) error {
	_, err := t.exec(ctx, qPutIdempotency,
		rec.Workspace, rec.Key, string(rec.Operation), rec.Fingerprint,
		nullString(rec.TransactionID), nullString(rec.RequestID), toMicros(rec.CreateTime))
	if isUnique(err) {
		return ledger.ConflictError(fmt.Errorf("sqlite: idempotency key taken: %w", err))
	}
	if err != nil {
		return mapErr(ctx, "store idempotency key", err)
	}
	return nil
}

// LockAccount implements ledger.Tx (see LockIdempotency).
func (t *writeTx) LockAccount(ctx context.Context, workspace, id string) (ledger.Account, error) {
	return t.Account(ctx, workspace, id)
}

// AppendTransaction implements ledger.Tx. The account moves only if it is
// at tr.AccountVersion-1 and its balance, moved by tr.Amount, is
// tr.BalanceAfter; otherwise ErrConflict and nothing changes. The schema's
// triggers check the entry against the previous one and the account again.
func (t *writeTx) AppendTransaction(ctx context.Context, tr ledger.Transaction) (err error) {
	if tr.Type != ledger.TypeIn && tr.Type != ledger.TypeOut {
		return fmt.Errorf("sqlite: append transaction %s: unspecified type", tr.ID)
	}
	md, err := toMetadata(tr.Metadata)
	if err != nil {
		return err
	}
	// A savepoint keeps a refused append from leaving a half-created account.
	if _, err := t.exec(ctx, qSavepoint); err != nil {
		return mapErr(ctx, "append transaction", err)
	}
	defer func() {
		bg := context.WithoutCancel(ctx)
		if err != nil {
			if _, rerr := t.exec(bg, qRollbackTo); rerr != nil {
				err = errors.Join(err, mapErr(ctx, "append transaction: roll back", rerr))
			}
		}
		if _, rerr := t.exec(bg, qRelease); rerr != nil && err == nil {
			err = mapErr(ctx, "append transaction: release", rerr)
		}
	}()

	if tr.AccountVersion == 1 {
		if _, err := t.exec(ctx, qCreateAccount, tr.Workspace, tr.Account); err != nil {
			return mapErr(ctx, "append transaction: create account", err)
		}
	}
	res, err := t.exec(ctx, qMoveAccount,
		sql.Named("after", tr.BalanceAfter), sql.Named("version", tr.AccountVersion),
		sql.Named("time", toMicros(tr.CreateTime)), sql.Named("ws", tr.Workspace),
		sql.Named("account", tr.Account), sql.Named("type", tr.Type.String()), sql.Named("amount", tr.Amount))
	if err != nil {
		return mapErr(ctx, "append transaction: move account", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return mapErr(ctx, "append transaction: move account", err)
	}
	if n != 1 {
		return ledger.ConflictError(fmt.Errorf("sqlite: account %s/%s is not at version %d with a balance leading to %d",
			tr.Workspace, tr.Account, tr.AccountVersion-1, tr.BalanceAfter))
	}
	_, err = t.exec(ctx, qInsertTransaction,
		tr.ID, tr.Workspace, tr.Account, tr.Type.String(), tr.Kind.String(), tr.Amount, tr.BalanceAfter,
		tr.AccountVersion, tr.Reference, tr.IdempotencyKey, md, nullString(tr.PackageID), nullString(tr.RequestID),
		toMicros(tr.CreateTime))
	if isUnique(err) {
		return ledger.ConflictError(fmt.Errorf("sqlite: append transaction: %w", err))
	}
	if err != nil {
		return mapErr(ctx, "append transaction", err)
	}
	return nil
}

// PutSettings implements ledger.Tx.
func (t *writeTx) PutSettings(ctx context.Context, s ledger.Settings) error {
	if _, err := t.exec(ctx, qPutSettings, s.Workspace, boolInt(s.CreditPaymentsEnabled), toMicros(s.UpdateTime)); err != nil {
		return mapErr(ctx, "store settings", err)
	}
	return nil
}

// InsertRequest implements ledger.Tx.
func (t *writeTx) InsertRequest(ctx context.Context, r ledger.CreditRequest) error {
	md, err := toMetadata(r.Metadata)
	if err != nil {
		return err
	}
	_, err = t.exec(ctx, qInsertRequest,
		r.ID, r.Workspace, r.Account, r.Amount, nullString(r.PackageID), r.PaymentMethod.String(),
		r.PaymentReference, r.Note, md, r.IdempotencyKey, toMicros(r.CreateTime))
	if isUnique(err) {
		return ledger.ConflictError(fmt.Errorf("sqlite: insert credit request: %w", err))
	}
	if err != nil {
		return mapErr(ctx, "insert credit request", err)
	}
	return nil
}

// LockPackage implements ledger.Tx (see LockIdempotency).
func (t *writeTx) LockPackage(ctx context.Context, workspace, id string) (ledger.Package, error) {
	return t.Package(ctx, workspace, id)
}

// LockRequest implements ledger.Tx; the write transaction already holds
// the database's write lock (BEGIN IMMEDIATE).
func (t *writeTx) LockRequest(ctx context.Context, workspace, id string) (ledger.CreditRequest, error) {
	return t.Request(ctx, workspace, id)
}

// DecideRequest implements ledger.Tx: only a PENDING request changes; the
// schema's triggers enforce the state machine as well.
func (t *writeTx) DecideRequest(ctx context.Context, r ledger.CreditRequest) error {
	res, err := t.exec(ctx, qDecideRequest,
		r.Status.String(), r.DecisionReason, r.DecidedBy, toMicros(r.DecideTime), nullString(r.TransactionID),
		r.Workspace, r.ID)
	if err != nil {
		return mapErr(ctx, "decide credit request", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return mapErr(ctx, "decide credit request", err)
	}
	if n != 1 {
		return ledger.ConflictError(fmt.Errorf("sqlite: credit request %s/%s is not pending", r.Workspace, r.ID))
	}
	return nil
}

// InsertPackage implements ledger.Tx; a taken ID is ErrAlreadyExists.
func (t *writeTx) InsertPackage(ctx context.Context, p ledger.Package) error {
	_, err := t.exec(ctx, qInsertPackage,
		p.Workspace, p.ID, p.DisplayName, p.Credits, p.Price.Currency, p.Price.Units, int64(p.Price.Nanos),
		boolInt(p.Active), toMicros(p.CreateTime), toMicros(p.UpdateTime))
	if isUnique(err) {
		return ledger.AlreadyExistsError("package "+p.ID, fmt.Errorf("sqlite: insert package: %w", err))
	}
	if err != nil {
		return mapErr(ctx, "insert package", err)
	}
	return nil
}

// UpdatePackage implements ledger.Tx.
func (t *writeTx) UpdatePackage(ctx context.Context, p ledger.Package) error {
	res, err := t.exec(ctx, qUpdatePackage,
		p.DisplayName, p.Credits, p.Price.Currency, p.Price.Units, int64(p.Price.Nanos),
		boolInt(p.Active), toMicros(p.UpdateTime), p.Workspace, p.ID)
	if err != nil {
		return mapErr(ctx, "update package", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return mapErr(ctx, "update package", err)
	}
	if n == 0 {
		return ledger.NotFoundError("package", p.ID)
	}
	return nil
}

// InsertRate implements ledger.Tx: the previous active rate of the
// currency becomes history and r becomes the active one.
func (t *writeTx) InsertRate(ctx context.Context, r ledger.ConversionRate) error {
	if _, err := t.exec(ctx, qDeactivateRate, r.Workspace, r.Currency); err != nil {
		return mapErr(ctx, "deactivate conversion rate", err)
	}
	_, err := t.exec(ctx, qInsertRate,
		sql.Named("ws", r.Workspace), sql.Named("currency", r.Currency),
		sql.Named("rate", r.Rate.String()), sql.Named("time", toMicros(r.CreateTime)))
	if isUnique(err) {
		return ledger.ConflictError(fmt.Errorf("sqlite: insert conversion rate: %w", err))
	}
	if err != nil {
		return mapErr(ctx, "insert conversion rate", err)
	}
	return nil
}

// ---------------------------------------------------------------------------
// ledger.Auditor

const qWorkspaces = `
	SELECT workspace FROM settings
	UNION SELECT workspace FROM accounts
	UNION SELECT workspace FROM credit_requests
	UNION SELECT workspace FROM idempotency_keys
	UNION SELECT workspace FROM packages
	UNION SELECT workspace FROM conversion_rates
	ORDER BY 1`

// ownTx returns the transaction behind a ReadTx this store gave.
func ownTx(tx ledger.ReadTx) (*readTx, error) {
	switch x := tx.(type) {
	case *readTx:
		return x, nil
	case *writeTx:
		return &x.readTx, nil
	}
	return nil, fmt.Errorf("sqlite: %T is not a transaction of this store", tx)
}

// Workspaces implements ledger.Auditor.
func (s *Store) Workspaces(ctx context.Context, rtx ledger.ReadTx) ([]string, error) {
	t, err := ownTx(rtx)
	if err != nil {
		return nil, err
	}
	var out []string
	err = t.each(ctx, qWorkspaces, nil, func(row scanner) error {
		var ws string
		err := row.Scan(&ws)
		out = append(out, ws)
		return err
	})
	if err != nil {
		return nil, mapErr(ctx, "list workspaces", err)
	}
	return out, nil
}

// IdempotencyRecords implements ledger.Auditor. Records are read in pages
// so that fn may use the transaction while no result set is open.
func (s *Store) IdempotencyRecords(ctx context.Context, rtx ledger.ReadTx, workspace string, fn func(ledger.IdempotencyRecord) error) error {
	t, err := ownTx(rtx)
	if err != nil {
		return err
	}
	const page = 500
	after := ""
	for {
		var recs []ledger.IdempotencyRecord
		err := t.each(ctx, qIdempotencyPage, []any{workspace, after, page}, func(row scanner) error {
			rec, err := scanIdempotency(row)
			recs = append(recs, rec)
			return err
		})
		if err != nil {
			return mapErr(ctx, "list idempotency keys", err)
		}
		for _, rec := range recs {
			if err := fn(rec); err != nil {
				return err
			}
		}
		if len(recs) < page {
			return nil
		}
		after = recs[len(recs)-1].Key
	}
}

// ---------------------------------------------------------------------------
// Statement sets

// readQueries are the statements of ReadTx, prepared on both pools.
func readQueries() []string {
	qs := []string{
		qSettings, qAccount, qListAccounts, qTransaction, qIdempotency, qIdempotencyPage, qRequest,
		qPendingCredits, qPackage, qListPackages, qActiveRate, qListRates, qWorkspaces,
	}
	for i := 0; i < 16; i++ {
		qs = append(qs, transactionsQuery(i&1 != 0, i&2 != 0, i&4 != 0, i&8 != 0),
			requestsQuery(i&1 != 0, i&2 != 0, i&4 != 0, i&8 != 0))
	}
	return qs
}

// writeQueries are the statements only Tx uses, prepared on the writer.
func writeQueries() []string {
	return []string{
		qSavepoint, qRollbackTo, qRelease, qCreateAccount, qMoveAccount, qInsertTransaction,
		qPutIdempotency, qPutSettings, qInsertRequest, qDecideRequest, qInsertPackage, qUpdatePackage,
		qDeactivateRate, qInsertRate,
	}
}

// prepareAll prepares qs on db. Call it before the pool is used by
// transactions: with the writer's single connection, preparing while a
// transaction holds it would wait forever.
func prepareAll(ctx context.Context, db *sql.DB, qs []string) (map[string]*sql.Stmt, error) {
	m := make(map[string]*sql.Stmt, len(qs))
	for _, q := range qs {
		if _, dup := m[q]; dup {
			continue
		}
		st, err := db.PrepareContext(ctx, q) //nolint:sqlclosecheck // kept for the store's life; closeAll in Close
		if err != nil {
			closeAll(m)
			return nil, fmt.Errorf("sqlite: prepare %q: %w", firstLine(q), err)
		}
		m[q] = st
	}
	return m, nil
}

func closeAll(m map[string]*sql.Stmt) {
	for _, st := range m {
		_ = st.Close()
	}
}

func firstLine(q string) string {
	q = strings.TrimSpace(q)
	if i := strings.IndexByte(q, '\n'); i >= 0 {
		return q[:i] + " …"
	}
	return q
}
