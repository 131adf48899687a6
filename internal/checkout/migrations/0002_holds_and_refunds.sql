-- "Buy with Credit" reserves the credits (a hold) when the order is
-- placed and spends them when it is confirmed; a confirmed order can be
-- refunded (a reversal). SQLite cannot change a CHECK, so the orders
-- table is rebuilt. Orders from before were one-step debits (method
-- DEBIT): one still PENDING is finished by replaying its debit.
CREATE TABLE orders_v2 (
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
CREATE INDEX refunds_pending ON refunds (create_time) WHERE status = 'PENDING';
