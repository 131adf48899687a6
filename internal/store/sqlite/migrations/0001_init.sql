-- CreditLedger embedded schema, version 1.
--
-- Every primary key starts with workspace. Times are INTEGER microseconds
-- since the Unix epoch, UTC; NULL means "zero time". Money amounts are
-- INTEGER (int64). Tables are STRICT so that a value of the wrong type is
-- refused instead of silently converted.

CREATE TABLE settings (
    workspace               TEXT    NOT NULL CHECK (workspace <> ''),
    credit_payments_enabled INTEGER NOT NULL CHECK (credit_payments_enabled IN (0, 1)),
    update_time             INTEGER,
    PRIMARY KEY (workspace)
) STRICT, WITHOUT ROWID;

CREATE TABLE accounts (
    workspace   TEXT    NOT NULL CHECK (workspace <> ''),
    id          TEXT    NOT NULL CHECK (id <> ''),
    balance     INTEGER NOT NULL CHECK (balance >= 0),
    version     INTEGER NOT NULL CHECK (version >= 0),
    update_time INTEGER,
    PRIMARY KEY (workspace, id)
) STRICT, WITHOUT ROWID;

-- An account is born empty and moves one version at a time, each step with
-- the transaction that explains it (see transactions_match_account).
CREATE TRIGGER accounts_born_empty BEFORE INSERT ON accounts
WHEN NEW.version <> 0 OR NEW.balance <> 0
BEGIN
    SELECT RAISE(ABORT, 'accounts: a new account starts at balance 0, version 0');
END;

CREATE TRIGGER accounts_version_step BEFORE UPDATE ON accounts
WHEN NEW.version <> OLD.version + 1 OR NEW.workspace IS NOT OLD.workspace OR NEW.id IS NOT OLD.id
BEGIN
    SELECT RAISE(ABORT, 'accounts: an account only moves forward one version at a time');
END;

CREATE TRIGGER accounts_no_delete BEFORE DELETE ON accounts
BEGIN
    SELECT RAISE(ABORT, 'accounts: accounts are never deleted');
END;

CREATE TABLE transactions (
    workspace       TEXT    NOT NULL,
    id              TEXT    NOT NULL CHECK (id <> ''),
    account         TEXT    NOT NULL,
    type            TEXT    NOT NULL CHECK (type IN ('IN', 'OUT')),
    kind            TEXT    NOT NULL CHECK (kind IN ('PURCHASE', 'REQUEST_APPROVED', 'SERVICE_PURCHASE',
                                                     'INVOICE_PAYMENT', 'REFUND', 'ADJUSTMENT')),
    amount          INTEGER NOT NULL CHECK (amount > 0),
    balance_after   INTEGER NOT NULL CHECK (balance_after >= 0),
    account_version INTEGER NOT NULL CHECK (account_version >= 1),
    reference       TEXT    NOT NULL DEFAULT '',
    idempotency_key TEXT    NOT NULL DEFAULT '',
    metadata        TEXT    CHECK (metadata IS NULL OR json_valid(metadata)),
    package_id      TEXT    CHECK (package_id <> ''),
    request_id      TEXT    CHECK (request_id <> ''),
    create_time     INTEGER NOT NULL,
    PRIMARY KEY (workspace, id),
    UNIQUE (workspace, account, account_version),
    FOREIGN KEY (workspace, account) REFERENCES accounts (workspace, id)
) STRICT;

-- The ledger is append-only: the database itself refuses to rewrite history.
CREATE TRIGGER transactions_no_update BEFORE UPDATE ON transactions
BEGIN
    SELECT RAISE(ABORT, 'transactions: the ledger is append-only');
END;

CREATE TRIGGER transactions_no_delete BEFORE DELETE ON transactions
BEGIN
    SELECT RAISE(ABORT, 'transactions: the ledger is append-only');
END;

-- Each entry continues its account's chain: version 1 starts from zero,
-- version v applies its amount to the balance_after of version v-1.
CREATE TRIGGER transactions_chain BEFORE INSERT ON transactions
WHEN NOT (
    (NEW.account_version = 1 AND NEW.type = 'IN' AND NEW.balance_after = NEW.amount)
    OR EXISTS (
        SELECT 1 FROM transactions p
        WHERE p.workspace = NEW.workspace AND p.account = NEW.account
          AND p.account_version = NEW.account_version - 1
          AND ((NEW.type = 'IN' AND p.balance_after = NEW.balance_after - NEW.amount)
            OR (NEW.type = 'OUT' AND p.balance_after - NEW.amount = NEW.balance_after))
    )
)
BEGIN
    SELECT RAISE(ABORT, 'transactions: entry does not continue the account''s balance chain');
