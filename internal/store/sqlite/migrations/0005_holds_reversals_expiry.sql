-- CreditLedger embedded schema, version 5: holds, reversals, credit expiry
-- and package validity (SPEC §9). Numbered like the PostgreSQL migration
-- of the same change; version 4 (row-level security) has no counterpart in
-- a single-tenant file.
--
-- The CHECKs on transactions.kind and idempotency_keys.operation list the
-- values they allow, so both tables are rebuilt: copied aside, dropped,
-- created again under the same name (so the foreign keys and triggers of
-- other tables that name them stay valid, as in version 2), refilled, and
-- only then given their triggers back (the rows were checked when they were
-- first written). Dropping a referenced table leaves foreign-key violations
-- until it is refilled, so they are all checked at COMMIT.
PRAGMA defer_foreign_keys = ON;

-- ---------------------------------------------------------------------------
-- Accounts: held credits.
--
-- held is the sum of the account's ACTIVE holds; the balance covers it. A
-- hold created or released moves held alone and posts no entry: the
-- version then stays, and the balance with it.

ALTER TABLE accounts ADD COLUMN held INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0 AND held <= balance);

DROP TRIGGER accounts_move_forward;

CREATE TRIGGER accounts_move_forward BEFORE UPDATE ON accounts
WHEN NEW.version < OLD.version OR (NEW.version = OLD.version AND NEW.balance IS NOT OLD.balance)
    OR NEW.workspace IS NOT OLD.workspace OR NEW.id IS NOT OLD.id
BEGIN
    SELECT RAISE(ABORT, 'accounts: an account only moves forward, to the version of its newest entry; held alone may change in place');
END;

