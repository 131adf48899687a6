package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/creditledger/creditledger/internal/ledger"
)

// readTx implements ledger.ReadTx over one PostgreSQL transaction.
type readTx struct {
	tx pgx.Tx
	// pinned, when set, is the context statements run with instead of the
	// caller's. Group commit sets it: members share one connection, and pgx
	// interrupts a statement whose context ends by breaking the connection,
	// which would abort every member. The caller's context is still checked
	// before each statement.
	pinned context.Context
}

// writeTx implements ledger.Tx inside a READ COMMITTED transaction. Each
// statement sees what was committed before it started, so whatever the
// transaction decides on, it locks first (the Lock* methods).
type writeTx struct {
	readTx
}

var (
	_ ledger.ReadTx = (*readTx)(nil)
	_ ledger.Tx     = (*writeTx)(nil)
)

// stmtCtx returns the context a statement runs with.
func (t *readTx) stmtCtx(ctx context.Context) (context.Context, error) {
	if t.pinned == nil {
		return ctx, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return t.pinned, nil
}

func (t *readTx) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	sctx, err := t.stmtCtx(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	return t.tx.Exec(sctx, sql, args...)
}

func (t *readTx) query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	sctx, err := t.stmtCtx(ctx)
	if err != nil {
		return nil, err
	}
	return t.tx.Query(sctx, sql, args...)
}

// one scans the single row sql returns (pgx.ErrNoRows when none).
func (t *readTx) one(ctx context.Context, sql string, args []any, dest ...any) error {
	sctx, err := t.stmtCtx(ctx)
	if err != nil {
		return err
	}
	return t.tx.QueryRow(sctx, sql, args...).Scan(dest...)
}

// all collects every row sql returns with scan.
func all[T any](ctx context.Context, t *readTx, scan func(pgx.Row) (T, error), sql string, args ...any) ([]T, error) {
	rows, err := t.query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
}

// ---------------------------------------------------------------------------
// Conversions between domain values and columns.

// toTime stores a time as UTC; the zero time is NULL.
func toTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

func fromTime(ts pgtype.Timestamptz) time.Time {
	if !ts.Valid {
		return time.Time{}
	}
	return ts.Time.UTC()
}

// toText stores "" as NULL (optional references).
func toText(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// toMetadata stores a map as a JSON object; an empty map is NULL.
func toMetadata(m map[string]string) (any, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("postgres: encode metadata: %w", err)
	}
	return b, nil
}