END;

-- The account's stored state is the newest entry's.
CREATE TRIGGER transactions_match_account AFTER INSERT ON transactions
WHEN NOT EXISTS (
    SELECT 1 FROM accounts a
    WHERE a.workspace = NEW.workspace AND a.id = NEW.account
      AND a.version = NEW.account_version AND a.balance = NEW.balance_after
)
BEGIN
    SELECT RAISE(ABORT, 'transactions: entry does not match its account''s balance and version');
END;

CREATE TABLE credit_requests (
    workspace         TEXT    NOT NULL,
    id                TEXT    NOT NULL CHECK (id <> ''),
    account           TEXT    NOT NULL CHECK (account <> ''),
    amount            INTEGER NOT NULL CHECK (amount > 0),
    package_id        TEXT    CHECK (package_id <> ''),
    payment_method    TEXT    NOT NULL CHECK (payment_method IN ('BANK_TRANSFER', 'CRYPTO')),
    payment_reference TEXT    NOT NULL DEFAULT '',
    note              TEXT    NOT NULL DEFAULT '',
    status            TEXT    NOT NULL CHECK (status IN ('PENDING', 'ACCEPTED', 'REJECTED')),
    decision_reason   TEXT    NOT NULL DEFAULT '',
    decided_by        TEXT    NOT NULL DEFAULT '',
    decide_time       INTEGER,
    transaction_id    TEXT,
    metadata          TEXT    CHECK (metadata IS NULL OR json_valid(metadata)),
    idempotency_key   TEXT    NOT NULL DEFAULT '',
    create_time       INTEGER NOT NULL,
    PRIMARY KEY (workspace, id),
    CHECK ((status = 'ACCEPTED') = (transaction_id IS NOT NULL)),
    CHECK ((status = 'PENDING') = (decide_time IS NULL)),
    FOREIGN KEY (workspace, transaction_id) REFERENCES transactions (workspace, id)
) STRICT, WITHOUT ROWID;

CREATE INDEX credit_requests_by_account ON credit_requests (workspace, account, status, id);
CREATE INDEX credit_requests_by_status ON credit_requests (workspace, status, id);
-- The agency-wide pending gauge (metrics) without a table scan.
CREATE INDEX credit_requests_pending ON credit_requests (create_time) WHERE status = 'PENDING';

-- The request state machine: born PENDING, decided once (PENDING →
-- ACCEPTED | REJECTED), then never changed again; what was requested is
-- immutable; an acceptance names the REQUEST_APPROVED entry that paid it.
CREATE TRIGGER credit_requests_born_pending BEFORE INSERT ON credit_requests
WHEN NEW.status <> 'PENDING'
BEGIN
    SELECT RAISE(ABORT, 'credit_requests: a new request must be PENDING');
END;

CREATE TRIGGER credit_requests_decide_once BEFORE UPDATE ON credit_requests
WHEN OLD.status <> 'PENDING' OR NEW.status NOT IN ('ACCEPTED', 'REJECTED')
    OR NEW.workspace IS NOT OLD.workspace OR NEW.id IS NOT OLD.id OR NEW.account IS NOT OLD.account
    OR NEW.amount IS NOT OLD.amount OR NEW.package_id IS NOT OLD.package_id
    OR NEW.payment_method IS NOT OLD.payment_method OR NEW.payment_reference IS NOT OLD.payment_reference
    OR NEW.note IS NOT OLD.note OR NEW.metadata IS NOT OLD.metadata
    OR NEW.idempotency_key IS NOT OLD.idempotency_key OR NEW.create_time IS NOT OLD.create_time
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

CREATE TRIGGER credit_requests_no_delete BEFORE DELETE ON credit_requests
BEGIN
    SELECT RAISE(ABORT, 'credit_requests: requests are never deleted');
END;