-- ---------------------------------------------------------------------------
-- Holds.
--
-- A hold is born ACTIVE and leaves ACTIVE once, to CAPTURED (naming the OUT
-- entry of its kind that spent captured_amount of it), VOIDED or EXPIRED;
-- then it never changes again. It belongs to an account that exists (its
-- credits are that account's).

CREATE TABLE holds (
    workspace       TEXT    NOT NULL CHECK (workspace <> ''),
    id              TEXT    NOT NULL CHECK (id <> ''),
    account         TEXT    NOT NULL CHECK (account <> ''),
    amount          INTEGER NOT NULL CHECK (amount > 0),
    kind            TEXT    NOT NULL CHECK (kind IN ('SERVICE_PURCHASE', 'INVOICE_PAYMENT', 'ADJUSTMENT')),
    reference       TEXT    NOT NULL DEFAULT '',
    metadata        TEXT    CHECK (metadata IS NULL OR json_valid(metadata)),
    status          TEXT    NOT NULL CHECK (status IN ('ACTIVE', 'CAPTURED', 'VOIDED', 'EXPIRED')),
    expire_time     INTEGER NOT NULL,
    captured_amount INTEGER NOT NULL DEFAULT 0 CHECK (captured_amount >= 0 AND captured_amount <= amount),
    transaction_id  TEXT,
    idempotency_key TEXT    NOT NULL DEFAULT '',
    create_time     INTEGER NOT NULL,
    update_time     INTEGER,
    PRIMARY KEY (workspace, id),
    CHECK ((status = 'CAPTURED') = (transaction_id IS NOT NULL)),
    CHECK ((status = 'CAPTURED') = (captured_amount > 0)),
    CHECK ((status = 'ACTIVE') = (update_time IS NULL)),
    FOREIGN KEY (workspace, account) REFERENCES accounts (workspace, id),
    FOREIGN KEY (workspace, transaction_id) REFERENCES transactions (workspace, id)
) STRICT, WITHOUT ROWID;

-- An account's holds newest first, all or by status.
CREATE INDEX holds_by_account ON holds (workspace, account, id);
CREATE INDEX holds_by_account_status ON holds (workspace, account, status, id);
-- The sweeper's due holds, and the held-credits gauge, over ACTIVE holds only.
CREATE INDEX holds_active_due ON holds (workspace, expire_time, id, amount) WHERE status = 'ACTIVE';

CREATE TRIGGER holds_born_active BEFORE INSERT ON holds
WHEN NEW.status <> 'ACTIVE'
BEGIN
    SELECT RAISE(ABORT, 'holds: a new hold must be ACTIVE');
END;

CREATE TRIGGER holds_leave_active_once BEFORE UPDATE ON holds
WHEN OLD.status <> 'ACTIVE' OR NEW.status NOT IN ('CAPTURED', 'VOIDED', 'EXPIRED')
    OR NEW.workspace IS NOT OLD.workspace OR NEW.id IS NOT OLD.id OR NEW.account IS NOT OLD.account
    OR NEW.amount IS NOT OLD.amount OR NEW.kind IS NOT OLD.kind OR NEW.reference IS NOT OLD.reference
    OR NEW.metadata IS NOT OLD.metadata OR NEW.expire_time IS NOT OLD.expire_time
    OR NEW.idempotency_key IS NOT OLD.idempotency_key OR NEW.create_time IS NOT OLD.create_time
BEGIN
    SELECT RAISE(ABORT, 'holds: only an ACTIVE hold changes, once, and only its status, capture and update time');
END;

CREATE TRIGGER holds_captured_entry BEFORE UPDATE ON holds
WHEN NEW.status = 'CAPTURED' AND NOT EXISTS (
    SELECT 1 FROM transactions t
    WHERE t.workspace = NEW.workspace AND t.id = NEW.transaction_id AND t.hold_id = NEW.id
      AND t.account = NEW.account AND t.type = 'OUT' AND t.kind = NEW.kind AND t.amount = NEW.captured_amount
)
BEGIN
    SELECT RAISE(ABORT, 'holds: a captured hold needs its OUT entry of the captured amount');
END;

CREATE TRIGGER holds_no_delete BEFORE DELETE ON holds
BEGIN
    SELECT RAISE(ABORT, 'holds: holds are never deleted');
END;

-- ---------------------------------------------------------------------------
-- Entries: reversals, captures, expiring credits.

CREATE TABLE transactions_v3 AS SELECT * FROM transactions;
DROP TABLE transactions;

-- As in version 1, plus:
--   * reverses_transaction_id: a REVERSAL names the entry of its account it
--     reverses (transactions_reversal);
--   * hold_id: the OUT entry of a capture names its hold, one entry per hold;
--   * expire_time: when the unspent credits of an IN entry expire (a grant).
CREATE TABLE transactions (
    workspace               TEXT    NOT NULL,
    id                      TEXT    NOT NULL CHECK (id <> ''),
    account                 TEXT    NOT NULL,
    type                    TEXT    NOT NULL CHECK (type IN ('IN', 'OUT')),
    kind                    TEXT    NOT NULL CHECK (kind IN ('PURCHASE', 'REQUEST_APPROVED', 'SERVICE_PURCHASE',
                                                             'INVOICE_PAYMENT', 'REFUND', 'ADJUSTMENT',
                                                             'REVERSAL', 'EXPIRY')),
    amount                  INTEGER NOT NULL CHECK (amount > 0),
    balance_after           INTEGER NOT NULL CHECK (balance_after >= 0),
    account_version         INTEGER NOT NULL CHECK (account_version >= 1),
    reference               TEXT    NOT NULL DEFAULT '',
    idempotency_key         TEXT    NOT NULL DEFAULT '',
    metadata                TEXT    CHECK (metadata IS NULL OR json_valid(metadata)),
    package_id              TEXT    CHECK (package_id <> ''),
    request_id              TEXT    CHECK (request_id <> ''),
    create_time             INTEGER NOT NULL,
    reverses_transaction_id TEXT    CHECK (reverses_transaction_id <> ''),
    hold_id                 TEXT    CHECK (hold_id <> ''),
    expire_time             INTEGER,
    PRIMARY KEY (workspace, id),
    UNIQUE (workspace, account, account_version),
    CHECK ((kind = 'REVERSAL') = (reverses_transaction_id IS NOT NULL)),
    CHECK (kind <> 'EXPIRY' OR type = 'OUT'),
    CHECK (hold_id IS NULL OR type = 'OUT'),
    CHECK (expire_time IS NULL OR type = 'IN'),
    FOREIGN KEY (workspace, account) REFERENCES accounts (workspace, id),
    FOREIGN KEY (workspace, reverses_transaction_id) REFERENCES transactions (workspace, id),
    FOREIGN KEY (workspace, hold_id) REFERENCES holds (workspace, id)
) STRICT;

INSERT INTO transactions (workspace, id, account, type, kind, amount, balance_after, account_version, reference,
                          idempotency_key, metadata, package_id, request_id, create_time)
SELECT workspace, id, account, type, kind, amount, balance_after, account_version, reference,
       idempotency_key, metadata, package_id, request_id, create_time
FROM transactions_v3 ORDER BY workspace, account, account_version;
DROP TABLE transactions_v3;

-- The reversals of an entry (ReversedAmount on every read), and the one
-- capture entry of a hold.
CREATE INDEX transactions_reversals ON transactions (workspace, reverses_transaction_id, amount)
    WHERE reverses_transaction_id IS NOT NULL;
CREATE UNIQUE INDEX transactions_one_per_hold ON transactions (workspace, hold_id) WHERE hold_id IS NOT NULL;

-- Version 1's and 2's triggers, unchanged.
CREATE TRIGGER transactions_no_update BEFORE UPDATE ON transactions
BEGIN
    SELECT RAISE(ABORT, 'transactions: the ledger is append-only');
END;

CREATE TRIGGER transactions_no_delete BEFORE DELETE ON transactions
BEGIN
    SELECT RAISE(ABORT, 'transactions: the ledger is append-only');
END;

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

CREATE TRIGGER transactions_match_account BEFORE INSERT ON transactions
WHEN NOT EXISTS (
    SELECT 1 FROM accounts a
    WHERE a.workspace = NEW.workspace AND a.id = NEW.account
      AND (a.version > NEW.account_version
        OR (a.version = NEW.account_version AND a.balance = NEW.balance_after))
)
BEGIN
    SELECT RAISE(ABORT, 'transactions: entry is ahead of its account or does not match its balance');
END;

-- A reversal is the opposite of an entry of its own account that is
-- neither a reversal nor an expiry, and the reversals of an entry sum to at
-- most its amount. (Written as amount − reversed ≥ NEW.amount: no sum here
-- can overflow.)
CREATE TRIGGER transactions_reversal BEFORE INSERT ON transactions
WHEN NEW.reverses_transaction_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM transactions o
    WHERE o.workspace = NEW.workspace AND o.id = NEW.reverses_transaction_id AND o.account = NEW.account
      AND o.type <> NEW.type AND o.kind NOT IN ('REVERSAL', 'EXPIRY')
      AND o.amount - (SELECT COALESCE(SUM(r.amount), 0) FROM transactions r
                      WHERE r.workspace = NEW.workspace AND r.reverses_transaction_id = o.id) >= NEW.amount
)
BEGIN
    SELECT RAISE(ABORT, 'transactions: a reversal must oppose a reversible entry of its account, within what remains of it');
