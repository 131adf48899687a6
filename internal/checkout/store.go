package checkout

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver: pure Go, no cgo
)

// Store is the checkout's durable state in one SQLite file: the catalog,
// the orders, the credit purchases and the provider payments received.
// It is opened in WAL mode with synchronous=FULL, so that a transaction
// whose commit returned survives a crash or a power loss.
type Store struct {
	db *sql.DB
}

// errNoRows is returned by the getters when nothing matches.
var errNoRows = errors.New("not found")

// timeLayout is fixed-width so that stored times sort as text.
const timeLayout = "2006-01-02T15:04:05.000000Z"

const schema = `
CREATE TABLE services (
	workspace       TEXT NOT NULL,
	id              TEXT NOT NULL,
	name            TEXT NOT NULL,
	currency        TEXT NOT NULL,
	units           INTEGER NOT NULL,
	nanos           INTEGER NOT NULL,
	credit_eligible INTEGER NOT NULL CHECK (credit_eligible IN (0, 1)),
	create_time     TEXT NOT NULL,
	update_time     TEXT NOT NULL,
	PRIMARY KEY (workspace, id),
	CHECK (units >= 0 AND nanos BETWEEN 0 AND 999999999 AND (units > 0 OR nanos > 0))
) STRICT;

CREATE TABLE orders (
	id              TEXT PRIMARY KEY,
	workspace       TEXT NOT NULL,
	account         TEXT NOT NULL,
	service_id      TEXT NOT NULL,
	service_name    TEXT NOT NULL,
	currency        TEXT NOT NULL,
	units           INTEGER NOT NULL,
	nanos           INTEGER NOT NULL,
	credits         INTEGER NOT NULL CHECK (credits > 0),
	status          TEXT NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'FAILED')),
	failure_reason  TEXT NOT NULL DEFAULT '',
	idempotency_key TEXT NOT NULL UNIQUE,
	transaction_id  TEXT NOT NULL DEFAULT '',
	client_key      TEXT,
	create_time     TEXT NOT NULL,
	update_time     TEXT NOT NULL,
	UNIQUE (workspace, account, client_key),
	-- an order is never confirmed without the posted debit
	CHECK (status <> 'CONFIRMED' OR transaction_id <> '')
) STRICT;
CREATE INDEX orders_by_account ON orders (workspace, account, create_time);
CREATE INDEX orders_pending ON orders (create_time) WHERE status = 'PENDING';

CREATE TABLE purchases (
	id                TEXT PRIMARY KEY,
	workspace         TEXT NOT NULL,
	account           TEXT NOT NULL,
	package_id        TEXT NOT NULL,
	method            TEXT NOT NULL CHECK (method IN ('STRIPE', 'PAYPAL', 'BANK_TRANSFER', 'CRYPTO')),
	status            TEXT NOT NULL CHECK (status IN ('AWAITING_PAYMENT', 'SUBMITTING', 'PENDING_APPROVAL', 'CREDITED', 'REJECTED', 'FAILED')),
	payment_reference TEXT NOT NULL DEFAULT '',
	note              TEXT NOT NULL DEFAULT '',
	credits           INTEGER NOT NULL DEFAULT 0,
	request_id        TEXT NOT NULL DEFAULT '',
	transaction_id    TEXT NOT NULL DEFAULT '',
	provider_payment  TEXT NOT NULL DEFAULT '',
	failure_reason    TEXT NOT NULL DEFAULT '',
	client_key        TEXT,
	create_time       TEXT NOT NULL,
	update_time       TEXT NOT NULL,
	UNIQUE (workspace, account, client_key),
	CHECK (status <> 'CREDITED' OR transaction_id <> '')
) STRICT;
CREATE INDEX purchases_open ON purchases (status) WHERE status IN ('SUBMITTING', 'PENDING_APPROVAL');

CREATE TABLE payments (
	provider        TEXT NOT NULL,
	payment_id      TEXT NOT NULL,
	workspace       TEXT NOT NULL,
	account         TEXT NOT NULL,
	package_id      TEXT NOT NULL,
	purchase_id     TEXT NOT NULL DEFAULT '',
	status          TEXT NOT NULL CHECK (status IN ('RECEIVED', 'CREDITED', 'FAILED')),
	credits         INTEGER NOT NULL DEFAULT 0,
	transaction_id  TEXT NOT NULL DEFAULT '',
	failure_reason  TEXT NOT NULL DEFAULT '',
	deliveries      INTEGER NOT NULL DEFAULT 1,
	create_time     TEXT NOT NULL,
	update_time     TEXT NOT NULL,
	PRIMARY KEY (provider, payment_id),
	CHECK (status <> 'CREDITED' OR transaction_id <> '')
) STRICT;
CREATE INDEX payments_received ON payments (create_time) WHERE status = 'RECEIVED';
`