CREATE TABLE idempotency_keys (
    workspace      TEXT    NOT NULL,
    key            TEXT    NOT NULL CHECK (key <> ''),
    operation      TEXT    NOT NULL CHECK (operation IN ('credit', 'debit', 'submit_request', 'decide_request')),
    fingerprint    BLOB    NOT NULL,
    transaction_id TEXT,
    request_id     TEXT,
    create_time    INTEGER NOT NULL,
    PRIMARY KEY (workspace, key),
    FOREIGN KEY (workspace, transaction_id) REFERENCES transactions (workspace, id),
    FOREIGN KEY (workspace, request_id) REFERENCES credit_requests (workspace, id)
) STRICT, WITHOUT ROWID;

-- A key remembers a posted outcome for as long as the outcome exists: forever.
CREATE TRIGGER idempotency_keys_no_update BEFORE UPDATE ON idempotency_keys
BEGIN
    SELECT RAISE(ABORT, 'idempotency_keys: records are immutable');
END;

CREATE TRIGGER idempotency_keys_no_delete BEFORE DELETE ON idempotency_keys
BEGIN
    SELECT RAISE(ABORT, 'idempotency_keys: records are immutable');
END;

CREATE TABLE packages (
    workspace      TEXT    NOT NULL,
    id             TEXT    NOT NULL CHECK (id <> ''),
    display_name   TEXT    NOT NULL CHECK (display_name <> ''),
    credits        INTEGER NOT NULL CHECK (credits > 0),
    price_currency TEXT    NOT NULL CHECK (price_currency GLOB '[A-Z][A-Z][A-Z]'),
    price_units    INTEGER NOT NULL CHECK (price_units >= 0),
    price_nanos    INTEGER NOT NULL CHECK (price_nanos BETWEEN 0 AND 999999999),
    active         INTEGER NOT NULL CHECK (active IN (0, 1)),
    create_time    INTEGER NOT NULL,
    update_time    INTEGER,
    PRIMARY KEY (workspace, id)
) STRICT, WITHOUT ROWID;

-- Packages are archived, never deleted: history and requests name them.
CREATE TRIGGER packages_no_delete BEFORE DELETE ON packages
BEGIN
    SELECT RAISE(ABORT, 'packages: packages are archived, never deleted');
END;

CREATE TRIGGER packages_identity BEFORE UPDATE ON packages
WHEN NEW.workspace IS NOT OLD.workspace OR NEW.id IS NOT OLD.id OR NEW.create_time IS NOT OLD.create_time
BEGIN
    SELECT RAISE(ABORT, 'packages: id and create_time are immutable');
END;

-- seq orders a currency's rates (newest highest); the rate is the canonical
-- decimal text of ledger.Decimal.String().
CREATE TABLE conversion_rates (
    workspace   TEXT    NOT NULL,
    currency    TEXT    NOT NULL CHECK (currency GLOB '[A-Z][A-Z][A-Z]'),
    seq         INTEGER NOT NULL CHECK (seq >= 1),
    rate        TEXT    NOT NULL CHECK (rate <> '' AND rate NOT GLOB '*[^0-9.]*' AND rate GLOB '[0-9]*'),
    active      INTEGER NOT NULL CHECK (active IN (0, 1)),
    create_time INTEGER NOT NULL,
    PRIMARY KEY (workspace, currency, seq)
) STRICT, WITHOUT ROWID;

-- At most one active rate per currency.
CREATE UNIQUE INDEX conversion_rates_one_active ON conversion_rates (workspace, currency) WHERE active = 1;

-- A rate is history once set: the only change is its deactivation.
CREATE TRIGGER conversion_rates_deactivate_only BEFORE UPDATE ON conversion_rates
WHEN NOT (OLD.active = 1 AND NEW.active = 0
    AND NEW.workspace IS OLD.workspace AND NEW.currency IS OLD.currency AND NEW.seq IS OLD.seq
    AND NEW.rate IS OLD.rate AND NEW.create_time IS OLD.create_time)
BEGIN
    SELECT RAISE(ABORT, 'conversion_rates: a rate can only be deactivated');
END;

CREATE TRIGGER conversion_rates_no_delete BEFORE DELETE ON conversion_rates
BEGIN
    SELECT RAISE(ABORT, 'conversion_rates: rates are kept as history');
END;
