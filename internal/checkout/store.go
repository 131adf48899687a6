package checkout

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/creditledger/creditledger/internal/consumer"
)

// Store is the checkout's durable state in one SQLite file: the catalog,
// the orders, the credit purchases and the provider payments received.
// It is opened in WAL mode with synchronous=FULL, so that a transaction
// whose commit returned survives a crash or a power loss.
type Store struct {
	db *sql.DB
}

// errNoRows is what the getters return (wrapped) when nothing matches.
var errNoRows = sql.ErrNoRows

// migrations are the checkout database's schema: NNNN_name.sql, applied
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
		return nil, fmt.Errorf("checkout store: %w", err)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// pragma reads one PRAGMA value (tests check the durability settings).
func (s *Store) pragma(ctx context.Context, name string) (string, error) {
	return consumer.Pragma(ctx, s.db, name)
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
		consumer.FormatTime(now), consumer.FormatTime(now))
	if err != nil {
		return Service{}, fmt.Errorf("put service: %w", err)
	}
	return s.GetService(ctx, svc.Workspace, svc.ID)
}

const serviceColumns = `workspace, id, name, currency, units, nanos, credit_eligible, create_time, update_time`

func scanService(row consumer.Row) (Service, error) {
	var v Service
	var ct, ut string
	err := row.Scan(&v.Workspace, &v.ID, &v.Name, &v.Price.CurrencyCode, &v.Price.Units, &v.Price.Nanos, &v.CreditEligible, &ct, &ut)
	v.CreateTime, v.UpdateTime = consumer.ParseTime(ct), consumer.ParseTime(ut)
	return v, err
}

// GetService returns one catalog entry.
func (s *Store) GetService(ctx context.Context, workspace, id string) (Service, error) {
	return consumer.QueryOne(ctx, s.db, "get service", scanService, `SELECT `+serviceColumns+` FROM services WHERE workspace = ? AND id = ?`, workspace, id)
}

// ListServices returns a workspace's catalog by id.
func (s *Store) ListServices(ctx context.Context, workspace string) ([]Service, error) {
	return consumer.QueryAll(ctx, s.db, "list services", scanService, `SELECT `+serviceColumns+` FROM services WHERE workspace = ? ORDER BY id`, workspace)
}

// --- orders ---

const orderColumns = `id, workspace, account, service_id, service_name, currency, units, nanos, credits, status,
	failure_reason, idempotency_key, transaction_id, COALESCE(client_key, ''), create_time, update_time,
	method, action, hold_ttl_seconds, hold_id, hold_expire_time, refunded_credits`

func scanOrder(row consumer.Row) (Order, error) {
	var o Order
	var ct, ut, het string
	var ttl int64
	err := row.Scan(&o.ID, &o.Workspace, &o.Account, &o.ServiceID, &o.ServiceName, &o.Price.CurrencyCode, &o.Price.Units,
		&o.Price.Nanos, &o.Credits, &o.Status, &o.FailureReason, &o.IdempotencyKey, &o.TransactionID, &o.ClientKey, &ct, &ut,
		&o.Method, &o.Action, &ttl, &o.HoldID, &het, &o.RefundedCredits)
	o.CreateTime, o.UpdateTime = consumer.ParseTime(ct), consumer.ParseTime(ut)
	o.HoldTTL = time.Duration(ttl) * time.Second
	if het != "" {
		t := consumer.ParseTime(het)
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
		o.Action, int64(o.HoldTTL/time.Second), o.IdempotencyKey, nullable(o.ClientKey), consumer.FormatTime(o.CreateTime), consumer.FormatTime(o.CreateTime))
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
	return consumer.QueryOne(ctx, s.db, "get order", scanOrder, `SELECT `+orderColumns+` FROM orders WHERE workspace = ? AND id = ?`, workspace, id)
}

func (s *Store) queryOrders(ctx context.Context, query string, args ...any) ([]Order, error) {
	return consumer.QueryAll(ctx, s.db, "list orders", scanOrder, query, args...)
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
		consumer.FormatTime(now))
}

// HoldOrder records the hold of a PENDING order: it is HELD.
func (s *Store) HoldOrder(ctx context.Context, workspace, id, holdID string, expire, now time.Time) (Order, error) {
	_, err := s.db.ExecContext(ctx, `
		UPDATE orders SET status = 'HELD', hold_id = ?, hold_expire_time = ?, update_time = ?
		WHERE workspace = ? AND id = ? AND status = 'PENDING'`,
		holdID, consumer.FormatTime(expire), consumer.FormatTime(now), workspace, id)
	if err != nil {
		return Order{}, fmt.Errorf("hold order: %w", err)
	}
	return s.GetOrder(ctx, workspace, id)
}

