-- CreditLedger PostgreSQL schema, version 2: the batched write path.
--
-- A batch moves an account by several versions in one UPDATE (or creates it
-- at its state after the batch) and inserts all of its entries in one
-- statement after that. The invariants stay the same and as strict; only
-- where they are checked moves:
--   * each entry continues its account's chain (v1 starts from zero, vN
--     applies its amount to the balance_after of v(N-1)), and no entry is
--     ahead of its account: one statement-level check per INSERT, over the
--     inserted rows (a transition table), instead of two checks per row;
--   * an account only moves forward, and at commit every state it moved to
--     (or was created at) is the state its entry of that version leads to.
--
-- Credit requests get a per-workspace sequence, assigned inside the batch
-- from a counter row that stays locked until the batch commits: sequence
-- order is commit order, so a reader paging the queue by sequence never
-- misses a request that commits after it passed.

-- A batch asserts that its conditional writes changed what it locked; a
-- mismatch means a concurrent writer it did not expect, and fails the batch
-- as a serialization failure before COMMIT (the batch is decided again).
CREATE FUNCTION ledger_expect(expected bigint, actual bigint, what text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF expected IS DISTINCT FROM actual THEN
        RAISE EXCEPTION 'batch: % changed concurrently (% rows, expected %)', what, actual, expected
            USING ERRCODE = 'serialization_failure';
    END IF;
END;
$$;

CREATE TABLE workspace_sequences (
    workspace text COLLATE "C" NOT NULL CHECK (workspace <> ''),
    name      text        NOT NULL CHECK (name IN ('requests')),
    value     bigint      NOT NULL CHECK (value >= 0),
    PRIMARY KEY (workspace, name)
);

-- Foreign-key checks look a row up by (workspace, id). PostgreSQL caches
-- their plan per connection, planned at first use, and on a nearly empty
-- table an index that merely starts with workspace costs the same as the
-- primary key: a connection may then keep checking every foreign key by
-- scanning the whole workspace. So no index of transactions may serve
-- "workspace = $1" alone: the key leads with the id, the history index with
-- the account, and each lookup has exactly one index that fits it.
ALTER TABLE credit_requests DROP CONSTRAINT credit_requests_workspace_transaction_id_fkey;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_workspace_transaction_id_fkey;
ALTER TABLE transactions DROP CONSTRAINT transactions_pkey;
ALTER TABLE transactions ADD CONSTRAINT transactions_pkey PRIMARY KEY (id, workspace);
ALTER TABLE transactions DROP CONSTRAINT transactions_workspace_account_account_version_key;
ALTER TABLE transactions ADD CONSTRAINT transactions_account_version UNIQUE (account, workspace, account_version);
ALTER TABLE credit_requests ADD CONSTRAINT credit_requests_workspace_transaction_id_fkey
    FOREIGN KEY (workspace, transaction_id) REFERENCES transactions (workspace, id);
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_workspace_transaction_id_fkey
    FOREIGN KEY (workspace, transaction_id) REFERENCES transactions (workspace, id);

ALTER TABLE credit_requests ADD COLUMN seq bigint;

-- Existing requests are numbered in submission order. The decide-once guard
-- would refuse touching decided requests, so it is off for this one update.
ALTER TABLE credit_requests DISABLE TRIGGER credit_requests_guard;
UPDATE credit_requests r SET seq = n.seq
FROM (SELECT workspace, id, row_number() OVER (PARTITION BY workspace ORDER BY id) AS seq FROM credit_requests) n
WHERE r.workspace = n.workspace AND r.id = n.id;
ALTER TABLE credit_requests ENABLE TRIGGER credit_requests_guard;

INSERT INTO workspace_sequences (workspace, name, value)
SELECT workspace, 'requests', max(seq) FROM credit_requests GROUP BY workspace;

ALTER TABLE credit_requests ALTER COLUMN seq SET NOT NULL;
ALTER TABLE credit_requests ADD CONSTRAINT credit_requests_seq CHECK (seq >= 1);
-- Indexes lead with the account or the status for the reason given above.
-- The queue's keyset (workspace, seq) has to lead with workspace; a
-- connection that planned its check of a request key while the table was
-- nearly empty is replanned at the table's first automatic ANALYZE.
ALTER TABLE credit_requests ADD CONSTRAINT credit_requests_seq_unique UNIQUE (workspace, seq);
DROP INDEX credit_requests_by_account;
DROP INDEX credit_requests_by_status;
CREATE INDEX credit_requests_by_account ON credit_requests (account, workspace, status, seq);
CREATE INDEX credit_requests_by_status ON credit_requests (status, workspace, seq);

-- The sequence is immutable once assigned, like what was requested.
CREATE OR REPLACE FUNCTION credit_requests_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'PENDING' THEN
            RAISE EXCEPTION 'credit_requests: a new request must be PENDING' USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF OLD.status <> 'PENDING' OR NEW.status NOT IN ('ACCEPTED', 'REJECTED')
       OR (NEW.workspace, NEW.id, NEW.account, NEW.amount, NEW.payment_method, NEW.payment_reference,
           NEW.note, NEW.idempotency_key, NEW.create_time, NEW.seq)
          IS DISTINCT FROM
          (OLD.workspace, OLD.id, OLD.account, OLD.amount, OLD.payment_method, OLD.payment_reference,
           OLD.note, OLD.idempotency_key, OLD.create_time, OLD.seq)
       OR NEW.package_id IS DISTINCT FROM OLD.package_id
       OR NEW.metadata IS DISTINCT FROM OLD.metadata THEN
        RAISE EXCEPTION 'credit_requests: only a PENDING request can be decided, once'
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status = 'ACCEPTED' THEN
        PERFORM 1 FROM transactions t
        WHERE t.workspace = NEW.workspace AND t.id = NEW.transaction_id AND t.request_id = NEW.id
          AND t.account = NEW.account AND t.amount = NEW.amount AND t.type = 'IN' AND t.kind = 'REQUEST_APPROVED';
        IF NOT FOUND THEN
            RAISE EXCEPTION 'credit_requests: an accepted request needs its REQUEST_APPROVED entry'
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

-- Entries: one check per statement.
DROP TRIGGER transactions_chain ON transactions;
DROP TRIGGER transactions_match_account ON transactions;
DROP FUNCTION transactions_chain();
DROP FUNCTION transactions_match_account();

-- Within a batch, an entry's predecessor is usually the entry before it in
-- the same statement: only the first entry of each account is looked up in
-- the table, and only the last is compared with its account. The lookups
-- are correlated probes of unique indexes, not joins: the transition table
-- has no statistics, and a join could be planned (and cached) as a scan of
-- the whole ledger.
CREATE FUNCTION transactions_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.workspace, n.account, n.account_version INTO bad
    FROM (SELECT e.workspace, e.account, e.account_version, e.type, e.amount, e.balance_after, e.last,
                 CASE
                     WHEN e.account_version = 1 THEN 0
                     WHEN e.prev_version = e.account_version - 1 THEN e.prev_balance
                     ELSE (SELECT p.balance_after FROM transactions p
                           WHERE p.account = e.account AND p.workspace = e.workspace
                             AND p.account_version = e.account_version - 1)
                 END AS prev,
                 CASE WHEN e.last THEN
                     (SELECT a.version FROM accounts a WHERE a.workspace = e.workspace AND a.id = e.account)
                 END AS at
          FROM (SELECT ne.*,
                       lag(ne.account_version) OVER w AS prev_version,
                       lag(ne.balance_after) OVER w AS prev_balance,
                       lead(ne.account_version) OVER w IS NULL AS last
                FROM new_entries ne
                WINDOW w AS (PARTITION BY ne.workspace, ne.account ORDER BY ne.account_version)) e) n
    WHERE n.prev IS NULL
       OR NOT ((n.type = 'IN' AND n.prev = n.balance_after - n.amount)
            OR (n.type = 'OUT' AND n.prev - n.amount = n.balance_after))
       OR (n.last AND (n.at IS NULL OR n.at < n.account_version))
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'transactions: entry v% of %/% does not continue the balance chain of its account',
            bad.account_version, bad.workspace, bad.account USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;

-- The check above finds, for every statement, each entry's account and
-- refuses a missing one, and accounts are never deleted: the foreign key
-- from entries to accounts only repeated it, one locking probe per entry.
ALTER TABLE transactions DROP CONSTRAINT transactions_workspace_account_fkey;

CREATE TRIGGER transactions_check AFTER INSERT ON transactions
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION transactions_check();

-- Accounts: created at any valid state, moved forward only; explained at commit.
CREATE OR REPLACE FUNCTION accounts_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.version = 0 AND NEW.balance <> 0 THEN
            RAISE EXCEPTION 'accounts: an account at version 0 has balance 0'
                USING ERRCODE = 'check_violation';
        END IF;
    ELSIF NEW.workspace IS DISTINCT FROM OLD.workspace OR NEW.id IS DISTINCT FROM OLD.id
          OR NEW.version <= OLD.version THEN
        RAISE EXCEPTION 'accounts: an account only moves forward'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

DROP TRIGGER accounts_explained ON accounts;
-- Two probes of one unique index each (a join here could be planned, and
-- cached, as a scan of the account's whole history).
CREATE OR REPLACE FUNCTION accounts_explained() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cur_version bigint;
    cur_balance bigint;
BEGIN
    IF NEW.version = 0 THEN
        RETURN NULL;
    END IF;
    SELECT version, balance INTO cur_version, cur_balance FROM accounts
    WHERE workspace = NEW.workspace AND id = NEW.id;
    PERFORM 1 FROM transactions
    WHERE account = NEW.id AND workspace = NEW.workspace
      AND account_version = cur_version AND balance_after = cur_balance;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'accounts: %/% moved to version % without its entry', NEW.workspace, NEW.id, cur_version
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;

-- Checked against the account's state at commit (not the row version that
-- fired the trigger), so an account moved twice in one transaction is
-- checked at its final state.
CREATE CONSTRAINT TRIGGER accounts_explained AFTER INSERT OR UPDATE ON accounts
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION accounts_explained();
