-- The first release's schema.
CREATE TABLE invoices (
	id              TEXT PRIMARY KEY,
	workspace       TEXT NOT NULL,
	account         TEXT NOT NULL,
	seq             INTEGER NOT NULL,
	number          TEXT NOT NULL,
	description     TEXT NOT NULL DEFAULT '',
	currency        TEXT NOT NULL,
	units           INTEGER NOT NULL,
	nanos           INTEGER NOT NULL,
	status          TEXT NOT NULL CHECK (status IN ('OPEN', 'PAYING', 'PAID')),
	credits         INTEGER NOT NULL DEFAULT 0,
	idempotency_key TEXT NOT NULL DEFAULT '',
	transaction_id  TEXT NOT NULL DEFAULT '',
	last_failure    TEXT NOT NULL DEFAULT '',
	create_time     TEXT NOT NULL,
	update_time     TEXT NOT NULL,
	paid_time       TEXT,
	UNIQUE (workspace, number),
	UNIQUE (workspace, seq),
	CHECK (units >= 0 AND nanos BETWEEN 0 AND 999999999 AND (units > 0 OR nanos > 0)),
	-- the intent is recorded with its key and amount before the ledger is called
	CHECK (status = 'OPEN' OR (idempotency_key <> '' AND credits > 0)),
	-- an invoice is never paid without the posted debit
	CHECK (status <> 'PAID' OR (transaction_id <> '' AND paid_time IS NOT NULL))
) STRICT;
CREATE INDEX invoices_by_account ON invoices (workspace, account, seq);
CREATE INDEX invoices_paying ON invoices (update_time) WHERE status = 'PAYING';