// migrations[i] brings the schema from version i+1 to i+2.
var migrations = []string{
	// 2: "Buy with Credit" reserves the credits (a hold) when the order is
	// placed and spends them when it is confirmed; a confirmed order can be
	// refunded (a reversal). SQLite cannot change a CHECK, so the orders
	// table is rebuilt. Orders from before were one-step debits (method
	// DEBIT): one still PENDING is finished by replaying its debit.
	`CREATE TABLE orders_v2 (
	id               TEXT PRIMARY KEY,
	workspace        TEXT NOT NULL,
	account          TEXT NOT NULL,
	service_id       TEXT NOT NULL,
	service_name     TEXT NOT NULL,
	currency         TEXT NOT NULL,
	units            INTEGER NOT NULL,
	nanos            INTEGER NOT NULL,
	credits          INTEGER NOT NULL CHECK (credits > 0),
	status           TEXT NOT NULL CHECK (status IN ('PENDING', 'HELD', 'CONFIRMED', 'CANCELLED', 'EXPIRED', 'FAILED',
	                                                 'PARTIALLY_REFUNDED', 'REFUNDED')),
	method           TEXT NOT NULL DEFAULT 'HOLD' CHECK (method IN ('HOLD', 'DEBIT')),
	action           TEXT NOT NULL DEFAULT '' CHECK (action IN ('', 'CONFIRM', 'CANCEL')),
	hold_ttl_seconds INTEGER NOT NULL DEFAULT 0,
	hold_id          TEXT NOT NULL DEFAULT '',
	hold_expire_time TEXT NOT NULL DEFAULT '',
	refunded_credits INTEGER NOT NULL DEFAULT 0 CHECK (refunded_credits >= 0 AND refunded_credits <= credits),
	failure_reason   TEXT NOT NULL DEFAULT '',
	idempotency_key  TEXT NOT NULL UNIQUE,
	transaction_id   TEXT NOT NULL DEFAULT '',
	client_key       TEXT,
	create_time      TEXT NOT NULL,
	update_time      TEXT NOT NULL,
	UNIQUE (workspace, account, client_key),
	-- a hold is placed before an order is HELD; the debit or capture is
	-- posted before it is CONFIRMED (or refunded)
	CHECK (status <> 'HELD' OR hold_id <> ''),
	CHECK (status NOT IN ('CONFIRMED', 'PARTIALLY_REFUNDED', 'REFUNDED') OR transaction_id <> ''),
	CHECK (method = 'DEBIT' OR hold_ttl_seconds > 0)
) STRICT;
INSERT INTO orders_v2 (id, workspace, account, service_id, service_name, currency, units, nanos, credits, status, method,
	failure_reason, idempotency_key, transaction_id, client_key, create_time, update_time)
SELECT id, workspace, account, service_id, service_name, currency, units, nanos, credits, status, 'DEBIT',
	failure_reason, idempotency_key, transaction_id, client_key, create_time, update_time FROM orders;
DROP TABLE orders;
ALTER TABLE orders_v2 RENAME TO orders;
CREATE INDEX orders_by_account ON orders (workspace, account, create_time);
CREATE INDEX orders_open ON orders (create_time) WHERE status IN ('PENDING', 'HELD');

CREATE TABLE refunds (
	id              TEXT PRIMARY KEY,
	workspace       TEXT NOT NULL,
	order_id        TEXT NOT NULL REFERENCES orders (id),
	credits         INTEGER NOT NULL CHECK (credits > 0),
	status          TEXT NOT NULL CHECK (status IN ('PENDING', 'REFUNDED', 'FAILED')),
	idempotency_key TEXT NOT NULL UNIQUE,
	transaction_id  TEXT NOT NULL DEFAULT '',
	failure_reason  TEXT NOT NULL DEFAULT '',
	client_key      TEXT,
	create_time     TEXT NOT NULL,
	update_time     TEXT NOT NULL,
	UNIQUE (workspace, order_id, client_key),
	CHECK (status <> 'REFUNDED' OR transaction_id <> '')
) STRICT;
CREATE INDEX refunds_by_order ON refunds (workspace, order_id, create_time);
CREATE INDEX refunds_pending ON refunds (create_time) WHERE status = 'PENDING';`,
	// 3: a client may cancel a manual purchase waiting for the agency
	// (the ledger's credit request becomes CANCELLED). SQLite cannot change
	// a CHECK, so the purchases table is rebuilt.
	`CREATE TABLE purchases_v3 (
	id                TEXT PRIMARY KEY,
	workspace         TEXT NOT NULL,
	account           TEXT NOT NULL,
	package_id        TEXT NOT NULL,
	method            TEXT NOT NULL CHECK (method IN ('STRIPE', 'PAYPAL', 'BANK_TRANSFER', 'CRYPTO')),
	status            TEXT NOT NULL CHECK (status IN ('AWAITING_PAYMENT', 'SUBMITTING', 'PENDING_APPROVAL', 'CREDITED', 'REJECTED',
	                                                  'FAILED', 'CANCELLED')),
	payment_reference TEXT NOT NULL DEFAULT '',
	note              TEXT NOT NULL DEFAULT '',
	credits           INTEGER NOT NULL DEFAULT 0,
	request_id        TEXT NOT NULL DEFAULT '',
	transaction_id    TEXT NOT NULL DEFAULT '',
	provider_payment  TEXT NOT NULL DEFAULT '',
	failure_reason    TEXT NOT NULL DEFAULT '',
	client_key        TEXT,
	create_time       TEXT NOT NULL,
	update_time       TEXT NOT NULL,
	UNIQUE (workspace, account, client_key),
	CHECK (status <> 'CREDITED' OR transaction_id <> ''),
	-- only a request that exists can be cancelled
	CHECK (status <> 'CANCELLED' OR request_id <> '')
) STRICT;
INSERT INTO purchases_v3 (id, workspace, account, package_id, method, status, payment_reference, note, credits, request_id,
	transaction_id, provider_payment, failure_reason, client_key, create_time, update_time)
SELECT id, workspace, account, package_id, method, status, payment_reference, note, credits, request_id,
	transaction_id, provider_payment, failure_reason, client_key, create_time, update_time FROM purchases;
DROP TABLE purchases;
ALTER TABLE purchases_v3 RENAME TO purchases;
CREATE INDEX purchases_open ON purchases (status) WHERE status IN ('SUBMITTING', 'PENDING_APPROVAL');`,
	// 4: the checkout learns the agency's decisions and the end of its
	// orders' holds from the ledger's events: the last event applied per
	// workspace, and the lookups an event needs (its request, its hold).
	`CREATE TABLE event_cursors (
	workspace   TEXT PRIMARY KEY,
	sequence    INTEGER NOT NULL CHECK (sequence >= 0),
	update_time TEXT NOT NULL
) STRICT;
CREATE INDEX purchases_by_request ON purchases (workspace, request_id) WHERE request_id <> '';
CREATE INDEX orders_by_hold ON orders (workspace, hold_id) WHERE hold_id <> '';`,
	// 5: a card purchase gets its payment page at the provider (a Stripe
	// Checkout Session): where the buyer pays, the provider's reference of
	// it, where the buyer comes back to, and the attempt whose
	// idempotency key the next request to the provider carries.
	`ALTER TABLE purchases ADD COLUMN checkout_url TEXT NOT NULL DEFAULT '';
ALTER TABLE purchases ADD COLUMN provider_checkout TEXT NOT NULL DEFAULT '';
ALTER TABLE purchases ADD COLUMN success_url TEXT NOT NULL DEFAULT '';
ALTER TABLE purchases ADD COLUMN cancel_url TEXT NOT NULL DEFAULT '';
ALTER TABLE purchases ADD COLUMN payment_attempt INTEGER NOT NULL DEFAULT 1 CHECK (payment_attempt >= 1);`,
}