END;

-- A capture's entry spends an ACTIVE hold of its account, of its kind,
-- within its amount (the hold is updated to CAPTURED after it).
CREATE TRIGGER transactions_capture BEFORE INSERT ON transactions
WHEN NEW.hold_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM holds h
    WHERE h.workspace = NEW.workspace AND h.id = NEW.hold_id AND h.account = NEW.account
      AND h.status = 'ACTIVE' AND h.kind = NEW.kind AND h.amount >= NEW.amount
)
BEGIN
    SELECT RAISE(ABORT, 'transactions: a capture entry must spend an ACTIVE hold of its account and kind, within its amount');
END;

-- ---------------------------------------------------------------------------
-- Grants: the unspent part of credits that expire.
--
-- A grant is born with its IN entry (same id, account, amount and
-- expire_time), with what is left of it after its batch (that batch may
-- spend some). Afterwards remaining only goes down, and once the grant is
-- closed (remaining 0, or expired by its EXPIRY entry) it never changes
-- again. Open grants (remaining > 0) sit in a partial index: most accounts
-- have none, and reading them is one probe per account.

CREATE TABLE grants (
    workspace             TEXT    NOT NULL CHECK (workspace <> ''),
    transaction_id        TEXT    NOT NULL CHECK (transaction_id <> ''),
    account               TEXT    NOT NULL CHECK (account <> ''),
    amount                INTEGER NOT NULL CHECK (amount > 0),
    remaining             INTEGER NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
    expire_time           INTEGER NOT NULL,
    expiry_transaction_id TEXT,
    PRIMARY KEY (workspace, transaction_id),
    CHECK (expiry_transaction_id IS NULL OR remaining = 0),
    FOREIGN KEY (workspace, transaction_id) REFERENCES transactions (workspace, id),
    FOREIGN KEY (workspace, expiry_transaction_id) REFERENCES transactions (workspace, id)
) STRICT, WITHOUT ROWID;

CREATE INDEX grants_open ON grants (workspace, account, expire_time, transaction_id, amount, remaining,
                                   expiry_transaction_id)
    WHERE remaining > 0;
CREATE INDEX grants_open_due ON grants (workspace, expire_time, transaction_id) WHERE remaining > 0;
CREATE UNIQUE INDEX grants_one_expiry ON grants (workspace, expiry_transaction_id)
    WHERE expiry_transaction_id IS NOT NULL;

