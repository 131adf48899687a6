-- CreditLedger embedded schema, version 6: agency controls. Numbered like
-- the PostgreSQL migration of the same change: the payment methods a
-- workspace offers, its low-balance threshold, and credit requests that
-- their client cancels.
--
-- The CHECKs on credit_requests.status and idempotency_keys.operation list
-- the values they allow, so both tables are rebuilt as in version 5: copied
-- aside, dropped, created again under the same name, refilled, and only
-- then given back their indexes and triggers (the rows were checked when
-- they were first written). Dropping credit_requests, which idempotency
-- records reference, leaves foreign-key violations until it is refilled,
-- so they are checked at COMMIT.
PRAGMA defer_foreign_keys = ON;

-- ---------------------------------------------------------------------------
-- Settings.
--
-- payment_methods: a JSON array of the methods the workspace offers
-- (ledger.PaymentMethod names, each once); NULL while the agency never
-- chose (every method is offered), '[]' when it offers none.
-- low_balance_threshold: the balance below which an account is low, 0 for
-- off, at most the largest balance (10^15).

ALTER TABLE settings ADD COLUMN payment_methods TEXT
    CHECK (payment_methods IS NULL OR json_valid(payment_methods));
ALTER TABLE settings ADD COLUMN low_balance_threshold INTEGER NOT NULL DEFAULT 0
    CHECK (low_balance_threshold BETWEEN 0 AND 1000000000000000);

CREATE TRIGGER settings_payment_methods_insert BEFORE INSERT ON settings
WHEN NEW.payment_methods IS NOT NULL AND (
    json_type(NEW.payment_methods) IS NOT 'array'
    OR EXISTS (SELECT 1 FROM json_each(NEW.payment_methods)
               WHERE type IS NOT 'text' OR value NOT IN ('BANK_TRANSFER', 'CRYPTO', 'STRIPE', 'PAYPAL'))
    OR (SELECT count(*) FROM json_each(NEW.payment_methods))
       <> (SELECT count(DISTINCT value) FROM json_each(NEW.payment_methods)))
BEGIN
    SELECT RAISE(ABORT, 'settings: payment_methods lists known payment methods, each once');
END;

CREATE TRIGGER settings_payment_methods_update BEFORE UPDATE OF payment_methods ON settings
WHEN NEW.payment_methods IS NOT NULL AND (
    json_type(NEW.payment_methods) IS NOT 'array'
    OR EXISTS (SELECT 1 FROM json_each(NEW.payment_methods)
               WHERE type IS NOT 'text' OR value NOT IN ('BANK_TRANSFER', 'CRYPTO', 'STRIPE', 'PAYPAL'))
    OR (SELECT count(*) FROM json_each(NEW.payment_methods))
       <> (SELECT count(DISTINCT value) FROM json_each(NEW.payment_methods)))
BEGIN
    SELECT RAISE(ABORT, 'settings: payment_methods lists known payment methods, each once');
END;

-- ---------------------------------------------------------------------------
-- Credit requests: CANCELLED, a way out of PENDING beside ACCEPTED and
-- REJECTED, once, with nothing posted (no transaction) and a decide time,
-- like a rejection.

CREATE TABLE credit_requests_v5 AS SELECT * FROM credit_requests;
DROP TABLE credit_requests;

CREATE TABLE credit_requests (
    workspace         TEXT    NOT NULL,
    id                TEXT    NOT NULL CHECK (id <> ''),
    account           TEXT    NOT NULL CHECK (account <> ''),
    amount            INTEGER NOT NULL CHECK (amount > 0),
    package_id        TEXT    CHECK (package_id <> ''),
    payment_method    TEXT    NOT NULL CHECK (payment_method IN ('BANK_TRANSFER', 'CRYPTO')),
    payment_reference TEXT    NOT NULL DEFAULT '',
    note              TEXT    NOT NULL DEFAULT '',
    status            TEXT    NOT NULL CHECK (status IN ('PENDING', 'ACCEPTED', 'REJECTED', 'CANCELLED')),
    decision_reason   TEXT    NOT NULL DEFAULT '',
    decided_by        TEXT    NOT NULL DEFAULT '',
    decide_time       INTEGER,
    transaction_id    TEXT,
    metadata          TEXT    CHECK (metadata IS NULL OR json_valid(metadata)),
    idempotency_key   TEXT    NOT NULL DEFAULT '',
    create_time       INTEGER NOT NULL,
    seq               INTEGER CHECK (seq >= 1),
    submitted_by      TEXT    NOT NULL DEFAULT '',
    validity_nanos    INTEGER NOT NULL DEFAULT 0 CHECK (validity_nanos >= 0),
    PRIMARY KEY (workspace, id),
    CHECK ((status = 'ACCEPTED') = (transaction_id IS NOT NULL)),
    CHECK ((status = 'PENDING') = (decide_time IS NULL)),
    FOREIGN KEY (workspace, transaction_id) REFERENCES transactions (workspace, id)
) STRICT, WITHOUT ROWID;

