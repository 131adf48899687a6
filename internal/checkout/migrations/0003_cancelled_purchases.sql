-- A client may cancel a manual purchase waiting for the agency (the
-- ledger's credit request becomes CANCELLED). SQLite cannot change a
-- CHECK, so the purchases table is rebuilt.
CREATE TABLE purchases_v3 (
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
CREATE INDEX purchases_open ON purchases (status) WHERE status IN ('SUBMITTING', 'PENDING_APPROVAL');