// schemaVersion is stored in PRAGMA user_version.
const schemaVersion = 5

// OpenStore opens (creating if needed) the SQLite file at path.
func OpenStore(ctx context.Context, path string) (*Store, error) {
	db, err := openSQLite(ctx, path)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db}
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// openSQLite opens path with the durability settings: WAL journal,
// synchronous=FULL (every commit is fsynced), foreign keys on, a busy
// timeout, and IMMEDIATE write transactions (no lock upgrade deadlocks).
// One connection: writes are serialized anyway and short; no ledger call
// ever happens inside a database transaction.
func openSQLite(ctx context.Context, path string) (*sql.DB, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || !strings.EqualFold(mode, "wal") {
		_ = db.Close()
		if err == nil {
			err = fmt.Errorf("journal_mode is %q", mode)
		}
		return nil, fmt.Errorf("sqlite: %s: want WAL journal: %w", path, err)
	}
	return db, nil
}

func (s *Store) migrate(ctx context.Context) error {
	var v int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("checkout store: read schema version: %w", err)
	}
	switch {
	case v == schemaVersion:
		return nil
	case v > schemaVersion:
		return fmt.Errorf("checkout store: schema version %d is newer than this binary's %d", v, schemaVersion)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("checkout store: migrate: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if v == 0 {
		if _, err := tx.ExecContext(ctx, schema); err != nil {
			return fmt.Errorf("checkout store: migrate: %w", err)
		}
		v = 1
	}
	for ; v < schemaVersion; v++ {
		if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
			return fmt.Errorf("checkout store: migrate to version %d: %w", v+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return fmt.Errorf("checkout store: migrate: %w", err)
	}
	return tx.Commit()
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// pragma reads one PRAGMA value (tests check the durability settings).
func (s *Store) pragma(ctx context.Context, name string) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v)
	return v, err
}

func fmtTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) time.Time {
	t, _ := time.Parse(timeLayout, s)
	return t
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// --- services ---

// PutService creates or replaces a catalog entry.
func (s *Store) PutService(ctx context.Context, svc Service, now time.Time) (Service, error) {
	_, err := s.db.ExecContext(ctx, `
		INSERT INTO services (workspace, id, name, currency, units, nanos, credit_eligible, create_time, update_time)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (workspace, id) DO UPDATE SET
			name = excluded.name, currency = excluded.currency, units = excluded.units, nanos = excluded.nanos,
			credit_eligible = excluded.credit_eligible, update_time = excluded.update_time`,
		svc.Workspace, svc.ID, svc.Name, svc.Price.CurrencyCode, svc.Price.Units, svc.Price.Nanos, svc.CreditEligible,
		fmtTime(now), fmtTime(now))
	if err != nil {
		return Service{}, fmt.Errorf("put service: %w", err)
	}
	return s.GetService(ctx, svc.Workspace, svc.ID)
}

const serviceColumns = `workspace, id, name, currency, units, nanos, credit_eligible, create_time, update_time`

func scanService(row interface{ Scan(...any) error }) (Service, error) {
	var v Service
	var ct, ut string
	err := row.Scan(&v.Workspace, &v.ID, &v.Name, &v.Price.CurrencyCode, &v.Price.Units, &v.Price.Nanos, &v.CreditEligible, &ct, &ut)
	v.CreateTime, v.UpdateTime = parseTime(ct), parseTime(ut)
	return v, err
}

// GetService returns one catalog entry.
func (s *Store) GetService(ctx context.Context, workspace, id string) (Service, error) {
	v, err := scanService(s.db.QueryRowContext(ctx, `SELECT `+serviceColumns+` FROM services WHERE workspace = ? AND id = ?`, workspace, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Service{}, errNoRows
	}
	if err != nil {
		return Service{}, fmt.Errorf("get service: %w", err)
	}
	return v, nil
}

// ListServices returns a workspace's catalog by id.
func (s *Store) ListServices(ctx context.Context, workspace string) ([]Service, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+serviceColumns+` FROM services WHERE workspace = ? ORDER BY id`, workspace)
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	defer func() { _ = rows.Close() }()
	out := []Service{}
	for rows.Next() {
		v, err := scanService(rows)
		if err != nil {
			return nil, fmt.Errorf("list services: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// --- orders ---

const orderColumns = `id, workspace, account, service_id, service_name, currency, units, nanos, credits, status,
	failure_reason, idempotency_key, transaction_id, COALESCE(client_key, ''), create_time, update_time,
	method, action, hold_ttl_seconds, hold_id, hold_expire_time, refunded_credits`

func scanOrder(row interface{ Scan(...any) error }) (Order, error) {
	var o Order
	var ct, ut, het string
	var ttl int64
	err := row.Scan(&o.ID, &o.Workspace, &o.Account, &o.ServiceID, &o.ServiceName, &o.Price.CurrencyCode, &o.Price.Units,
		&o.Price.Nanos, &o.Credits, &o.Status, &o.FailureReason, &o.IdempotencyKey, &o.TransactionID, &o.ClientKey, &ct, &ut,
		&o.Method, &o.Action, &ttl, &o.HoldID, &het, &o.RefundedCredits)
	o.CreateTime, o.UpdateTime = parseTime(ct), parseTime(ut)
	o.HoldTTL = time.Duration(ttl) * time.Second
	if het != "" {
		t := parseTime(het)
		o.HoldExpireTime = &t
	}
	return o, err
}

// InsertOrder records a new PENDING order (with its action when it is to
// be confirmed at once). When the order carries a client
// key already used for an order of the same account, nothing is inserted
// and the existing order is returned with existing=true.
func (s *Store) InsertOrder(ctx context.Context, o Order) (_ Order, existing bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Order{}, false, fmt.Errorf("insert order: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if o.ClientKey != "" {
		prev, err := scanOrder(tx.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE workspace = ? AND account = ? AND client_key = ?`,
			o.Workspace, o.Account, o.ClientKey))
		switch {
		case err == nil:
			return prev, true, nil
		case !errors.Is(err, sql.ErrNoRows):
			return Order{}, false, fmt.Errorf("insert order: %w", err)
		}
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO orders (id, workspace, account, service_id, service_name, currency, units, nanos, credits, status,
			method, action, hold_ttl_seconds, idempotency_key, client_key, create_time, update_time)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'PENDING', 'HOLD', ?, ?, ?, ?, ?, ?)`,
		o.ID, o.Workspace, o.Account, o.ServiceID, o.ServiceName, o.Price.CurrencyCode, o.Price.Units, o.Price.Nanos, o.Credits,
		o.Action, int64(o.HoldTTL/time.Second), o.IdempotencyKey, nullable(o.ClientKey), fmtTime(o.CreateTime), fmtTime(o.CreateTime))
	if err != nil {
		return Order{}, false, fmt.Errorf("insert order: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Order{}, false, fmt.Errorf("insert order: %w", err)
	}
	o.Status, o.Method, o.UpdateTime = OrderPending, MethodHold, o.CreateTime
	return o, false, nil
}

// GetOrder returns one order of the workspace.
func (s *Store) GetOrder(ctx context.Context, workspace, id string) (Order, error) {
	o, err := scanOrder(s.db.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE workspace = ? AND id = ?`, workspace, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Order{}, errNoRows
	}
	if err != nil {
		return Order{}, fmt.Errorf("get order: %w", err)
	}
	return o, nil
}

func (s *Store) queryOrders(ctx context.Context, query string, args ...any) ([]Order, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	defer func() { _ = rows.Close() }()
	out := []Order{}
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return nil, fmt.Errorf("list orders: %w", err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// ListOrders returns an account's orders, newest first.
func (s *Store) ListOrders(ctx context.Context, workspace, account string) ([]Order, error) {
	return s.queryOrders(ctx, `SELECT `+orderColumns+` FROM orders WHERE workspace = ? AND account = ? ORDER BY create_time DESC, id DESC`,
		workspace, account)
}

// OpenOrders returns the orders reconciliation looks at, oldest first:
// PENDING ones (the hold or the debit in flight), HELD ones whose confirm
// or cancel is in flight, and HELD ones whose hold's expire time passed.
func (s *Store) OpenOrders(ctx context.Context, now time.Time) ([]Order, error) {
	return s.queryOrders(ctx, `SELECT `+orderColumns+` FROM orders
		WHERE status = 'PENDING' OR (status = 'HELD' AND (action <> '' OR hold_expire_time <= ?)) ORDER BY create_time`,
		fmtTime(now))
}

// HoldOrder records the hold of a PENDING order: it is HELD.
func (s *Store) HoldOrder(ctx context.Context, workspace, id, holdID string, expire, now time.Time) (Order, error) {
	_, err := s.db.ExecContext(ctx, `
		UPDATE orders SET status = 'HELD', hold_id = ?, hold_expire_time = ?, update_time = ?
		WHERE workspace = ? AND id = ? AND status = 'PENDING'`,
		holdID, fmtTime(expire), fmtTime(now), workspace, id)
	if err != nil {
		return Order{}, fmt.Errorf("hold order: %w", err)
	}
	return s.GetOrder(ctx, workspace, id)
}

// OrderByHold returns the order whose hold is holdID.
func (s *Store) OrderByHold(ctx context.Context, workspace, holdID string) (Order, error) {
	o, err := scanOrder(s.db.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders
		WHERE workspace = ? AND hold_id = ? AND hold_id <> ''`, workspace, holdID))
	if errors.Is(err, sql.ErrNoRows) {
		return Order{}, errNoRows
	}
	if err != nil {
		return Order{}, fmt.Errorf("order by hold: %w", err)
	}
	return o, nil
}

// SetOrderAction durably records that the order's hold is to be captured
// (CONFIRM) or voided (CANCEL), before the ledger is called. It applies
// only to a PENDING or HELD order with no other action recorded; the
// stored order is returned either way, for the caller to compare.
func (s *Store) SetOrderAction(ctx context.Context, workspace, id string, action OrderAction, now time.Time) (Order, error) {
	_, err := s.db.ExecContext(ctx, `
		UPDATE orders SET action = ?1, update_time = ?2
		WHERE workspace = ?3 AND id = ?4 AND status IN ('PENDING', 'HELD') AND action = '' AND method = 'HOLD'`,
		action, fmtTime(now), workspace, id)
	if err != nil {
		return Order{}, fmt.Errorf("set order action: %w", err)
	}
	return s.GetOrder(ctx, workspace, id)
}

// FinishOrder moves a PENDING or HELD order to where the ledger's answer
// puts it: CONFIRMED (with the posted entry's id), CANCELLED, EXPIRED or
// FAILED (with the reason). An order already past those is left as it is;
// the stored order is returned either way.
func (s *Store) FinishOrder(ctx context.Context, workspace, id string, status OrderStatus, txID, reason string, now time.Time) (Order, error) {
	_, err := s.db.ExecContext(ctx, `
		UPDATE orders SET status = ?, transaction_id = ?, failure_reason = ?, update_time = ?, action = ''
		WHERE workspace = ? AND id = ? AND status IN ('PENDING', 'HELD')`,
		status, txID, reason, fmtTime(now), workspace, id)
	if err != nil {
		return Order{}, fmt.Errorf("finish order: %w", err)
	}
	return s.GetOrder(ctx, workspace, id)
}

// --- refunds ---

const refundColumns = `id, workspace, order_id, credits, status, idempotency_key, transaction_id, failure_reason,
	COALESCE(client_key, ''), create_time, update_time`

func scanRefund(row interface{ Scan(...any) error }) (Refund, error) {
	var r Refund
	var ct, ut string
	err := row.Scan(&r.ID, &r.Workspace, &r.OrderID, &r.Credits, &r.Status, &r.IdempotencyKey, &r.TransactionID, &r.FailureReason,
		&r.ClientKey, &ct, &ut)
	r.CreateTime, r.UpdateTime = parseTime(ct), parseTime(ut)
	return r, err
}

// errRefundExceeds is InsertRefund's answer when the order's credits not
// yet refunded (or being refunded) do not cover the refund.
var errRefundExceeds = errors.New("refund exceeds what remains of the order")

// errNotRefundable is InsertRefund's answer for an order not confirmed.
var errNotRefundable = errors.New("order not confirmed")

// InsertRefund records a PENDING refund of an order, in one transaction
// with the check that the order is confirmed and that its credits not yet
// refunded nor being refunded cover it; credits 0 refunds all of those.
// With a client key already used for a refund of the order, nothing is
// inserted and that refund is returned with existing=true.
func (s *Store) InsertRefund(ctx context.Context, r Refund) (_ Refund, existing bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Refund{}, false, fmt.Errorf("insert refund: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if r.ClientKey != "" {
		prev, err := scanRefund(tx.QueryRowContext(ctx, `SELECT `+refundColumns+` FROM refunds WHERE workspace = ? AND order_id = ? AND client_key = ?`,
			r.Workspace, r.OrderID, r.ClientKey))
		switch {
		case err == nil:
			return prev, true, nil
		case !errors.Is(err, sql.ErrNoRows):
			return Refund{}, false, fmt.Errorf("insert refund: %w", err)
		}
	}
	var status OrderStatus
	var credits, committed int64
	err = tx.QueryRowContext(ctx, `
		SELECT o.status, o.credits, COALESCE((SELECT SUM(credits) FROM refunds f WHERE f.order_id = o.id AND f.status <> 'FAILED'), 0)
		FROM orders o WHERE o.workspace = ? AND o.id = ?`, r.Workspace, r.OrderID).Scan(&status, &credits, &committed)
	if errors.Is(err, sql.ErrNoRows) {
		return Refund{}, false, errNoRows
	}
	if err != nil {
		return Refund{}, false, fmt.Errorf("insert refund: %w", err)
	}
	if status != OrderConfirmed && status != OrderPartiallyRefunded && status != OrderRefunded {
		return Refund{}, false, errNotRefundable
	}
	left := credits - committed
	if r.Credits == 0 {
		r.Credits = left
	}
	if r.Credits <= 0 || r.Credits > left {
		return Refund{Credits: left}, false, errRefundExceeds
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO refunds (id, workspace, order_id, credits, status, idempotency_key, client_key, create_time, update_time)
		VALUES (?, ?, ?, ?, 'PENDING', ?, ?, ?, ?)`,
		r.ID, r.Workspace, r.OrderID, r.Credits, r.IdempotencyKey, nullable(r.ClientKey), fmtTime(r.CreateTime), fmtTime(r.CreateTime))
	if err != nil {
		return Refund{}, false, fmt.Errorf("insert refund: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Refund{}, false, fmt.Errorf("insert refund: %w", err)
	}
	r.Status, r.UpdateTime = RefundPending, r.CreateTime
	return r, false, nil
}

// GetRefund returns one refund of the workspace.
func (s *Store) GetRefund(ctx context.Context, workspace, id string) (Refund, error) {
	r, err := scanRefund(s.db.QueryRowContext(ctx, `SELECT `+refundColumns+` FROM refunds WHERE workspace = ? AND id = ?`, workspace, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Refund{}, errNoRows
	}
	if err != nil {
		return Refund{}, fmt.Errorf("get refund: %w", err)
	}
	return r, nil
}

func (s *Store) queryRefunds(ctx context.Context, query string, args ...any) ([]Refund, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list refunds: %w", err)
	}
	defer func() { _ = rows.Close() }()
	out := []Refund{}
	for rows.Next() {
		r, err := scanRefund(rows)
		if err != nil {
			return nil, fmt.Errorf("list refunds: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ListRefunds returns an order's refunds, oldest first.
func (s *Store) ListRefunds(ctx context.Context, workspace, orderID string) ([]Refund, error) {
	return s.queryRefunds(ctx, `SELECT `+refundColumns+` FROM refunds WHERE workspace = ? AND order_id = ? ORDER BY create_time, id`, workspace, orderID)
}

// PendingRefunds returns every refund whose reversal is in flight, oldest first.
func (s *Store) PendingRefunds(ctx context.Context) ([]Refund, error) {
	return s.queryRefunds(ctx, `SELECT `+refundColumns+` FROM refunds WHERE status = 'PENDING' ORDER BY create_time`)
}

// FinishRefund records the ledger's answer to a PENDING refund: REFUNDED
// with the reversal's id (and, in the same transaction, the order's
// refunded credits and status), or FAILED with the reason. A refund no
// longer pending is left as it is.
func (s *Store) FinishRefund(ctx context.Context, r Refund, status RefundStatus, txID, reason string, now time.Time) (Refund, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Refund{}, fmt.Errorf("finish refund: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `
		UPDATE refunds SET status = ?, transaction_id = ?, failure_reason = ?, update_time = ?
		WHERE workspace = ? AND id = ? AND status = 'PENDING'`,
		status, txID, reason, fmtTime(now), r.Workspace, r.ID)
	if err != nil {
		return Refund{}, fmt.Errorf("finish refund: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 1 && status == RefundRefunded {
		if _, err := tx.ExecContext(ctx, `
			UPDATE orders SET refunded_credits = refunded_credits + ?1,
				status = CASE WHEN refunded_credits + ?1 >= credits THEN 'REFUNDED' ELSE 'PARTIALLY_REFUNDED' END,
				update_time = ?2
			WHERE workspace = ?3 AND id = ?4`, r.Credits, fmtTime(now), r.Workspace, r.OrderID); err != nil {
			return Refund{}, fmt.Errorf("finish refund: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return Refund{}, fmt.Errorf("finish refund: %w", err)
	}
	return s.GetRefund(ctx, r.Workspace, r.ID)
}

// --- purchases ---

const purchaseColumns = `id, workspace, account, package_id, method, status, payment_reference, note, credits, request_id,
	transaction_id, provider_payment, failure_reason, COALESCE(client_key, ''), create_time, update_time,
	checkout_url, provider_checkout, success_url, cancel_url, payment_attempt`

func scanPurchase(row interface{ Scan(...any) error }) (Purchase, error) {
	var p Purchase
	var ct, ut string
	err := row.Scan(&p.ID, &p.Workspace, &p.Account, &p.PackageID, &p.Method, &p.Status, &p.PaymentReference, &p.Note,
		&p.Credits, &p.RequestID, &p.TransactionID, &p.ProviderPaymentID, &p.FailureReason, &p.ClientKey, &ct, &ut,
		&p.CheckoutURL, &p.ProviderRef, &p.SuccessURL, &p.CancelURL, &p.PaymentAttempt)
	p.CreateTime, p.UpdateTime = parseTime(ct), parseTime(ut)
	if p.Method == MethodStripe {
		p.StripeSessionID = p.ProviderRef
	}
	return p, err
}

// InsertPurchase records a new purchase; like InsertOrder for client keys.
func (s *Store) InsertPurchase(ctx context.Context, p Purchase) (_ Purchase, existing bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Purchase{}, false, fmt.Errorf("insert purchase: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if p.ClientKey != "" {
		prev, err := scanPurchase(tx.QueryRowContext(ctx, `SELECT `+purchaseColumns+` FROM purchases WHERE workspace = ? AND account = ? AND client_key = ?`,
			p.Workspace, p.Account, p.ClientKey))
		switch {
		case err == nil:
			return prev, true, nil
		case !errors.Is(err, sql.ErrNoRows):
			return Purchase{}, false, fmt.Errorf("insert purchase: %w", err)
		}
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO purchases (id, workspace, account, package_id, method, status, payment_reference, note, client_key, create_time, update_time,
			success_url, cancel_url)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ID, p.Workspace, p.Account, p.PackageID, p.Method, p.Status, p.PaymentReference, p.Note, nullable(p.ClientKey),
		fmtTime(p.CreateTime), fmtTime(p.CreateTime), p.SuccessURL, p.CancelURL)
	if err != nil {
		return Purchase{}, false, fmt.Errorf("insert purchase: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Purchase{}, false, fmt.Errorf("insert purchase: %w", err)
	}
	p.UpdateTime, p.PaymentAttempt = p.CreateTime, 1
	return p, false, nil
}

// SetPurchaseCheckout records the provider's payment page of a purchase
// still awaiting payment that has none yet. The first page recorded
// stays: the stored purchase is returned either way.
func (s *Store) SetPurchaseCheckout(ctx context.Context, workspace, id, checkoutURL, providerRef string, now time.Time) (Purchase, error) {
	_, err := s.db.ExecContext(ctx, `
		UPDATE purchases SET checkout_url = ?, provider_checkout = ?, update_time = ?
		WHERE workspace = ? AND id = ? AND status = 'AWAITING_PAYMENT' AND checkout_url = ''`,
		checkoutURL, providerRef, fmtTime(now), workspace, id)
	if err != nil {
		return Purchase{}, fmt.Errorf("set purchase checkout: %w", err)
	}
	return s.GetPurchase(ctx, workspace, id)
}

// NextPaymentAttempt moves a purchase's payment attempt on from attempt
// (once: a concurrent caller that already moved it wins), so that the
// next request to the provider carries a new idempotency key.
func (s *Store) NextPaymentAttempt(ctx context.Context, workspace, id string, attempt int, now time.Time) error {
	_, err := s.db.ExecContext(ctx, `
		UPDATE purchases SET payment_attempt = payment_attempt + 1, update_time = ?
		WHERE workspace = ? AND id = ? AND payment_attempt = ? AND checkout_url = ''`,
		fmtTime(now), workspace, id, attempt)
	if err != nil {
		return fmt.Errorf("next payment attempt: %w", err)
	}
	return nil
}

// GetPurchase returns one purchase of the workspace.
func (s *Store) GetPurchase(ctx context.Context, workspace, id string) (Purchase, error) {
	p, err := scanPurchase(s.db.QueryRowContext(ctx, `SELECT `+purchaseColumns+` FROM purchases WHERE workspace = ? AND id = ?`, workspace, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Purchase{}, errNoRows
	}
	if err != nil {
		return Purchase{}, fmt.Errorf("get purchase: %w", err)
	}
	return p, nil
}

// OpenPurchases returns the manual purchases still waiting on the ledger
// (SUBMITTING) or on the agency (PENDING_APPROVAL), oldest first.
func (s *Store) OpenPurchases(ctx context.Context) ([]Purchase, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+purchaseColumns+` FROM purchases
		WHERE status IN ('SUBMITTING', 'PENDING_APPROVAL') ORDER BY create_time`)
	if err != nil {
		return nil, fmt.Errorf("open purchases: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []Purchase
	for rows.Next() {
		p, err := scanPurchase(rows)
		if err != nil {
			return nil, fmt.Errorf("open purchases: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// purchaseUpdate is the outcome to record on a purchase.
type purchaseUpdate struct {
	Status            PurchaseStatus
	Credits           int64
	RequestID         string
	TransactionID     string
	ProviderPaymentID string
	FailureReason     string
}

// UpdatePurchase moves a purchase from one of the from statuses to u.
// Empty fields of u keep their stored value. A purchase in another status
// is left alone; the stored purchase is returned either way.
func (s *Store) UpdatePurchase(ctx context.Context, workspace, id string, from []PurchaseStatus, u purchaseUpdate, now time.Time) (Purchase, error) {
	if len(from) == 0 || len(from) > 2 {
		return Purchase{}, fmt.Errorf("update purchase: want 1 or 2 source statuses, got %d", len(from))
	}
	from2 := from[len(from)-1]
	args := []any{u.Status, u.Credits, u.RequestID, u.TransactionID, u.ProviderPaymentID, u.FailureReason, fmtTime(now), workspace, id, from[0], from2}
	_, err := s.db.ExecContext(ctx, `
		UPDATE purchases SET status = ?1,
			credits = CASE WHEN ?2 = 0 THEN credits ELSE ?2 END,
			request_id = CASE WHEN ?3 = '' THEN request_id ELSE ?3 END,
			transaction_id = CASE WHEN ?4 = '' THEN transaction_id ELSE ?4 END,
			provider_payment = CASE WHEN ?5 = '' THEN provider_payment ELSE ?5 END,
			failure_reason = CASE WHEN ?6 = '' THEN failure_reason ELSE ?6 END,
			update_time = ?7
		WHERE workspace = ?8 AND id = ?9 AND status IN (?10, ?11)`, args...)
	if err != nil {
		return Purchase{}, fmt.Errorf("update purchase: %w", err)
	}
	return s.GetPurchase(ctx, workspace, id)
}

// PurchaseByRequest returns the manual purchase whose credit request is
// requestID.
func (s *Store) PurchaseByRequest(ctx context.Context, workspace, requestID string) (Purchase, error) {
	p, err := scanPurchase(s.db.QueryRowContext(ctx, `SELECT `+purchaseColumns+` FROM purchases
		WHERE workspace = ? AND request_id = ? AND request_id <> ''`, workspace, requestID))
	if errors.Is(err, sql.ErrNoRows) {
		return Purchase{}, errNoRows
	}
	if err != nil {
		return Purchase{}, fmt.Errorf("purchase by request: %w", err)
	}
	return p, nil
}

// --- provider payments ---

const paymentColumns = `provider, payment_id, workspace, account, package_id, purchase_id, status, credits, transaction_id,
	failure_reason, deliveries, create_time, update_time`

func scanPayment(row interface{ Scan(...any) error }) (Payment, error) {
	var p Payment
	var ct, ut string
	err := row.Scan(&p.Provider, &p.PaymentID, &p.Workspace, &p.Account, &p.PackageID, &p.PurchaseID, &p.Status, &p.Credits,
		&p.TransactionID, &p.FailureReason, &p.Deliveries, &ct, &ut)
	p.CreateTime, p.UpdateTime = parseTime(ct), parseTime(ut)
	return p, err
}

// RecordDelivery stores a payment confirmation the first time it is
// delivered and counts the redeliveries. It returns the stored payment,
// which may differ from p when the provider redelivered the payment id
// with other fields: the caller must compare.
func (s *Store) RecordDelivery(ctx context.Context, p Payment, now time.Time) (Payment, error) {
	_, err := s.db.ExecContext(ctx, `
		INSERT INTO payments (provider, payment_id, workspace, account, package_id, purchase_id, status, create_time, update_time)
		VALUES (?, ?, ?, ?, ?, ?, 'RECEIVED', ?, ?)
		ON CONFLICT (provider, payment_id) DO UPDATE SET deliveries = deliveries + 1, update_time = excluded.update_time`,
		p.Provider, p.PaymentID, p.Workspace, p.Account, p.PackageID, p.PurchaseID, fmtTime(now), fmtTime(now))
	if err != nil {
		return Payment{}, fmt.Errorf("record payment: %w", err)
	}
	return s.getPayment(ctx, p.Provider, p.PaymentID)
}

func (s *Store) getPayment(ctx context.Context, provider, id string) (Payment, error) {
	p, err := scanPayment(s.db.QueryRowContext(ctx, `SELECT `+paymentColumns+` FROM payments WHERE provider = ? AND payment_id = ?`, provider, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Payment{}, errNoRows
	}
	if err != nil {
		return Payment{}, fmt.Errorf("get payment: %w", err)
	}
	return p, nil
}

// FinishPayment records the ledger's answer for a payment not yet credited.
func (s *Store) FinishPayment(ctx context.Context, provider, id string, status PaymentStatus, credits int64, txID, reason string, now time.Time) (Payment, error) {
	_, err := s.db.ExecContext(ctx, `
		UPDATE payments SET status = ?, credits = ?, transaction_id = ?, failure_reason = ?, update_time = ?
		WHERE provider = ? AND payment_id = ? AND status <> 'CREDITED'`,
		status, credits, txID, reason, fmtTime(now), provider, id)
	if err != nil {
		return Payment{}, fmt.Errorf("finish payment: %w", err)
	}
	return s.getPayment(ctx, provider, id)
}

// ReceivedPayments returns the payments not yet credited, oldest first.
func (s *Store) ReceivedPayments(ctx context.Context) ([]Payment, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+paymentColumns+` FROM payments WHERE status = 'RECEIVED' ORDER BY create_time`)
	if err != nil {
		return nil, fmt.Errorf("received payments: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []Payment
	for rows.Next() {
		p, err := scanPayment(rows)
		if err != nil {
			return nil, fmt.Errorf("received payments: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// --- ledger events ---

// Workspaces lists the workspaces whose ledger events the checkout
// follows: those it has orders or purchases in, and those it has a cursor
// for.
func (s *Store) Workspaces(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT workspace FROM event_cursors UNION SELECT workspace FROM orders UNION SELECT workspace FROM purchases
		ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("workspaces: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		var ws string
		if err := rows.Scan(&ws); err != nil {
			return nil, fmt.Errorf("workspaces: %w", err)
		}
		out = append(out, ws)
	}
	return out, rows.Err()
}

// Cursor is the sequence of the last ledger event of the workspace the
// checkout applied; 0 before the first.
func (s *Store) Cursor(ctx context.Context, workspace string) (int64, error) {
	var seq int64
	err := s.db.QueryRowContext(ctx, `SELECT sequence FROM event_cursors WHERE workspace = ?`, workspace).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("event cursor: %w", err)
	}
	return seq, nil
}

// SaveCursor records that the workspace's events up to seq are applied.
// A cursor never moves back.
func (s *Store) SaveCursor(ctx context.Context, workspace string, seq int64) error {
	now := fmtTime(time.Now())
	_, err := s.db.ExecContext(ctx, `
		INSERT INTO event_cursors (workspace, sequence, update_time) VALUES (?1, ?2, ?3)
		ON CONFLICT (workspace) DO UPDATE SET sequence = MAX(sequence, excluded.sequence), update_time = excluded.update_time`,
		workspace, seq, now)
	if err != nil {
		return fmt.Errorf("save event cursor: %w", err)
	}
	return nil
}