INSERT INTO credit_requests (workspace, id, account, amount, package_id, payment_method, payment_reference, note,
                             status, decision_reason, decided_by, decide_time, transaction_id, metadata,
                             idempotency_key, create_time, seq, submitted_by, validity_nanos)
SELECT workspace, id, account, amount, package_id, payment_method, payment_reference, note,
       status, decision_reason, decided_by, decide_time, transaction_id, metadata,
       idempotency_key, create_time, seq, submitted_by, validity_nanos
FROM credit_requests_v5;
DROP TABLE credit_requests_v5;

-- Version 2's indexes, unchanged.
CREATE UNIQUE INDEX credit_requests_seq ON credit_requests (workspace, seq);
CREATE INDEX credit_requests_by_status ON credit_requests (workspace, status, seq);
CREATE INDEX credit_requests_by_account ON credit_requests (workspace, account, seq);
CREATE INDEX credit_requests_by_account_status ON credit_requests (workspace, account, status, seq, amount);
CREATE INDEX credit_requests_pending ON credit_requests (create_time) WHERE status = 'PENDING';

-- Versions 1 to 5's triggers, unchanged but for CANCELLED among the final
-- states of credit_requests_decide_once.
CREATE TRIGGER credit_requests_born_pending BEFORE INSERT ON credit_requests
WHEN NEW.status <> 'PENDING'
BEGIN
    SELECT RAISE(ABORT, 'credit_requests: a new request must be PENDING');
END;

CREATE TRIGGER credit_requests_next_seq BEFORE INSERT ON credit_requests
WHEN NEW.seq IS NOT (SELECT COALESCE(MAX(seq), 0) + 1 FROM credit_requests WHERE workspace = NEW.workspace)
    OR NOT EXISTS (SELECT 1 FROM request_sequences WHERE workspace = NEW.workspace AND last_seq >= NEW.seq)
BEGIN
    SELECT RAISE(ABORT, 'credit_requests: a new request takes the next reserved number of its workspace''s sequence');
END;

CREATE TRIGGER credit_requests_decide_once BEFORE UPDATE ON credit_requests
WHEN OLD.status <> 'PENDING' OR NEW.status NOT IN ('ACCEPTED', 'REJECTED', 'CANCELLED')
    OR NEW.workspace IS NOT OLD.workspace OR NEW.id IS NOT OLD.id OR NEW.account IS NOT OLD.account
    OR NEW.amount IS NOT OLD.amount OR NEW.package_id IS NOT OLD.package_id
    OR NEW.payment_method IS NOT OLD.payment_method OR NEW.payment_reference IS NOT OLD.payment_reference
    OR NEW.note IS NOT OLD.note OR NEW.metadata IS NOT OLD.metadata
    OR NEW.idempotency_key IS NOT OLD.idempotency_key OR NEW.create_time IS NOT OLD.create_time
    OR NEW.seq IS NOT OLD.seq
BEGIN
    SELECT RAISE(ABORT, 'credit_requests: only a PENDING request can be decided, once');
END;

