-- CreditLedger PostgreSQL schema, version 5: holds, reversals, credit
-- expiry and package validity (SPEC §9; the store contract is in
-- internal/ledger/store.go).
--
-- As before, the database refuses what breaks the ledger's invariants:
--   * a hold is born ACTIVE and leaves ACTIVE once, to CAPTURED (naming the
--     one OUT entry of its kind that spent captured_amount of it), VOIDED
--     or EXPIRED; accounts.held is, at commit, the sum of the account's
--     ACTIVE holds, and 0 ≤ held ≤ balance. A move of held alone keeps the
--     version, the balance and the update time;
--   * a grant is born with its expiring IN entry (and every expiring IN
--     entry has its grant); remaining only goes down, and a closed grant
--     (remaining 0) never changes again; its expiry is one EXPIRY entry of
--     the account; an account's open grants never sum to more than its
--     balance (accounts.granted keeps their sum, see below);
--   * a REVERSAL opposes an entry of its own account that is neither a
--     reversal nor an expiry, and the reversals of an entry sum to at most
--     its amount.
--
-- The hot path (a batch of plain credits and debits) must not get slower,
-- so it pays for none of this beyond a few comparisons: the new rules of
-- accounts and entries go into the triggers that every batch already
-- fires (a CHECK constraint, or a trigger's WHEN, is parsed again by every
-- statement that writes the table, and a batch updates its accounts one
-- statement each), and the row triggers added to entries have WHEN
-- clauses that plain entries do not meet. Holds and grants pay for their
-- own checks.
--
-- Indexes and the statements that use them are made so that a generic
-- plan (pgx prepares every statement, and PostgreSQL caches a generic plan
-- per connection) probes by key, as in version 2; plan_test.go checks the
-- plans of the new statements on empty tables and on analysed ones.

-- ---------------------------------------------------------------------------
-- Accounts: held credits, and what the account's open grants hold.
--
-- granted is the sum of the remaining credits of the account's grants,
-- kept by the grants' own trigger (grants_granted, below), so that the
-- rule "open grants ≤ balance" is one comparison of two columns of the
-- row that every move writes anyway; a batch lowers the grants it draws
-- before it moves its accounts (batch.go).

ALTER TABLE accounts
    ADD COLUMN held bigint NOT NULL DEFAULT 0,
    ADD COLUMN granted bigint NOT NULL DEFAULT 0;