// OrderByHold returns the order whose hold is holdID.
func (s *Store) OrderByHold(ctx context.Context, workspace, holdID string) (Order, error) {
	return consumer.QueryOne(ctx, s.db, "order by hold", scanOrder, `SELECT `+orderColumns+` FROM orders
		WHERE workspace = ? AND hold_id = ? AND hold_id <> ''`, workspace, holdID)
}

// SetOrderAction durably records that the order's hold is to be captured
// (CONFIRM) or voided (CANCEL), before the ledger is called. It applies
// only to a PENDING or HELD order with no other action recorded; the
// stored order is returned either way, for the caller to compare.
func (s *Store) SetOrderAction(ctx context.Context, workspace, id string, action OrderAction, now time.Time) (Order, error) {
	_, err := s.db.ExecContext(ctx, `
		UPDATE orders SET action = ?1, update_time = ?2
		WHERE workspace = ?3 AND id = ?4 AND status IN ('PENDING', 'HELD') AND action = '' AND method = 'HOLD'`,
		action, consumer.FormatTime(now), workspace, id)
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
		status, txID, reason, consumer.FormatTime(now), workspace, id)
	if err != nil {
		return Order{}, fmt.Errorf("finish order: %w", err)
	}
	return s.GetOrder(ctx, workspace, id)
}

// --- refunds ---

const refundColumns = `id, workspace, order_id, credits, status, idempotency_key, transaction_id, failure_reason,
	COALESCE(client_key, ''), create_time, update_time`

func scanRefund(row consumer.Row) (Refund, error) {
	var r Refund
	var ct, ut string
	err := row.Scan(&r.ID, &r.Workspace, &r.OrderID, &r.Credits, &r.Status, &r.IdempotencyKey, &r.TransactionID, &r.FailureReason,
		&r.ClientKey, &ct, &ut)
	r.CreateTime, r.UpdateTime = consumer.ParseTime(ct), consumer.ParseTime(ut)
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
		r.ID, r.Workspace, r.OrderID, r.Credits, r.IdempotencyKey, nullable(r.ClientKey), consumer.FormatTime(r.CreateTime), consumer.FormatTime(r.CreateTime))
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
	return consumer.QueryOne(ctx, s.db, "get refund", scanRefund, `SELECT `+refundColumns+` FROM refunds WHERE workspace = ? AND id = ?`, workspace, id)
}

func (s *Store) queryRefunds(ctx context.Context, query string, args ...any) ([]Refund, error) {
	return consumer.QueryAll(ctx, s.db, "list refunds", scanRefund, query, args...)
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
		status, txID, reason, consumer.FormatTime(now), r.Workspace, r.ID)
	if err != nil {
		return Refund{}, fmt.Errorf("finish refund: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 1 && status == RefundRefunded {
		if _, err := tx.ExecContext(ctx, `
			UPDATE orders SET refunded_credits = refunded_credits + ?1,
				status = CASE WHEN refunded_credits + ?1 >= credits THEN 'REFUNDED' ELSE 'PARTIALLY_REFUNDED' END,
				update_time = ?2
			WHERE workspace = ?3 AND id = ?4`, r.Credits, consumer.FormatTime(now), r.Workspace, r.OrderID); err != nil {
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

func scanPurchase(row consumer.Row) (Purchase, error) {
	var p Purchase
	var ct, ut string
	err := row.Scan(&p.ID, &p.Workspace, &p.Account, &p.PackageID, &p.Method, &p.Status, &p.PaymentReference, &p.Note,
		&p.Credits, &p.RequestID, &p.TransactionID, &p.ProviderPaymentID, &p.FailureReason, &p.ClientKey, &ct, &ut,
		&p.CheckoutURL, &p.ProviderRef, &p.SuccessURL, &p.CancelURL, &p.PaymentAttempt)
	p.CreateTime, p.UpdateTime = consumer.ParseTime(ct), consumer.ParseTime(ut)
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
		consumer.FormatTime(p.CreateTime), consumer.FormatTime(p.CreateTime), p.SuccessURL, p.CancelURL)
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
		checkoutURL, providerRef, consumer.FormatTime(now), workspace, id)
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
		consumer.FormatTime(now), workspace, id, attempt)
	if err != nil {
		return fmt.Errorf("next payment attempt: %w", err)
	}
	return nil
}