CREATE TRIGGER credit_requests_accepted_entry BEFORE UPDATE ON credit_requests
WHEN NEW.status = 'ACCEPTED' AND NOT EXISTS (
    SELECT 1 FROM transactions t
    WHERE t.workspace = NEW.workspace AND t.id = NEW.transaction_id AND t.request_id = NEW.id
      AND t.account = NEW.account AND t.amount = NEW.amount AND t.type = 'IN' AND t.kind = 'REQUEST_APPROVED'
)
BEGIN
    SELECT RAISE(ABORT, 'credit_requests: an accepted request needs its REQUEST_APPROVED entry');
END;

CREATE TRIGGER credit_requests_submitter_fixed BEFORE UPDATE ON credit_requests
WHEN NEW.submitted_by IS NOT OLD.submitted_by
BEGIN
    SELECT RAISE(ABORT, 'credit_requests: the submitter of a request never changes');
END;

CREATE TRIGGER credit_requests_validity_fixed BEFORE UPDATE ON credit_requests
WHEN NEW.validity_nanos IS NOT OLD.validity_nanos
BEGIN
    SELECT RAISE(ABORT, 'credit_requests: the validity of a request never changes');
END;

CREATE TRIGGER credit_requests_no_delete BEFORE DELETE ON credit_requests
BEGIN
    SELECT RAISE(ABORT, 'credit_requests: requests are never deleted');
END;

-- ---------------------------------------------------------------------------
-- Idempotency records: cancel_request names its request, and nothing else.

CREATE TABLE idempotency_keys_v5 AS SELECT * FROM idempotency_keys;
DROP TABLE idempotency_keys;

CREATE TABLE idempotency_keys (
    workspace      TEXT    NOT NULL,
    key            TEXT    NOT NULL CHECK (key <> ''),
    operation      TEXT    NOT NULL CHECK (operation IN ('credit', 'debit', 'submit_request', 'decide_request',
                                                         'create_hold', 'capture_hold', 'void_hold', 'reverse',
                                                         'cancel_request')),
    fingerprint    BLOB    NOT NULL,
    transaction_id TEXT,
    request_id     TEXT,
    create_time    INTEGER NOT NULL,
    hold_id        TEXT,
    PRIMARY KEY (workspace, key),
    CHECK (CASE operation
        WHEN 'credit'         THEN transaction_id IS NOT NULL AND request_id IS NULL AND hold_id IS NULL
        WHEN 'debit'          THEN transaction_id IS NOT NULL AND request_id IS NULL AND hold_id IS NULL
        WHEN 'reverse'        THEN transaction_id IS NOT NULL AND request_id IS NULL AND hold_id IS NULL
        WHEN 'submit_request' THEN transaction_id IS NULL AND request_id IS NOT NULL AND hold_id IS NULL
        WHEN 'decide_request' THEN request_id IS NOT NULL AND hold_id IS NULL
        WHEN 'cancel_request' THEN transaction_id IS NULL AND request_id IS NOT NULL AND hold_id IS NULL
        WHEN 'create_hold'    THEN transaction_id IS NULL AND request_id IS NULL AND hold_id IS NOT NULL
        WHEN 'void_hold'      THEN transaction_id IS NULL AND request_id IS NULL AND hold_id IS NOT NULL
        WHEN 'capture_hold'   THEN transaction_id IS NOT NULL AND request_id IS NULL AND hold_id IS NOT NULL
    END),
    FOREIGN KEY (workspace, transaction_id) REFERENCES transactions (workspace, id),
    FOREIGN KEY (workspace, request_id) REFERENCES credit_requests (workspace, id),
    FOREIGN KEY (workspace, hold_id) REFERENCES holds (workspace, id)
) STRICT, WITHOUT ROWID;

INSERT INTO idempotency_keys (workspace, key, operation, fingerprint, transaction_id, request_id, create_time, hold_id)
SELECT workspace, key, operation, fingerprint, transaction_id, request_id, create_time, hold_id FROM idempotency_keys_v5;
DROP TABLE idempotency_keys_v5;

CREATE TRIGGER idempotency_keys_no_update BEFORE UPDATE ON idempotency_keys
BEGIN
    SELECT RAISE(ABORT, 'idempotency_keys: records are immutable');
END;

CREATE TRIGGER idempotency_keys_no_delete BEFORE DELETE ON idempotency_keys
BEGIN
    SELECT RAISE(ABORT, 'idempotency_keys: records are immutable');
END;
