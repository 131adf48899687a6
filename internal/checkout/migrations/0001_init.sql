-- The first release's schema: the catalog, orders paid by one debit,
-- credit purchases and the payment providers' confirmations.
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