// GetPurchase returns one purchase of the workspace.
func (s *Store) GetPurchase(ctx context.Context, workspace, id string) (Purchase, error) {
	return consumer.QueryOne(ctx, s.db, "get purchase", scanPurchase, `SELECT `+purchaseColumns+` FROM purchases WHERE workspace = ? AND id = ?`, workspace, id)
}

// OpenPurchases returns the manual purchases still waiting on the ledger
// (SUBMITTING) or on the agency (PENDING_APPROVAL), oldest first.
func (s *Store) OpenPurchases(ctx context.Context) ([]Purchase, error) {
	return consumer.QueryAll(ctx, s.db, "open purchases", scanPurchase, `SELECT `+purchaseColumns+` FROM purchases
		WHERE status IN ('SUBMITTING', 'PENDING_APPROVAL') ORDER BY create_time`)
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
	args := []any{u.Status, u.Credits, u.RequestID, u.TransactionID, u.ProviderPaymentID, u.FailureReason, consumer.FormatTime(now), workspace, id, from[0], from2}
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
	return consumer.QueryOne(ctx, s.db, "purchase by request", scanPurchase, `SELECT `+purchaseColumns+` FROM purchases
		WHERE workspace = ? AND request_id = ? AND request_id <> ''`, workspace, requestID)
}

// --- provider payments ---

const paymentColumns = `provider, payment_id, workspace, account, package_id, purchase_id, status, credits, transaction_id,
	failure_reason, deliveries, create_time, update_time`

func scanPayment(row consumer.Row) (Payment, error) {
	var p Payment
	var ct, ut string
	err := row.Scan(&p.Provider, &p.PaymentID, &p.Workspace, &p.Account, &p.PackageID, &p.PurchaseID, &p.Status, &p.Credits,
		&p.TransactionID, &p.FailureReason, &p.Deliveries, &ct, &ut)
	p.CreateTime, p.UpdateTime = consumer.ParseTime(ct), consumer.ParseTime(ut)
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
		p.Provider, p.PaymentID, p.Workspace, p.Account, p.PackageID, p.PurchaseID, consumer.FormatTime(now), consumer.FormatTime(now))
	if err != nil {
		return Payment{}, fmt.Errorf("record payment: %w", err)
	}
	return s.getPayment(ctx, p.Provider, p.PaymentID)
}

func (s *Store) getPayment(ctx context.Context, provider, id string) (Payment, error) {
	return consumer.QueryOne(ctx, s.db, "get payment", scanPayment, `SELECT `+paymentColumns+` FROM payments WHERE provider = ? AND payment_id = ?`, provider, id)
}

// FinishPayment records the ledger's answer for a payment not yet credited.
func (s *Store) FinishPayment(ctx context.Context, provider, id string, status PaymentStatus, credits int64, txID, reason string, now time.Time) (Payment, error) {
	_, err := s.db.ExecContext(ctx, `
		UPDATE payments SET status = ?, credits = ?, transaction_id = ?, failure_reason = ?, update_time = ?
		WHERE provider = ? AND payment_id = ? AND status <> 'CREDITED'`,
		status, credits, txID, reason, consumer.FormatTime(now), provider, id)
	if err != nil {
		return Payment{}, fmt.Errorf("finish payment: %w", err)
	}
	return s.getPayment(ctx, provider, id)
}

// ReceivedPayments returns the payments not yet credited, oldest first.
func (s *Store) ReceivedPayments(ctx context.Context) ([]Payment, error) {
	return consumer.QueryAll(ctx, s.db, "received payments", scanPayment, `SELECT `+paymentColumns+` FROM payments WHERE status = 'RECEIVED' ORDER BY create_time`)
}

// --- ledger events ---

// Workspaces lists the workspaces whose ledger events the checkout
// follows: those it has orders or purchases in, and those it has a cursor
// for.
func (s *Store) Workspaces(ctx context.Context) ([]string, error) {
	return consumer.QueryAll(ctx, s.db, "workspaces", consumer.ScanString, `
		SELECT workspace FROM event_cursors UNION SELECT workspace FROM orders UNION SELECT workspace FROM purchases
		ORDER BY 1`)
}

// Cursor is the sequence of the last ledger event of the workspace that
// the checkout applied; 0 before the first.
func (s *Store) Cursor(ctx context.Context, workspace string) (int64, error) {
	return consumer.Cursor(ctx, s.db, workspace)
}

// SaveCursor records that the workspace's events up to seq are applied.
func (s *Store) SaveCursor(ctx context.Context, workspace string, seq int64) error {
	return consumer.SaveCursor(ctx, s.db, workspace, seq)
}