-- 0 ≤ held ≤ balance and 0 ≤ granted ≤ balance (a negative balance is its
-- CHECK's); moved forward, or held or granted alone changed in place
-- (version, balance and update time stay).
-- (One test on the path every move takes: each costs it a little.)
CREATE OR REPLACE FUNCTION accounts_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (LEAST(NEW.held, NEW.granted) < 0 OR GREATEST(NEW.held, NEW.granted) > NEW.balance) AND NEW.balance >= 0 THEN
        IF NEW.held < 0 OR NEW.held > NEW.balance THEN
            RAISE EXCEPTION 'accounts: %/% holds % of its % credits', NEW.workspace, NEW.id, NEW.held, NEW.balance
                USING ERRCODE = 'check_violation';
        END IF;
        RAISE EXCEPTION 'accounts: the open grants of %/% (% credits) exceed its balance of %',
            NEW.workspace, NEW.id, NEW.granted, NEW.balance USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NEW.version = 0 AND NEW.balance <> 0 THEN
            RAISE EXCEPTION 'accounts: an account at version 0 has balance 0'
                USING ERRCODE = 'check_violation';
        END IF;
    ELSIF NEW.workspace IS DISTINCT FROM OLD.workspace OR NEW.id IS DISTINCT FROM OLD.id
          OR NEW.version < OLD.version
          OR (NEW.version = OLD.version AND (NEW.balance, NEW.update_time) IS DISTINCT FROM (OLD.balance, OLD.update_time)) THEN
        RAISE EXCEPTION 'accounts: an account only moves forward (held alone may change in place)'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

-- At commit, as in version 2, plus: an account whose held changed holds
-- exactly its ACTIVE holds, and one whose granted changed counts exactly
-- its grants (ledger_held and ledger_granted, below).
CREATE OR REPLACE FUNCTION accounts_explained() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cur_version bigint;
    cur_balance bigint;
BEGIN
    -- (OLD is NULL for an INSERT.)
    IF NEW.held <> COALESCE(OLD.held, 0) OR NEW.granted <> COALESCE(OLD.granted, 0) THEN
        IF NEW.held <> COALESCE(OLD.held, 0) THEN
            PERFORM ledger_held(NEW.workspace, NEW.id);
        END IF;
        IF NEW.granted <> COALESCE(OLD.granted, 0) THEN
            PERFORM ledger_granted(NEW.workspace, NEW.id);
        END IF;
    END IF;
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

-- ---------------------------------------------------------------------------
-- Packages and requests: validity (how long bought credits last, in
-- nanoseconds as time.Duration; 0: for ever). A request keeps the validity
-- its package had when it was submitted.

ALTER TABLE packages ADD COLUMN validity_nanos bigint NOT NULL DEFAULT 0 CHECK (validity_nanos >= 0);
ALTER TABLE credit_requests ADD COLUMN validity_nanos bigint NOT NULL DEFAULT 0 CHECK (validity_nanos >= 0);

CREATE FUNCTION credit_requests_validity_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'credit_requests: the validity of a request never changes' USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER credit_requests_validity_fixed BEFORE UPDATE ON credit_requests
    FOR EACH ROW WHEN (NEW.validity_nanos IS DISTINCT FROM OLD.validity_nanos)
    EXECUTE FUNCTION credit_requests_validity_fixed();

-- ---------------------------------------------------------------------------
-- Entries: reversals, captures, expiring credits.
--
-- The rules of the new columns are checked with the balance chain, in the
-- one statement-level query that every insert runs (transactions_check).

ALTER TABLE transactions DROP CONSTRAINT transactions_kind_check;
ALTER TABLE transactions
    ADD COLUMN reverses_transaction_id text COLLATE "C",
    ADD COLUMN hold_id text COLLATE "C",
    ADD COLUMN expire_time timestamptz,
    ADD CONSTRAINT transactions_kind_check CHECK (kind IN ('PURCHASE', 'REQUEST_APPROVED', 'SERVICE_PURCHASE',
        'INVOICE_PAYMENT', 'REFUND', 'ADJUSTMENT', 'REVERSAL', 'EXPIRY'));

-- The reversals of an entry: ReversedAmount on every read, and the check
-- below. Only reversals are in it.
CREATE INDEX transactions_reversals ON transactions (reverses_transaction_id, workspace) INCLUDE (amount)
    WHERE reverses_transaction_id IS NOT NULL;
-- A hold is captured by one entry.
CREATE UNIQUE INDEX transactions_one_per_hold ON transactions (hold_id, workspace) WHERE hold_id IS NOT NULL;

-- The statement-level check of version 2, plus the rules of the new
-- columns, row by row: a REVERSAL, and only a REVERSAL, names the entry it
-- reverses; an EXPIRY, and a capture (which names its hold), is OUT; an
-- entry that expires is IN.
CREATE OR REPLACE FUNCTION transactions_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.workspace, n.account, n.account_version, n.misfit INTO bad
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
                 END AS at,
                 (e.kind = 'REVERSAL') <> (e.reverses_transaction_id IS NOT NULL)
                 OR (e.type <> 'OUT' AND (e.kind = 'EXPIRY' OR e.hold_id IS NOT NULL))
                 OR (e.type <> 'IN' AND e.expire_time IS NOT NULL) AS misfit
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
       OR n.misfit
    LIMIT 1;
    IF FOUND THEN
        IF bad.misfit THEN
            RAISE EXCEPTION 'transactions: entry v% of %/% breaks the rules of its kind (a REVERSAL names the entry '
                'it reverses, an EXPIRY or a capture is OUT, an expiring entry is IN)',
                bad.account_version, bad.workspace, bad.account USING ERRCODE = 'check_violation';
        END IF;
        RAISE EXCEPTION 'transactions: entry v% of %/% does not continue the balance chain of its account',
            bad.account_version, bad.workspace, bad.account USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;

-- A reversal opposes an entry of its own account that is neither a
-- reversal nor an expiry, and the reversals of an entry sum to at most its
-- amount. An AFTER trigger: it sees every reversal of its statement.
CREATE FUNCTION transactions_reversal() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    o     record;
    total numeric;
BEGIN
    SELECT account, type, kind, amount INTO o FROM transactions
    WHERE id = NEW.reverses_transaction_id AND workspace = NEW.workspace;
    IF NOT FOUND OR o.account <> NEW.account OR o.type = NEW.type OR o.kind IN ('REVERSAL', 'EXPIRY') THEN
        RAISE EXCEPTION 'transactions: reversal % must oppose a reversible entry of its account (%)',
            NEW.id, NEW.reverses_transaction_id USING ERRCODE = 'check_violation';
    END IF;
    SELECT sum(amount) INTO total FROM transactions
    WHERE reverses_transaction_id = NEW.reverses_transaction_id AND workspace = NEW.workspace;
    IF total > o.amount THEN
        RAISE EXCEPTION 'transactions: the reversals of % (% credits) exceed its amount of %',
            NEW.reverses_transaction_id, total, o.amount USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER transactions_reversal AFTER INSERT ON transactions
    FOR EACH ROW WHEN (NEW.reverses_transaction_id IS NOT NULL) EXECUTE FUNCTION transactions_reversal();

-- At commit, an entry that names a hold is the entry that captured it, an
-- expiring IN entry has its grant, and an EXPIRY entry closed a grant (the
-- hold and the grant check the entry's account, kind and amount).
CREATE FUNCTION transactions_linked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.hold_id IS NOT NULL THEN
        PERFORM 1 FROM holds
        WHERE workspace = NEW.workspace AND id = NEW.hold_id AND status = 'CAPTURED' AND transaction_id = NEW.id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'transactions: entry % names hold % but did not capture it', NEW.id, NEW.hold_id
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    IF NEW.expire_time IS NOT NULL THEN
        PERFORM 1 FROM grants WHERE workspace = NEW.workspace AND transaction_id = NEW.id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'transactions: expiring entry % has no grant', NEW.id USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    IF NEW.kind = 'EXPIRY' THEN
        PERFORM 1 FROM grants WHERE expiry_transaction_id = NEW.id AND workspace = NEW.workspace;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'transactions: expiry % closed no grant', NEW.id USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER transactions_linked AFTER INSERT ON transactions
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.hold_id IS NOT NULL OR NEW.expire_time IS NOT NULL OR NEW.kind = 'EXPIRY')
    EXECUTE FUNCTION transactions_linked();

-- ---------------------------------------------------------------------------
-- Holds.

CREATE TABLE holds (
    workspace       text COLLATE "C" NOT NULL CHECK (workspace <> ''),
    id              text COLLATE "C" NOT NULL CHECK (id <> ''),
    account         text COLLATE "C" NOT NULL CHECK (account <> ''),
    amount          bigint      NOT NULL CHECK (amount > 0),
    kind            text        NOT NULL CHECK (kind IN ('SERVICE_PURCHASE', 'INVOICE_PAYMENT', 'ADJUSTMENT')),
    reference       text        NOT NULL DEFAULT '',
    metadata        jsonb       CHECK (jsonb_typeof(metadata) = 'object'
                                       AND NOT jsonb_path_exists(metadata, '$.* ? (@.type() != "string")')),
    status          text        NOT NULL CHECK (status IN ('ACTIVE', 'CAPTURED', 'VOIDED', 'EXPIRED')),
    expire_time     timestamptz NOT NULL,
    captured_amount bigint      NOT NULL DEFAULT 0 CHECK (captured_amount >= 0 AND captured_amount <= amount),
    transaction_id  text COLLATE "C",
    idempotency_key text        NOT NULL DEFAULT '',
    create_time     timestamptz NOT NULL,
    update_time     timestamptz,
    PRIMARY KEY (workspace, id),
    CONSTRAINT holds_captured_has_transaction CHECK ((status = 'CAPTURED') = (transaction_id IS NOT NULL)),
    CONSTRAINT holds_captured_has_amount CHECK ((status = 'CAPTURED') = (captured_amount > 0)),
    CONSTRAINT holds_ended_has_time CHECK ((status = 'ACTIVE') = (update_time IS NULL)),
    FOREIGN KEY (workspace, transaction_id) REFERENCES transactions (workspace, id)
);

-- The due holds (the sweep, the gauge); an account's holds, newest first
-- (ListHolds); its ACTIVE ones (ListHolds by status, the held check). In
-- this order: on a table that was never analysed every index costs alike,
-- and the planner keeps the one created last among those that fit.
CREATE INDEX holds_due ON holds (workspace, expire_time, id) WHERE status = 'ACTIVE';
CREATE INDEX holds_by_account ON holds (account, workspace, id);
CREATE INDEX holds_active ON holds (account, workspace, id) WHERE status = 'ACTIVE';

CREATE FUNCTION holds_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'ACTIVE' THEN
            RAISE EXCEPTION 'holds: a new hold must be ACTIVE' USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF OLD.status <> 'ACTIVE' OR NEW.status NOT IN ('CAPTURED', 'VOIDED', 'EXPIRED')
       OR (NEW.workspace, NEW.id, NEW.account, NEW.amount, NEW.kind, NEW.reference, NEW.expire_time,
           NEW.idempotency_key, NEW.create_time)
          IS DISTINCT FROM
          (OLD.workspace, OLD.id, OLD.account, OLD.amount, OLD.kind, OLD.reference, OLD.expire_time,
           OLD.idempotency_key, OLD.create_time)
       OR NEW.metadata IS DISTINCT FROM OLD.metadata THEN
        RAISE EXCEPTION 'holds: only an ACTIVE hold changes, once, and only its status, capture and update time'
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status = 'CAPTURED' THEN
        PERFORM 1 FROM transactions t
        WHERE t.id = NEW.transaction_id AND t.workspace = NEW.workspace AND t.hold_id = NEW.id
          AND t.account = NEW.account AND t.type = 'OUT' AND t.kind = NEW.kind AND t.amount = NEW.captured_amount;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'holds: captured hold % needs its OUT entry of the captured amount', NEW.id
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER holds_guard BEFORE INSERT OR UPDATE ON holds
    FOR EACH ROW EXECUTE FUNCTION holds_guard();
CREATE TRIGGER holds_no_delete BEFORE DELETE ON holds
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse('holds are never deleted');
CREATE TRIGGER holds_no_truncate BEFORE TRUNCATE ON holds
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse('holds are never deleted');

-- At commit, the account of a hold that changed (and, see
-- accounts_explained, an account whose held changed) holds exactly its
-- ACTIVE holds.
CREATE FUNCTION ledger_held(ws text, acct text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    held_  bigint;
    active numeric;
BEGIN
    SELECT held INTO held_ FROM accounts WHERE workspace = ws AND id = acct;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'holds: a hold of %/% has no account', ws, acct USING ERRCODE = 'check_violation';
    END IF;
    SELECT COALESCE(sum(amount), 0) INTO active FROM holds
    WHERE account = acct AND workspace = ws AND status = 'ACTIVE';
    IF held_ <> active THEN
        RAISE EXCEPTION 'accounts: %/% holds % credits, its ACTIVE holds %', ws, acct, held_, active
            USING ERRCODE = 'check_violation';
    END IF;
END;
$$;

CREATE FUNCTION holds_held() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_held(NEW.workspace, NEW.account);
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER holds_held AFTER INSERT OR UPDATE ON holds
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION holds_held();

-- ---------------------------------------------------------------------------
-- Grants: the unspent part of credits that expire. Its ID is its IN
-- entry's. Open means remaining > 0 (an expired grant has remaining 0).

CREATE TABLE grants (
    workspace             text COLLATE "C" NOT NULL CHECK (workspace <> ''),
    transaction_id        text COLLATE "C" NOT NULL CHECK (transaction_id <> ''),
    account               text COLLATE "C" NOT NULL CHECK (account <> ''),
    amount                bigint      NOT NULL CHECK (amount > 0),
    remaining             bigint      NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
    expire_time           timestamptz NOT NULL,
    expiry_transaction_id text COLLATE "C",
    PRIMARY KEY (workspace, transaction_id),
    CONSTRAINT grants_expired_empty CHECK (expiry_transaction_id IS NULL OR remaining = 0)
);

-- The due grants (the sweep); the grant an expiry closed; and last (see
-- holds), the open grants of an account: a batch that debits reads its
-- accounts' open grants in its first round trip, one probe each, and most
-- accounts have none.
CREATE INDEX grants_due ON grants (workspace, expire_time, transaction_id) WHERE remaining > 0;
CREATE UNIQUE INDEX grants_one_expiry ON grants (expiry_transaction_id, workspace)
    WHERE expiry_transaction_id IS NOT NULL;
CREATE INDEX grants_open ON grants (account, workspace, expire_time, transaction_id) WHERE remaining > 0;

CREATE FUNCTION grants_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        -- Born with its IN entry (the batch may already have spent some).
        PERFORM 1 FROM transactions t
        WHERE t.id = NEW.transaction_id AND t.workspace = NEW.workspace AND t.account = NEW.account
          AND t.type = 'IN' AND t.amount = NEW.amount AND t.expire_time = NEW.expire_time;
        IF NOT FOUND OR NEW.expiry_transaction_id IS NOT NULL THEN
            RAISE EXCEPTION 'grants: grant % is born with its IN entry of the same account, amount and expiry',
                NEW.transaction_id USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF OLD.remaining = 0 OR NEW.remaining > OLD.remaining
       OR (NEW.workspace, NEW.transaction_id, NEW.account, NEW.amount, NEW.expire_time)
          IS DISTINCT FROM (OLD.workspace, OLD.transaction_id, OLD.account, OLD.amount, OLD.expire_time) THEN
        RAISE EXCEPTION 'grants: only an open grant changes, and only its remaining goes down'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER grants_guard BEFORE INSERT OR UPDATE ON grants
    FOR EACH ROW EXECUTE FUNCTION grants_guard();
CREATE TRIGGER grants_no_delete BEFORE DELETE ON grants
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse('grants are never deleted');
CREATE TRIGGER grants_no_truncate BEFORE TRUNCATE ON grants
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse('grants are never deleted');

-- At commit, an expired grant names an EXPIRY entry of its account of at
-- most what remained of it (the same batch may have spent some of it).
-- Deferred: a batch changes the grants it draws or expires before it
-- inserts its entries.
CREATE FUNCTION grants_expiry() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM transactions t
    WHERE t.id = NEW.expiry_transaction_id AND t.workspace = NEW.workspace AND t.account = NEW.account
      AND t.kind = 'EXPIRY' AND t.amount <= OLD.remaining;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'grants: grant % expires with an EXPIRY entry of its account within what remained',
            NEW.transaction_id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER grants_expiry AFTER UPDATE ON grants
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.expiry_transaction_id IS NOT NULL) EXECUTE FUNCTION grants_expiry();

-- accounts.granted follows its grants' remaining credits; the account's
-- guard then refuses more than its balance, now and at every later move.
CREATE FUNCTION grants_granted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts SET granted = granted + NEW.remaining - CASE WHEN TG_OP = 'UPDATE' THEN OLD.remaining ELSE 0 END
    WHERE workspace = NEW.workspace AND id = NEW.account;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'grants: grant % of %/% has no account', NEW.transaction_id, NEW.workspace, NEW.account
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER grants_granted AFTER INSERT OR UPDATE ON grants
    FOR EACH ROW EXECUTE FUNCTION grants_granted();

-- At commit (see accounts_explained), an account whose granted changed
-- counts exactly its grants: nothing else may write it.
CREATE FUNCTION ledger_granted(ws text, acct text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    granted_ bigint;
    open_    numeric;
BEGIN
    SELECT granted INTO granted_ FROM accounts WHERE workspace = ws AND id = acct;
    SELECT COALESCE(sum(remaining), 0) INTO open_ FROM grants
    WHERE account = acct AND workspace = ws AND remaining > 0;
    IF granted_ <> open_ THEN
        RAISE EXCEPTION 'accounts: %/% counts % credits of open grants, its grants hold %', ws, acct, granted_, open_
            USING ERRCODE = 'check_violation';
    END IF;
END;
$$;

-- ---------------------------------------------------------------------------
-- Idempotency records: the new operations, and what each one's record
-- names; the new checks in one ALTER: one scan to validate.

ALTER TABLE idempotency_keys
    DROP CONSTRAINT idempotency_keys_operation_check,
    DROP CONSTRAINT idempotency_keys_outcome;
ALTER TABLE idempotency_keys
    ADD COLUMN hold_id text COLLATE "C",
    ADD CONSTRAINT idempotency_keys_operation_check CHECK (operation IN ('credit', 'debit', 'submit_request',
        'decide_request', 'create_hold', 'capture_hold', 'void_hold', 'reverse')),
    ADD CONSTRAINT idempotency_keys_outcome CHECK (CASE operation
        WHEN 'credit' THEN transaction_id IS NOT NULL AND request_id IS NULL AND hold_id IS NULL
        WHEN 'debit' THEN transaction_id IS NOT NULL AND request_id IS NULL AND hold_id IS NULL
        WHEN 'reverse' THEN transaction_id IS NOT NULL AND request_id IS NULL AND hold_id IS NULL
        WHEN 'submit_request' THEN request_id IS NOT NULL AND transaction_id IS NULL AND hold_id IS NULL
        WHEN 'decide_request' THEN request_id IS NOT NULL AND hold_id IS NULL
        WHEN 'create_hold' THEN hold_id IS NOT NULL AND transaction_id IS NULL AND request_id IS NULL
        WHEN 'void_hold' THEN hold_id IS NOT NULL AND transaction_id IS NULL AND request_id IS NULL
        ELSE hold_id IS NOT NULL AND transaction_id IS NOT NULL AND request_id IS NULL END),
    ADD CONSTRAINT idempotency_keys_workspace_hold_id_fkey
        FOREIGN KEY (workspace, hold_id) REFERENCES holds (workspace, id);

-- ---------------------------------------------------------------------------
-- Row-level security on the new tenant tables, as in version 4.

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['grants', 'holds'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY workspace_isolation ON %I '
                       'USING (workspace = current_setting(''creditledger.workspace'', true)) '
                       'WITH CHECK (workspace = current_setting(''creditledger.workspace'', true))', t);
    END LOOP;
END;
$$;