CREATE TRIGGER grants_born_with_entry BEFORE INSERT ON grants
WHEN NEW.expiry_transaction_id IS NOT NULL OR NOT EXISTS (
    SELECT 1 FROM transactions t
    WHERE t.workspace = NEW.workspace AND t.id = NEW.transaction_id AND t.account = NEW.account
      AND t.type = 'IN' AND t.amount = NEW.amount AND t.expire_time = NEW.expire_time
)
BEGIN
    SELECT RAISE(ABORT, 'grants: a grant is born open, with its IN entry of the same amount and expiry');
END;

CREATE TRIGGER grants_only_spent BEFORE UPDATE ON grants
WHEN OLD.remaining = 0 OR NEW.remaining > OLD.remaining OR OLD.expiry_transaction_id IS NOT NULL
    OR NEW.workspace IS NOT OLD.workspace OR NEW.transaction_id IS NOT OLD.transaction_id
    OR NEW.account IS NOT OLD.account OR NEW.amount IS NOT OLD.amount OR NEW.expire_time IS NOT OLD.expire_time
BEGIN
    SELECT RAISE(ABORT, 'grants: only an open grant changes, and its remaining only goes down');
END;

-- The expiry of a grant is an EXPIRY entry of its account of at most what
-- remained of it (the same batch may also have spent some of it).
CREATE TRIGGER grants_expiry_entry BEFORE UPDATE ON grants
WHEN NEW.expiry_transaction_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM transactions t
    WHERE t.workspace = NEW.workspace AND t.id = NEW.expiry_transaction_id AND t.account = NEW.account
      AND t.kind = 'EXPIRY' AND t.amount <= OLD.remaining
)
BEGIN
    SELECT RAISE(ABORT, 'grants: a grant expires with an EXPIRY entry of its account within what remained');
END;

CREATE TRIGGER grants_no_delete BEFORE DELETE ON grants
BEGIN
    SELECT RAISE(ABORT, 'grants: grants are never deleted');
END;

-- ---------------------------------------------------------------------------
-- Validity of packages and requests: how long bought credits last, in
-- nanoseconds (time.Duration), 0 for ever. A request keeps the validity of
-- its package at submission.

ALTER TABLE packages ADD COLUMN validity_nanos INTEGER NOT NULL DEFAULT 0 CHECK (validity_nanos >= 0);
ALTER TABLE credit_requests ADD COLUMN validity_nanos INTEGER NOT NULL DEFAULT 0 CHECK (validity_nanos >= 0);

CREATE TRIGGER credit_requests_validity_fixed BEFORE UPDATE ON credit_requests
WHEN NEW.validity_nanos IS NOT OLD.validity_nanos
BEGIN
    SELECT RAISE(ABORT, 'credit_requests: the validity of a request never changes');
END;

-- ---------------------------------------------------------------------------
-- Idempotency records: the new operations, which may name a hold, and what
-- each operation's record names.

CREATE TABLE idempotency_keys_v3 AS SELECT * FROM idempotency_keys;
DROP TABLE idempotency_keys;

CREATE TABLE idempotency_keys (
    workspace      TEXT    NOT NULL,
    key            TEXT    NOT NULL CHECK (key <> ''),
    operation      TEXT    NOT NULL CHECK (operation IN ('credit', 'debit', 'submit_request', 'decide_request',
                                                         'create_hold', 'capture_hold', 'void_hold', 'reverse')),
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
        WHEN 'create_hold'    THEN transaction_id IS NULL AND request_id IS NULL AND hold_id IS NOT NULL
        WHEN 'void_hold'      THEN transaction_id IS NULL AND request_id IS NULL AND hold_id IS NOT NULL
        WHEN 'capture_hold'   THEN transaction_id IS NOT NULL AND request_id IS NULL AND hold_id IS NOT NULL
    END),
    FOREIGN KEY (workspace, transaction_id) REFERENCES transactions (workspace, id),
    FOREIGN KEY (workspace, request_id) REFERENCES credit_requests (workspace, id),
    FOREIGN KEY (workspace, hold_id) REFERENCES holds (workspace, id)
) STRICT, WITHOUT ROWID;

INSERT INTO idempotency_keys (workspace, key, operation, fingerprint, transaction_id, request_id, create_time)
SELECT workspace, key, operation, fingerprint, transaction_id, request_id, create_time FROM idempotency_keys_v3;
DROP TABLE idempotency_keys_v3;

CREATE TRIGGER idempotency_keys_no_update BEFORE UPDATE ON idempotency_keys
BEGIN
    SELECT RAISE(ABORT, 'idempotency_keys: records are immutable');
END;

CREATE TRIGGER idempotency_keys_no_delete BEFORE DELETE ON idempotency_keys
BEGIN
    SELECT RAISE(ABORT, 'idempotency_keys: records are immutable');
END;
