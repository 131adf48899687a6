package invoicing

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/creditledger/creditledger/internal/consumer"
)

// Store is the invoicing service's durable state in one SQLite file, in
// WAL mode with synchronous=FULL: a status change whose commit returned
// survives a crash or a power loss.
type Store struct {
	db *sql.DB
}

var (
	errNoRows = sql.ErrNoRows // wrapped by the getters when nothing matches
	errExists = errors.New("already exists")
)

// migrations are the invoicing database's schema: NNNN_name.sql, applied
// in order and never edited once released.
//
//go:embed migrations/*.sql
var migrations embed.FS

var schema = consumer.Schema{FS: migrations, Dir: "migrations"}

// OpenStore opens (creating if needed) the SQLite file at path, migrated
// to the latest schema.
func OpenStore(ctx context.Context, path string) (*Store, error) {
	db, err := consumer.OpenSQLite(ctx, path, schema)
	if err != nil {
		return nil, fmt.Errorf("invoicing store: %w", err)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// pragma reads one PRAGMA value (tests check the durability settings).
func (s *Store) pragma(ctx context.Context, name string) (string, error) {
	return consumer.Pragma(ctx, s.db, name)
}

const columns = `id, workspace, account, number, description, currency, units, nanos, status, credits, idempotency_key,
	transaction_id, last_failure, create_time, update_time, COALESCE(paid_time, ''), hold_id, method`

func scan(row consumer.Row) (Invoice, error) {
	var i Invoice
	var ct, ut, pt string
	err := row.Scan(&i.ID, &i.Workspace, &i.Account, &i.Number, &i.Description, &i.Amount.CurrencyCode, &i.Amount.Units,
		&i.Amount.Nanos, &i.Status, &i.Credits, &i.IdempotencyKey, &i.TransactionID, &i.LastFailure, &ct, &ut, &pt, &i.HoldID, &i.Method)
	i.CreateTime, i.UpdateTime = consumer.ParseTime(ct), consumer.ParseTime(ut)
	if pt != "" {
		p := consumer.ParseTime(pt)
		i.PaidTime = &p
	}
	return i, err
}

// Insert records a new OPEN invoice; an empty number is assigned from the
// workspace's sequence ("INV-000001"). errExists when the number is taken.
func (s *Store) Insert(ctx context.Context, inv Invoice) (Invoice, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Invoice{}, fmt.Errorf("insert invoice: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var seq int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) + 1 FROM invoices WHERE workspace = ?`, inv.Workspace).Scan(&seq); err != nil {
		return Invoice{}, fmt.Errorf("insert invoice: %w", err)
	}
	if inv.Number == "" {
		inv.Number = fmt.Sprintf("INV-%06d", seq)
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM invoices WHERE workspace = ? AND number = ?`, inv.Workspace, inv.Number).Scan(&n); err != nil {
		return Invoice{}, fmt.Errorf("insert invoice: %w", err)
	}
	if n > 0 {
		return Invoice{}, errExists
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO invoices (id, workspace, account, seq, number, description, currency, units, nanos, status, create_time, update_time)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'OPEN', ?, ?)`,
		inv.ID, inv.Workspace, inv.Account, seq, inv.Number, inv.Description, inv.Amount.CurrencyCode, inv.Amount.Units,
		inv.Amount.Nanos, consumer.FormatTime(inv.CreateTime), consumer.FormatTime(inv.CreateTime))
	if err != nil {
		return Invoice{}, fmt.Errorf("insert invoice: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Invoice{}, fmt.Errorf("insert invoice: %w", err)
	}
	inv.Status, inv.UpdateTime = StatusOpen, inv.CreateTime
	return inv, nil
}

// Get returns one invoice of the workspace.
func (s *Store) Get(ctx context.Context, workspace, id string) (Invoice, error) {
	return consumer.QueryOne(ctx, s.db, "get invoice", scan, `SELECT `+columns+` FROM invoices WHERE workspace = ? AND id = ?`, workspace, id)
}

func (s *Store) query(ctx context.Context, q string, args ...any) ([]Invoice, error) {
	return consumer.QueryAll(ctx, s.db, "list invoices", scan, q, args...)
}

// List returns a workspace's invoices, optionally of one account and one
// status, newest first.
func (s *Store) List(ctx context.Context, workspace, account string, status Status) ([]Invoice, error) {
	return s.query(ctx, `SELECT `+columns+` FROM invoices
		WHERE workspace = ?1 AND (?2 = '' OR account = ?2) AND (?3 = '' OR status = ?3) ORDER BY seq DESC`,
		workspace, account, string(status))
}

// Paying returns every invoice whose payment is in progress, oldest first.
func (s *Store) Paying(ctx context.Context) ([]Invoice, error) {
	return s.query(ctx, `SELECT `+columns+` FROM invoices WHERE status = 'PAYING' ORDER BY update_time`)
}

// BeginPaying durably records the intent to pay an OPEN invoice with
// credits: status PAYING, the credits and the ledger key of this attempt
// (key for the first, key:<n> for the n-th), with no hold yet. It reports
// false when the invoice was not OPEN (someone else got there first).
func (s *Store) BeginPaying(ctx context.Context, workspace, id string, credits int64, key string, now time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, `
		UPDATE invoices SET status = 'PAYING', credits = ?1, method = 'HOLD', hold_id = '', attempt = attempt + 1,
			idempotency_key = CASE WHEN attempt = 0 THEN ?2 ELSE ?2 || ':' || (attempt + 1) END, update_time = ?3
		WHERE workspace = ?4 AND id = ?5 AND status = 'OPEN'`,
		credits, key, consumer.FormatTime(now), workspace, id)
	if err != nil {
		return false, fmt.Errorf("begin paying: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// SetHold records the hold placed for the payment in progress (the
// attempt with this key). The stored invoice is returned.
func (s *Store) SetHold(ctx context.Context, workspace, id, key, holdID string, now time.Time) (Invoice, error) {
	_, err := s.db.ExecContext(ctx, `
		UPDATE invoices SET hold_id = ?, update_time = ?
		WHERE workspace = ? AND id = ? AND status = 'PAYING' AND idempotency_key = ? AND hold_id = ''`,
		holdID, consumer.FormatTime(now), workspace, id, key)
	if err != nil {
		return Invoice{}, fmt.Errorf("set hold: %w", err)
	}
	return s.Get(ctx, workspace, id)
}

// MarkPaid records the posted debit. The debit is the truth: an invoice
// whose key was posted is paid, also if a concurrent refusal had moved it
// back to OPEN meanwhile.
func (s *Store) MarkPaid(ctx context.Context, workspace, id, txID string, now time.Time) (Invoice, error) {
	_, err := s.db.ExecContext(ctx, `
		UPDATE invoices SET status = 'PAID', transaction_id = ?, last_failure = '', paid_time = ?, update_time = ?
		WHERE workspace = ? AND id = ? AND status <> 'PAID'`,
		txID, consumer.FormatTime(now), consumer.FormatTime(now), workspace, id)
	if err != nil {
		return Invoice{}, fmt.Errorf("mark paid: %w", err)
	}
	return s.Get(ctx, workspace, id)
}

// AbortPaying moves a PAYING invoice back to OPEN with the ledger's
// refusal: nothing was posted under its key.
func (s *Store) AbortPaying(ctx context.Context, workspace, id, reason string, now time.Time) (Invoice, error) {
	_, err := s.db.ExecContext(ctx, `
		UPDATE invoices SET status = 'OPEN', last_failure = ?, update_time = ?
		WHERE workspace = ? AND id = ? AND status = 'PAYING'`,
		reason, consumer.FormatTime(now), workspace, id)
	if err != nil {
		return Invoice{}, fmt.Errorf("abort paying: %w", err)
	}
	return s.Get(ctx, workspace, id)
}

// EndAttempt moves the payment attempt whose hold is holdID back to OPEN
// with the reason. With settled, an attempt already ended (OPEN, the
// same hold) takes this reason instead of the one it has: its own caller
// knows why better than an event that got there first. The stored
// invoice is returned.
func (s *Store) EndAttempt(ctx context.Context, workspace, id, holdID, reason string, settled bool, now time.Time) (Invoice, error) {
	_, err := s.db.ExecContext(ctx, `
		UPDATE invoices SET status = 'OPEN', last_failure = ?1, update_time = ?2
		WHERE workspace = ?3 AND id = ?4 AND hold_id = ?5 AND hold_id <> ''
			AND (status = 'PAYING' OR (?6 AND status = 'OPEN'))`,
		reason, consumer.FormatTime(now), workspace, id, holdID, settled)
	if err != nil {
		return Invoice{}, fmt.Errorf("end attempt: %w", err)
	}
	return s.Get(ctx, workspace, id)
}

// ByHold returns the invoice whose current payment attempt holds holdID.
func (s *Store) ByHold(ctx context.Context, workspace, holdID string) (Invoice, error) {
	return consumer.QueryOne(ctx, s.db, "invoice by hold", scan, `SELECT `+columns+` FROM invoices WHERE workspace = ? AND hold_id = ? AND hold_id <> ''`,
		workspace, holdID)
}

// Workspaces lists the workspaces whose ledger events invoicing follows:
// those it has invoices in, and those it has a cursor for.
func (s *Store) Workspaces(ctx context.Context) ([]string, error) {
	return consumer.QueryAll(ctx, s.db, "workspaces", consumer.ScanString, `SELECT workspace FROM event_cursors UNION SELECT workspace FROM invoices ORDER BY 1`)
}

// Cursor is the sequence of the last ledger event of the workspace that
// invoicing applied; 0 before the first.
func (s *Store) Cursor(ctx context.Context, workspace string) (int64, error) {
	return consumer.Cursor(ctx, s.db, workspace)
}

// SaveCursor records that the workspace's events up to seq are applied.
func (s *Store) SaveCursor(ctx context.Context, workspace string, seq int64) error {
	return consumer.SaveCursor(ctx, s.db, workspace, seq)
}

// NoteFailure records the reason of a payment refused before PAYING.
func (s *Store) NoteFailure(ctx context.Context, workspace, id, reason string, now time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE invoices SET last_failure = ?, update_time = ? WHERE workspace = ? AND id = ? AND status = 'OPEN'`,
		reason, consumer.FormatTime(now), workspace, id)
	if err != nil {
		return fmt.Errorf("note failure: %w", err)
	}
	return nil
}