// fromMetadata reads a JSON object back; NULL and {} read as a nil map.
func fromMetadata(b []byte) (map[string]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("postgres: decode metadata: %w", err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// ---------------------------------------------------------------------------
// Settings and accounts

const qSettings = `SELECT credit_payments_enabled, update_time FROM settings WHERE workspace = $1`

// Settings implements ledger.ReadTx.
func (t *readTx) Settings(ctx context.Context, workspace string) (ledger.Settings, error) {
	st := ledger.Settings{Workspace: workspace}
	var upd pgtype.Timestamptz
	err := t.one(ctx, qSettings, []any{workspace}, &st.CreditPaymentsEnabled, &upd)
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.Settings{Workspace: workspace}, nil
	}
	if err != nil {
		return ledger.Settings{}, mapErr(ctx, "read settings", err)
	}
	st.UpdateTime = fromTime(upd)
	return st, nil
}

const accountColumns = `workspace, id, balance, version, update_time`

const (
	qAccount       = `SELECT ` + accountColumns + ` FROM accounts WHERE workspace = $1 AND id = $2`
	qLockAccount   = qAccount + ` FOR UPDATE`
	qCreateAccount = `INSERT INTO accounts (workspace, id, balance, version) VALUES ($1, $2, 0, 0)
		ON CONFLICT (workspace, id) DO NOTHING`
	qListAccounts = `SELECT ` + accountColumns + ` FROM accounts
		WHERE workspace = $1 AND id > $2 ORDER BY id LIMIT $3`
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

// ---------------------------------------------------------------------------
// Transactions

const transactionColumns = `id, workspace, account, type, kind, amount, balance_after, account_version,
	reference, idempotency_key, metadata, package_id, request_id, create_time`

const (
	qTransaction = `SELECT ` + transactionColumns + ` FROM transactions WHERE workspace = $1 AND id = $2`
	// The UNIQUE (workspace, account, account_version) index serves the
	// keyset range and the order; the filters are applied along the way.
	qListTransactions = `SELECT ` + transactionColumns + ` FROM transactions
		WHERE workspace = $1 AND account = $2 AND account_version < $3
		  AND ($4::text = '' OR type = $4::text)
		  AND ($5::text = '' OR kind = $5::text)
		  AND ($6::timestamptz IS NULL OR create_time >= $6::timestamptz)
		  AND ($7::timestamptz IS NULL OR create_time < $7::timestamptz)
		ORDER BY account_version DESC
		LIMIT $8`
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

// ---------------------------------------------------------------------------
// Idempotency

const idempotencyColumns = `workspace, key, operation, fingerprint, transaction_id, request_id, create_time`

const (
	qIdempotency     = `SELECT ` + idempotencyColumns + ` FROM idempotency_keys WHERE workspace = $1 AND key = $2`
	qIdempotencyPage = `SELECT ` + idempotencyColumns + ` FROM idempotency_keys
		WHERE workspace = $1 AND key > $2 ORDER BY key LIMIT $3`
	qPutIdempotency = `INSERT INTO idempotency_keys (` + idempotencyColumns + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`
	// The lock is a hash of workspace and key: an unrelated pair that
	// collides only waits a little longer.
	qLockIdempotency = `SELECT pg_advisory_xact_lock(hashtextextended($1::text || '/' || $2::text, 0))`
)

func scanIdempotency(row pgx.Row) (ledger.IdempotencyRecord, error) {
	var rec ledger.IdempotencyRecord
	var op string
	var txID, reqID pgtype.Text
	if err := row.Scan(&rec.Workspace, &rec.Key, &op, &rec.Fingerprint, &txID, &reqID, &rec.CreateTime); err != nil {
		return ledger.IdempotencyRecord{}, err
	}
	rec.Operation = ledger.Operation(op)
	rec.TransactionID, rec.RequestID, rec.CreateTime = txID.String, reqID.String, rec.CreateTime.UTC()
	return rec, nil
}

// Idempotency implements ledger.ReadTx.
func (t *readTx) Idempotency(ctx context.Context, workspace, key string) (ledger.IdempotencyRecord, bool, error) {
	rows, err := t.query(ctx, qIdempotency, workspace, key)
	var rec ledger.IdempotencyRecord
	if err == nil {
		rec, err = pgx.CollectExactlyOneRow(rows, func(r pgx.CollectableRow) (ledger.IdempotencyRecord, error) { return scanIdempotency(r) })
	}
	if errors.Is(err, pgx.ErrNoRows) {
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
	qRequest     = `SELECT ` + requestColumns + ` FROM credit_requests WHERE workspace = $1 AND id = $2`
	qLockRequest = qRequest + ` FOR UPDATE`
	// IDs are time-sortable: ID order is submission order. An empty
	// account or status means any; an empty cursor means the first page.
	qListRequestsAsc = `SELECT ` + requestColumns + ` FROM credit_requests
		WHERE workspace = $1 AND ($2::text = '' OR account = $2::text) AND ($3::text = '' OR status = $3::text)
		  AND id > $4::text
		ORDER BY id ASC
		LIMIT $5`
	qListRequestsDesc = `SELECT ` + requestColumns + ` FROM credit_requests
		WHERE workspace = $1 AND ($2::text = '' OR account = $2::text) AND ($3::text = '' OR status = $3::text)
		  AND ($4::text = '' OR id < $4::text)
		ORDER BY id DESC
		LIMIT $5`
	//nolint:gosec // G101: SQL naming a status, not a credential
	qPendingCredits = `SELECT COALESCE(SUM(amount), 0)::bigint FROM credit_requests
		WHERE workspace = $1 AND account = $2 AND status = 'PENDING'`
	qInsertRequest = `INSERT INTO credit_requests (id, workspace, account, amount, package_id, payment_method,
		payment_reference, note, status, metadata, idempotency_key, create_time)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'PENDING', $9, $10, $11)`
	qDecideRequest = `UPDATE credit_requests
		SET status = $1, decision_reason = $2, decided_by = $3, decide_time = $4, transaction_id = $5
		WHERE workspace = $6 AND id = $7 AND status = 'PENDING'`
)

func scanRequest(row pgx.Row) (ledger.CreditRequest, error) {
	var r ledger.CreditRequest
	var method, status string
	var pkg, txID pgtype.Text
	var md []byte
	var decided pgtype.Timestamptz
	if err := row.Scan(&r.ID, &r.Workspace, &r.Account, &r.Amount, &pkg, &method, &r.PaymentReference, &r.Note,
		&status, &r.DecisionReason, &r.DecidedBy, &decided, &txID, &md, &r.IdempotencyKey, &r.CreateTime); err != nil {
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
	r.DecideTime, r.CreateTime = fromTime(decided), r.CreateTime.UTC()
	return r, nil
}

func (t *readTx) request(ctx context.Context, sql, workspace, id string) (ledger.CreditRequest, error) {
	rows, err := t.query(ctx, sql, workspace, id)
	var r ledger.CreditRequest
	if err == nil {
		r, err = pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (ledger.CreditRequest, error) { return scanRequest(row) })
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.CreditRequest{}, ledger.NotFoundError("credit request", id)
	}
	if err != nil {
		return ledger.CreditRequest{}, mapErr(ctx, "read credit request", err)
	}
	return r, nil
}

// Request implements ledger.ReadTx.
func (t *readTx) Request(ctx context.Context, workspace, id string) (ledger.CreditRequest, error) {
	return t.request(ctx, qRequest, workspace, id)
}

// ListRequests implements ledger.ReadTx: keyset on the ID, ascending or
// descending; AfterID means "after it in the chosen order".
func (t *readTx) ListRequests(ctx context.Context, q ledger.RequestQuery) ([]ledger.CreditRequest, error) {
	var status string
	if q.Status != ledger.StatusUnspecified {
		status = q.Status.String()
	}
	sql := qListRequestsAsc
	if q.Desc {
		sql = qListRequestsDesc
	}
	out, err := all(ctx, t, scanRequest, sql, q.Workspace, q.Account, status, q.AfterID, q.Limit)
	if err != nil {
		return nil, mapErr(ctx, "list credit requests", err)
	}
	return out, nil
}

// PendingCredits implements ledger.ReadTx.
func (t *readTx) PendingCredits(ctx context.Context, workspace, account string) (int64, error) {
	var sum int64
	if err := t.one(ctx, qPendingCredits, []any{workspace, account}, &sum); err != nil {
		return 0, mapErr(ctx, "sum pending credits", err)
	}
	return sum, nil
}

// ---------------------------------------------------------------------------
// Packages

const packageColumns = `workspace, id, display_name, credits, price_currency, price_units, price_nanos,
	active, create_time, update_time`

const (
	qPackage      = `SELECT ` + packageColumns + ` FROM packages WHERE workspace = $1 AND id = $2`
	qLockPackage  = qPackage + ` FOR UPDATE`
	qListPackages = `SELECT ` + packageColumns + ` FROM packages
		WHERE workspace = $1 AND id > $2 AND (active OR $3::boolean)
		ORDER BY id
		LIMIT $4`
	qInsertPackage = `INSERT INTO packages (` + packageColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`
	qUpdatePackage = `UPDATE packages
		SET display_name = $1, credits = $2, price_currency = $3, price_units = $4, price_nanos = $5,
		    active = $6, update_time = $7
		WHERE workspace = $8 AND id = $9`
)

func scanPackage(row pgx.Row) (ledger.Package, error) {
	var p ledger.Package
	var upd pgtype.Timestamptz
	if err := row.Scan(&p.Workspace, &p.ID, &p.DisplayName, &p.Credits, &p.Price.Currency, &p.Price.Units,
		&p.Price.Nanos, &p.Active, &p.CreateTime, &upd); err != nil {
		return ledger.Package{}, err
	}
	p.CreateTime, p.UpdateTime = p.CreateTime.UTC(), fromTime(upd)
	return p, nil
}

// Package implements ledger.ReadTx.
func (t *readTx) Package(ctx context.Context, workspace, id string) (ledger.Package, error) {
	return t.pkg(ctx, qPackage, workspace, id)
}

// pkg reads one package with sql (plain or FOR UPDATE).
func (t *readTx) pkg(ctx context.Context, sql, workspace, id string) (ledger.Package, error) {
	rows, err := t.query(ctx, sql, workspace, id)
	var p ledger.Package
	if err == nil {
		p, err = pgx.CollectExactlyOneRow(rows, func(r pgx.CollectableRow) (ledger.Package, error) { return scanPackage(r) })
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.Package{}, ledger.NotFoundError("package", id)
	}
	if err != nil {
		return ledger.Package{}, mapErr(ctx, "read package", err)
	}
	return p, nil
}

// ListPackages implements ledger.ReadTx.
func (t *readTx) ListPackages(ctx context.Context, q ledger.PackageQuery) ([]ledger.Package, error) {
	out, err := all(ctx, t, scanPackage, qListPackages, q.Workspace, q.AfterID, q.ShowInactive, q.Limit)
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
		WHERE workspace = $1 AND currency = $2 AND active`
	qListRates = `SELECT ` + rateColumns + ` FROM conversion_rates
		WHERE workspace = $1 AND (active OR $2::boolean)
		ORDER BY currency, seq DESC`
	qDeactivateRate = `UPDATE conversion_rates SET active = false WHERE workspace = $1 AND currency = $2 AND active`
	qInsertRate     = `INSERT INTO conversion_rates (workspace, currency, rate, active, create_time)
		VALUES ($1, $2, $3, true, $4)`
)

func scanRate(row pgx.Row) (ledger.ConversionRate, error) {
	var r ledger.ConversionRate
	var rate string
	if err := row.Scan(&r.Workspace, &r.Currency, &rate, &r.Active, &r.CreateTime); err != nil {
		return ledger.ConversionRate{}, err
	}
	d, err := ledger.ParseDecimal(rate)
	if err != nil {
		return ledger.ConversionRate{}, fmt.Errorf("rate of %s: %w", r.Currency, err)
	}
	r.Rate, r.CreateTime = d, r.CreateTime.UTC()
	return r, nil
}

// ActiveRate implements ledger.ReadTx.
func (t *readTx) ActiveRate(ctx context.Context, workspace, currency string) (ledger.ConversionRate, error) {
	rows, err := t.query(ctx, qActiveRate, workspace, currency)
	var r ledger.ConversionRate
	if err == nil {
		r, err = pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (ledger.ConversionRate, error) { return scanRate(row) })
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.ConversionRate{}, ledger.NotFoundError("conversion rate", currency)
	}
	if err != nil {
		return ledger.ConversionRate{}, mapErr(ctx, "read conversion rate", err)
	}
	return r, nil
}

// ListRates implements ledger.ReadTx: by currency, newest first within one.
func (t *readTx) ListRates(ctx context.Context, workspace string, history bool) ([]ledger.ConversionRate, error) {
	out, err := all(ctx, t, scanRate, qListRates, workspace, history)
	if err != nil {
		return nil, mapErr(ctx, "list conversion rates", err)
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// Writes

const (
	// The account moves and its entry is inserted in one statement: when
	// the account is not where the entry says it was, nothing is inserted
	// and the transaction stays usable. Both sides of the balance check are
	// written so that they cannot overflow for valid entries: balance_after
	// - amount for IN, balance - amount for OUT.
	qAppendTransaction = `WITH moved AS (
		UPDATE accounts SET balance = $7, version = $8, update_time = $14
		WHERE workspace = $2 AND id = $3 AND version = $8 - 1
		  AND CASE $4::text WHEN 'IN' THEN balance = $7 - $6::bigint
		                    WHEN 'OUT' THEN balance - $6::bigint = $7 END
		RETURNING 1
	)
	INSERT INTO transactions (` + transactionColumns + `)
	SELECT $1::text, $2, $3, $4::text, $5::text, $6::bigint, $7, $8, $9::text, $10::text, $11::jsonb, $12::text, $13::text, $14
	FROM moved`
	qPutSettings = `INSERT INTO settings (workspace, credit_payments_enabled, update_time) VALUES ($1, $2, $3)
		ON CONFLICT (workspace) DO UPDATE SET
		  credit_payments_enabled = excluded.credit_payments_enabled,
		  update_time = excluded.update_time`
)

// LockIdempotency implements ledger.Tx: a transaction-scoped advisory lock
// on the key makes a concurrent request with the same key wait until this
// transaction ends. The read is a separate statement, so under READ
// COMMITTED it takes its snapshot after the lock is granted and sees the
// record the other request committed; both go in one round trip.
func (t *writeTx) LockIdempotency(ctx context.Context, workspace, key string) (ledger.IdempotencyRecord, bool, error) {
	sctx, err := t.stmtCtx(ctx)
	if err != nil {
		return ledger.IdempotencyRecord{}, false, mapErr(ctx, "lock idempotency key", err)
	}
	b := &pgx.Batch{}
	b.Queue(qLockIdempotency, workspace, key)
	b.Queue(qIdempotency, workspace, key)
	br := t.tx.SendBatch(sctx, b)
	rec, found, err := func() (ledger.IdempotencyRecord, bool, error) {
		if _, err := br.Exec(); err != nil {
			return ledger.IdempotencyRecord{}, false, err
		}
		rows, err := br.Query()
		if err != nil {
			return ledger.IdempotencyRecord{}, false, err
		}
		rec, err := pgx.CollectExactlyOneRow(rows, func(r pgx.CollectableRow) (ledger.IdempotencyRecord, error) { return scanIdempotency(r) })
		if errors.Is(err, pgx.ErrNoRows) {
			return ledger.IdempotencyRecord{}, false, nil
		}
		return rec, err == nil, err
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return ledger.IdempotencyRecord{}, false, mapErr(ctx, "lock idempotency key", err)
	}
	return rec, found, nil
}

// PutIdempotency implements ledger.Tx; a duplicate key is ErrConflict.
func (t *writeTx) PutIdempotency(ctx context.Context, rec ledger.IdempotencyRecord) error {
	_, err := t.exec(ctx, qPutIdempotency,
		rec.Workspace, rec.Key, string(rec.Operation), rec.Fingerprint,
		toText(rec.TransactionID), toText(rec.RequestID), toTime(rec.CreateTime))
	if err != nil {
		return mapErr(ctx, "store idempotency key", err)
	}
	return nil
}

// LockAccount implements ledger.Tx. A never-credited account is created
// at balance 0, version 0 and locked like any other, so that concurrent
// first postings to it queue behind each other; if the transaction rolls
// back, so does the creation.
func (t *writeTx) LockAccount(ctx context.Context, workspace, id string) (ledger.Account, error) {
	a, err := t.account(ctx, qLockAccount, workspace, id)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err = t.exec(ctx, qCreateAccount, workspace, id); err != nil {
			return ledger.Account{}, mapErr(ctx, "create account", err)
		}
		a, err = t.account(ctx, qLockAccount, workspace, id)
	}
	if err != nil {
		return ledger.Account{}, mapErr(ctx, "lock account", err)
	}
	return a, nil
}

// AppendTransaction implements ledger.Tx. The account moves only if it is
// at tr.AccountVersion-1 and its balance, moved by tr.Amount, is
// tr.BalanceAfter; otherwise ErrConflict. The schema's triggers check the
// entry against the previous one and the account again.
func (t *writeTx) AppendTransaction(ctx context.Context, tr ledger.Transaction) error {
	if tr.Type != ledger.TypeIn && tr.Type != ledger.TypeOut {
		return fmt.Errorf("postgres: append transaction %s: unspecified type", tr.ID)
	}
	md, err := toMetadata(tr.Metadata)
	if err != nil {
		return err
	}
	if tr.AccountVersion == 1 {
		if _, err := t.exec(ctx, qCreateAccount, tr.Workspace, tr.Account); err != nil {
			return mapErr(ctx, "append transaction: create account", err)
		}
	}
	tag, err := t.exec(ctx, qAppendTransaction,
		tr.ID, tr.Workspace, tr.Account, tr.Type.String(), tr.Kind.String(), tr.Amount, tr.BalanceAfter,
		tr.AccountVersion, tr.Reference, tr.IdempotencyKey, md, toText(tr.PackageID), toText(tr.RequestID),
		toTime(tr.CreateTime))
	if err != nil {
		return mapErr(ctx, "append transaction", err)
	}
	if tag.RowsAffected() != 1 {
		return ledger.ConflictError(fmt.Errorf("postgres: account %s/%s is not at version %d with a balance leading to %d",
			tr.Workspace, tr.Account, tr.AccountVersion-1, tr.BalanceAfter))
	}
	return nil
}

// PutSettings implements ledger.Tx.
func (t *writeTx) PutSettings(ctx context.Context, s ledger.Settings) error {
	if _, err := t.exec(ctx, qPutSettings, s.Workspace, s.CreditPaymentsEnabled, toTime(s.UpdateTime)); err != nil {
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
		r.ID, r.Workspace, r.Account, r.Amount, toText(r.PackageID), r.PaymentMethod.String(),
		r.PaymentReference, r.Note, md, r.IdempotencyKey, toTime(r.CreateTime))
	if err != nil {
		return mapErr(ctx, "insert credit request", err)
	}
	return nil
}

// LockRequest implements ledger.Tx: SELECT … FOR UPDATE, so concurrent
// deciders queue and each sees the decision of the one before.
func (t *writeTx) LockRequest(ctx context.Context, workspace, id string) (ledger.CreditRequest, error) {
	return t.request(ctx, qLockRequest, workspace, id)
}

// DecideRequest implements ledger.Tx: only a PENDING request changes; the
// schema's trigger enforces the state machine as well.
func (t *writeTx) DecideRequest(ctx context.Context, r ledger.CreditRequest) error {
	tag, err := t.exec(ctx, qDecideRequest,
		r.Status.String(), r.DecisionReason, r.DecidedBy, toTime(r.DecideTime), toText(r.TransactionID),
		r.Workspace, r.ID)
	if err != nil {
		return mapErr(ctx, "decide credit request", err)
	}
	if tag.RowsAffected() != 1 {
		return ledger.ConflictError(fmt.Errorf("postgres: credit request %s/%s is not pending", r.Workspace, r.ID))
	}
	return nil
}

// LockPackage implements ledger.Tx: the row stays locked until commit, so
// two concurrent partial updates apply one after the other.
func (t *writeTx) LockPackage(ctx context.Context, workspace, id string) (ledger.Package, error) {
	return t.pkg(ctx, qLockPackage, workspace, id)
}

// InsertPackage implements ledger.Tx; a taken ID is ErrAlreadyExists.
func (t *writeTx) InsertPackage(ctx context.Context, p ledger.Package) error {
	_, err := t.exec(ctx, qInsertPackage,
		p.Workspace, p.ID, p.DisplayName, p.Credits, p.Price.Currency, p.Price.Units, p.Price.Nanos,
		p.Active, toTime(p.CreateTime), toTime(p.UpdateTime))
	if err != nil {
		return mapErr(ctx, "insert package", err)
	}
	return nil
}

// UpdatePackage implements ledger.Tx.
func (t *writeTx) UpdatePackage(ctx context.Context, p ledger.Package) error {
	tag, err := t.exec(ctx, qUpdatePackage,
		p.DisplayName, p.Credits, p.Price.Currency, p.Price.Units, p.Price.Nanos,
		p.Active, toTime(p.UpdateTime), p.Workspace, p.ID)
	if err != nil {
		return mapErr(ctx, "update package", err)
	}
	if tag.RowsAffected() == 0 {
		return ledger.NotFoundError("package", p.ID)
	}
	return nil
}

// InsertRate implements ledger.Tx: the previous active rate of the
// currency becomes history and r becomes the active one. Two concurrent
// calls for one currency: the second's insert hits the one-active index
// once the first commits, which is ErrConflict (the Service retries).
func (t *writeTx) InsertRate(ctx context.Context, r ledger.ConversionRate) error {
	if _, err := t.exec(ctx, qDeactivateRate, r.Workspace, r.Currency); err != nil {
		return mapErr(ctx, "deactivate conversion rate", err)
	}
	if _, err := t.exec(ctx, qInsertRate, r.Workspace, r.Currency, r.Rate.String(), toTime(r.CreateTime)); err != nil {
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
	return nil, fmt.Errorf("postgres: %T is not a transaction of this store", tx)
}

// Workspaces implements ledger.Auditor.
func (s *Store) Workspaces(ctx context.Context, rtx ledger.ReadTx) ([]string, error) {
	t, err := ownTx(rtx)
	if err != nil {
		return nil, err
	}
	out, err := all(ctx, t, func(row pgx.Row) (string, error) {
		var ws string
		err := row.Scan(&ws)
		return ws, err
	}, qWorkspaces)
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
		recs, err := all(ctx, t, scanIdempotency, qIdempotencyPage, workspace, after, page)
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
