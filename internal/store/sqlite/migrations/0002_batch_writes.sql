-- CreditLedger embedded schema, version 2: batched writes.
--
-- A batch (ledger.Store.Write) writes each account it moves once, at its
-- final state, possibly several versions ahead, and then inserts the
-- account's entries in version order, in the same transaction. Credit
-- requests get their workspace's request sequence number (seq), assigned in
-- commit order, which lists page by.
--
-- The accounts table is rebuilt while transactions reference it, so every
-- foreign key is checked at COMMIT for this migration only (the pragma ends
-- with the migration's transaction).
PRAGMA defer_foreign_keys = ON;

-- ---------------------------------------------------------------------------
-- Accounts and entries.
--
-- Version 1 moved an account one version per UPDATE and checked each entry
-- against the account right after it moved. A batch moves an account by
-- several versions at once, so the same invariants now take this shape:
--   * an account is inserted at version >= 1 (never empty: it exists because
--     its first batch posted to it) and only moves forward;
--   * an entry is inserted once its account is at or past the entry's
--     version, and the entry at the account's version carries the account's
--     balance (transactions_match_account);
--   * entries continue the balance chain, one version after another
--     (transactions_chain and UNIQUE (workspace, account, account_version),
--     unchanged);
--   * at COMMIT every account names the entry of its own version (the
--     deferred foreign key below), so no move commits without its entries.
-- Together: at every commit the account's balance and version are those of
-- its newest entry, and its versions run 1..n without a gap.

DROP TRIGGER transactions_match_account;

CREATE TABLE accounts_v1 AS SELECT workspace, id, balance, version, update_time FROM accounts;
DROP TABLE accounts;

CREATE TABLE accounts (
    workspace   TEXT    NOT NULL CHECK (workspace <> ''),
    id          TEXT    NOT NULL CHECK (id <> ''),
    balance     INTEGER NOT NULL CHECK (balance >= 0),
    version     INTEGER NOT NULL CHECK (version >= 1),
    update_time INTEGER,
    PRIMARY KEY (workspace, id),
    FOREIGN KEY (workspace, id, version) REFERENCES transactions (workspace, account, account_version)
        DEFERRABLE INITIALLY DEFERRED
) STRICT, WITHOUT ROWID;

INSERT INTO accounts (workspace, id, balance, version, update_time)
    SELECT workspace, id, balance, version, update_time FROM accounts_v1;
DROP TABLE accounts_v1;

CREATE TRIGGER accounts_move_forward BEFORE UPDATE ON accounts
WHEN NEW.version <= OLD.version OR NEW.workspace IS NOT OLD.workspace OR NEW.id IS NOT OLD.id
BEGIN
    SELECT RAISE(ABORT, 'accounts: an account only moves forward, to the version of its newest entry');
END;

CREATE TRIGGER accounts_no_delete BEFORE DELETE ON accounts
BEGIN
    SELECT RAISE(ABORT, 'accounts: accounts are never deleted');
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

-- ---------------------------------------------------------------------------
-- The request sequence.
--
-- seq numbers a workspace's requests 1..n in commit order: a new request
-- takes the next number (credit_requests_next_seq), which the batch
-- reserved in request_sequences first; seq never changes afterwards. The
-- column is added (not rebuilt) and kept non-NULL by those triggers.

DROP TRIGGER credit_requests_decide_once;
DROP INDEX credit_requests_by_account;
DROP INDEX credit_requests_by_status;

ALTER TABLE credit_requests ADD COLUMN seq INTEGER CHECK (seq >= 1);

-- Existing requests, numbered in ID order (IDs are time-ordered UUIDv7s).
UPDATE credit_requests SET seq = n.seq
FROM (SELECT workspace, id, row_number() OVER (PARTITION BY workspace ORDER BY id) AS seq
      FROM credit_requests) AS n
WHERE credit_requests.workspace = n.workspace AND credit_requests.id = n.id;

-- Lists page by seq: the whole queue (credit_requests_seq), by status (the
-- agency's queue), by account (the client's view, newest first) and by
-- account and status; amount makes the last one cover the pending sum of a
-- balance, which would otherwise scan the workspace's requests.
CREATE UNIQUE INDEX credit_requests_seq ON credit_requests (workspace, seq);
CREATE INDEX credit_requests_by_status ON credit_requests (workspace, status, seq);
CREATE INDEX credit_requests_by_account ON credit_requests (workspace, account, seq);
CREATE INDEX credit_requests_by_account_status ON credit_requests (workspace, account, status, seq, amount);

-- last_seq is the highest number handed out in the workspace.
CREATE TABLE request_sequences (
    workspace TEXT    NOT NULL CHECK (workspace <> ''),
    last_seq  INTEGER NOT NULL CHECK (last_seq >= 1),
    PRIMARY KEY (workspace)
) STRICT, WITHOUT ROWID;

INSERT INTO request_sequences (workspace, last_seq)
    SELECT workspace, MAX(seq) FROM credit_requests GROUP BY workspace;

CREATE TRIGGER request_sequences_forward BEFORE UPDATE ON request_sequences
WHEN NEW.last_seq < OLD.last_seq OR NEW.workspace IS NOT OLD.workspace
BEGIN
    SELECT RAISE(ABORT, 'request_sequences: a sequence only moves forward');
END;

CREATE TRIGGER request_sequences_no_delete BEFORE DELETE ON request_sequences
BEGIN
    SELECT RAISE(ABORT, 'request_sequences: sequences are never deleted');
END;

CREATE TRIGGER credit_requests_next_seq BEFORE INSERT ON credit_requests
WHEN NEW.seq IS NOT (SELECT COALESCE(MAX(seq), 0) + 1 FROM credit_requests WHERE workspace = NEW.workspace)
    OR NOT EXISTS (SELECT 1 FROM request_sequences WHERE workspace = NEW.workspace AND last_seq >= NEW.seq)
BEGIN
    SELECT RAISE(ABORT, 'credit_requests: a new request takes the next reserved number of its workspace''s sequence');
END;

-- As in version 1, plus: seq never changes.
CREATE TRIGGER credit_requests_decide_once BEFORE UPDATE ON credit_requests
WHEN OLD.status <> 'PENDING' OR NEW.status NOT IN ('ACCEPTED', 'REJECTED')
    OR NEW.workspace IS NOT OLD.workspace OR NEW.id IS NOT OLD.id OR NEW.account IS NOT OLD.account
    OR NEW.amount IS NOT OLD.amount OR NEW.package_id IS NOT OLD.package_id
    OR NEW.payment_method IS NOT OLD.payment_method OR NEW.payment_reference IS NOT OLD.payment_reference
    OR NEW.note IS NOT OLD.note OR NEW.metadata IS NOT OLD.metadata
    OR NEW.idempotency_key IS NOT OLD.idempotency_key OR NEW.create_time IS NOT OLD.create_time
    OR NEW.seq IS NOT OLD.seq
BEGIN
    SELECT RAISE(ABORT, 'credit_requests: only a PENDING request can be decided, once');
END;
