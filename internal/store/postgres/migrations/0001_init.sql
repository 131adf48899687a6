-- CreditLedger PostgreSQL schema, version 1.
--
-- Every primary key starts with workspace. Times are timestamptz (UTC,
-- microseconds); NULL means "zero time". Credits are bigint. Metadata is a
-- JSON object of strings; NULL means "no metadata". Identifiers use the "C"
-- collation: keyset pages and their order are byte order, whatever the
-- database's default collation.
--
-- The database is the last line of defence: the ledger is append-only, every
-- entry continues its account's balance chain, an account only moves with an
-- entry that explains it, a credit request is decided once, and at most one
-- conversion rate per currency is active. The triggers raise
-- integrity_constraint_violation (23000) or check_violation (23514).

CREATE TABLE settings (
    workspace               text COLLATE "C" NOT NULL CHECK (workspace <> ''),
    credit_payments_enabled boolean     NOT NULL,
    update_time             timestamptz,
    PRIMARY KEY (workspace)
);

CREATE TABLE accounts (
    workspace   text COLLATE "C" NOT NULL CHECK (workspace <> ''),
    id          text COLLATE "C" NOT NULL CHECK (id <> ''),
    balance     bigint      NOT NULL CHECK (balance >= 0),
    version     bigint      NOT NULL CHECK (version >= 0),
    update_time timestamptz,
    PRIMARY KEY (workspace, id)
);

CREATE TABLE transactions (
    workspace       text COLLATE "C" NOT NULL,
    id              text COLLATE "C" NOT NULL CHECK (id <> ''),
    account         text COLLATE "C" NOT NULL,
    type            text        NOT NULL CHECK (type IN ('IN', 'OUT')),
    kind            text        NOT NULL CHECK (kind IN ('PURCHASE', 'REQUEST_APPROVED', 'SERVICE_PURCHASE',
                                                         'INVOICE_PAYMENT', 'REFUND', 'ADJUSTMENT')),
    amount          bigint      NOT NULL CHECK (amount > 0),
    balance_after   bigint      NOT NULL CHECK (balance_after >= 0),
    account_version bigint      NOT NULL CHECK (account_version >= 1),
    reference       text        NOT NULL DEFAULT '',
    idempotency_key text        NOT NULL DEFAULT '',
    metadata        jsonb       CHECK (jsonb_typeof(metadata) = 'object'
                                       AND NOT jsonb_path_exists(metadata, '$.* ? (@.type() != "string")')),
    package_id      text COLLATE "C" CHECK (package_id <> ''),
    request_id      text COLLATE "C" CHECK (request_id <> ''),
    create_time     timestamptz NOT NULL,
    PRIMARY KEY (workspace, id),
    -- Also the index of the history (keyset on the version, newest first).
    UNIQUE (workspace, account, account_version),
    FOREIGN KEY (workspace, account) REFERENCES accounts (workspace, id)
);

CREATE TABLE credit_requests (
    workspace         text COLLATE "C" NOT NULL,
    id                text COLLATE "C" NOT NULL CHECK (id <> ''),
    account           text COLLATE "C" NOT NULL CHECK (account <> ''),
    amount            bigint      NOT NULL CHECK (amount > 0),
    package_id        text COLLATE "C" CHECK (package_id <> ''),
    payment_method    text        NOT NULL CHECK (payment_method IN ('BANK_TRANSFER', 'CRYPTO')),
    payment_reference text        NOT NULL DEFAULT '',
    note              text        NOT NULL DEFAULT '',
    status            text        NOT NULL CHECK (status IN ('PENDING', 'ACCEPTED', 'REJECTED')),
    decision_reason   text        NOT NULL DEFAULT '',
    decided_by        text        NOT NULL DEFAULT '',
    decide_time       timestamptz,
    transaction_id    text COLLATE "C",
    metadata          jsonb       CHECK (jsonb_typeof(metadata) = 'object'
                                         AND NOT jsonb_path_exists(metadata, '$.* ? (@.type() != "string")')),
    idempotency_key   text        NOT NULL DEFAULT '',
    create_time       timestamptz NOT NULL,
    PRIMARY KEY (workspace, id),
    CONSTRAINT credit_requests_accepted_has_transaction CHECK ((status = 'ACCEPTED') = (transaction_id IS NOT NULL)),
    CONSTRAINT credit_requests_decided_has_time CHECK ((status = 'PENDING') = (decide_time IS NULL)),
    FOREIGN KEY (workspace, transaction_id) REFERENCES transactions (workspace, id)
);

CREATE INDEX credit_requests_by_account ON credit_requests (workspace, account, status, id);
CREATE INDEX credit_requests_by_status ON credit_requests (workspace, status, id);
-- The pending-requests gauge (metrics) across every workspace.
CREATE INDEX credit_requests_pending ON credit_requests (create_time) WHERE status = 'PENDING';

CREATE TABLE idempotency_keys (
    workspace      text COLLATE "C" NOT NULL,
    key            text COLLATE "C" NOT NULL CHECK (key <> ''),
    operation      text        NOT NULL CHECK (operation IN ('credit', 'debit', 'submit_request', 'decide_request')),
    fingerprint    bytea       NOT NULL,
    transaction_id text COLLATE "C",
    request_id     text COLLATE "C",
    create_time    timestamptz NOT NULL,
    PRIMARY KEY (workspace, key),
    CONSTRAINT idempotency_keys_outcome CHECK (CASE operation
        WHEN 'credit' THEN transaction_id IS NOT NULL AND request_id IS NULL
        WHEN 'debit' THEN transaction_id IS NOT NULL AND request_id IS NULL
        WHEN 'submit_request' THEN request_id IS NOT NULL AND transaction_id IS NULL
        ELSE request_id IS NOT NULL END),
    FOREIGN KEY (workspace, transaction_id) REFERENCES transactions (workspace, id),
    FOREIGN KEY (workspace, request_id) REFERENCES credit_requests (workspace, id)
);

CREATE TABLE packages (
    workspace      text COLLATE "C" NOT NULL,
    id             text COLLATE "C" NOT NULL CHECK (id <> ''),
    display_name   text        NOT NULL CHECK (display_name <> ''),
    credits        bigint      NOT NULL CHECK (credits > 0),
    price_currency text        NOT NULL CHECK (price_currency ~ '^[A-Z]{3}$'),
    price_units    bigint      NOT NULL CHECK (price_units >= 0),
    price_nanos    integer     NOT NULL CHECK (price_nanos BETWEEN 0 AND 999999999),
    active         boolean     NOT NULL,
    create_time    timestamptz NOT NULL,
    update_time    timestamptz,
    PRIMARY KEY (workspace, id)
);

-- seq orders a currency's rates (newest highest); rate is the canonical
-- decimal text of ledger.Decimal.String() (no trailing fractional zeros).
CREATE TABLE conversion_rates (
    workspace   text COLLATE "C" NOT NULL,
    currency    text COLLATE "C" NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    seq         bigint      GENERATED ALWAYS AS IDENTITY,
    rate        text        NOT NULL CHECK (rate ~ '^[0-9]+(\.[0-9]*[1-9])?$'),
    active      boolean     NOT NULL,
    create_time timestamptz NOT NULL,
    PRIMARY KEY (workspace, currency, seq)
);

-- At most one active rate per currency.
CREATE UNIQUE INDEX conversion_rates_one_active ON conversion_rates (workspace, currency) WHERE active;

-- ---------------------------------------------------------------------------
-- Triggers

-- Shared: refuse the statement.
CREATE FUNCTION ledger_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%: %', TG_TABLE_NAME, TG_ARGV[0] USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

-- The ledger is append-only: the database itself refuses to rewrite history.
CREATE TRIGGER transactions_no_update BEFORE UPDATE OR DELETE ON transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse('the ledger is append-only');
CREATE TRIGGER transactions_no_truncate BEFORE TRUNCATE ON transactions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse('the ledger is append-only');

-- Each entry continues its account's chain: version 1 starts from zero,
-- version v applies its amount to the balance_after of version v-1.
CREATE FUNCTION transactions_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    prev bigint;
BEGIN
    IF NEW.account_version = 1 THEN
        prev := 0;
    ELSE
        SELECT balance_after INTO prev FROM transactions
        WHERE workspace = NEW.workspace AND account = NEW.account AND account_version = NEW.account_version - 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'transactions: entry v% of %/% has no predecessor',
                NEW.account_version, NEW.workspace, NEW.account USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    IF NOT ((NEW.type = 'IN' AND prev = NEW.balance_after - NEW.amount)
         OR (NEW.type = 'OUT' AND prev - NEW.amount = NEW.balance_after)) THEN
        RAISE EXCEPTION 'transactions: entry v% of %/% does not continue the balance chain',
            NEW.account_version, NEW.workspace, NEW.account USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER transactions_chain BEFORE INSERT ON transactions
    FOR EACH ROW EXECUTE FUNCTION transactions_chain();

-- The account carries its newest entry's version and balance. An AFTER
-- trigger, so that it sees the account moved by the same statement (the
-- store moves the account and inserts the entry in one statement).
CREATE FUNCTION transactions_match_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM accounts
    WHERE workspace = NEW.workspace AND id = NEW.account
      AND version = NEW.account_version AND balance = NEW.balance_after;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'transactions: entry v% of %/% does not match its account',
            NEW.account_version, NEW.workspace, NEW.account USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER transactions_match_account AFTER INSERT ON transactions
    FOR EACH ROW EXECUTE FUNCTION transactions_match_account();

-- An account is born empty, moves forward one version at a time and is
-- never deleted; at commit, each state it moved to is explained by the entry
-- of that version.
CREATE FUNCTION accounts_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.version <> 0 OR NEW.balance <> 0 THEN
            RAISE EXCEPTION 'accounts: a new account starts at balance 0, version 0'
                USING ERRCODE = 'check_violation';
        END IF;
    ELSIF NEW.workspace IS DISTINCT FROM OLD.workspace OR NEW.id IS DISTINCT FROM OLD.id
          OR NEW.version <> OLD.version + 1 THEN
        RAISE EXCEPTION 'accounts: an account only moves forward one version at a time'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER accounts_guard BEFORE INSERT OR UPDATE ON accounts
    FOR EACH ROW EXECUTE FUNCTION accounts_guard();
CREATE TRIGGER accounts_no_delete BEFORE DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse('accounts are never deleted');
CREATE TRIGGER accounts_no_truncate BEFORE TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse('accounts are never deleted');

CREATE FUNCTION accounts_explained() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM transactions
    WHERE workspace = NEW.workspace AND account = NEW.id
      AND account_version = NEW.version AND balance_after = NEW.balance;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'accounts: %/% moved to version % without its entry', NEW.workspace, NEW.id, NEW.version
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER accounts_explained AFTER UPDATE ON accounts
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION accounts_explained();

-- The request state machine: born PENDING, decided once (PENDING →
-- ACCEPTED | REJECTED), then never changed again; what was requested is
-- immutable; an acceptance names the REQUEST_APPROVED entry that paid it.
CREATE FUNCTION credit_requests_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'PENDING' THEN
            RAISE EXCEPTION 'credit_requests: a new request must be PENDING' USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF OLD.status <> 'PENDING' OR NEW.status NOT IN ('ACCEPTED', 'REJECTED')
       OR (NEW.workspace, NEW.id, NEW.account, NEW.amount, NEW.payment_method, NEW.payment_reference,
           NEW.note, NEW.idempotency_key, NEW.create_time)
          IS DISTINCT FROM
          (OLD.workspace, OLD.id, OLD.account, OLD.amount, OLD.payment_method, OLD.payment_reference,
           OLD.note, OLD.idempotency_key, OLD.create_time)
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

CREATE TRIGGER credit_requests_guard BEFORE INSERT OR UPDATE ON credit_requests
    FOR EACH ROW EXECUTE FUNCTION credit_requests_guard();
CREATE TRIGGER credit_requests_no_delete BEFORE DELETE ON credit_requests
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse('requests are never deleted');
CREATE TRIGGER credit_requests_no_truncate BEFORE TRUNCATE ON credit_requests
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse('requests are never deleted');

-- A key remembers a posted outcome for as long as the outcome exists: forever.
CREATE TRIGGER idempotency_keys_immutable BEFORE UPDATE OR DELETE ON idempotency_keys
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse('records are immutable');
CREATE TRIGGER idempotency_keys_no_truncate BEFORE TRUNCATE ON idempotency_keys
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse('records are immutable');

-- Packages are archived, never deleted: history and requests name them.
CREATE FUNCTION packages_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.workspace, NEW.id, NEW.create_time) IS DISTINCT FROM (OLD.workspace, OLD.id, OLD.create_time) THEN
        RAISE EXCEPTION 'packages: id and create_time are immutable' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER packages_guard BEFORE UPDATE ON packages
    FOR EACH ROW EXECUTE FUNCTION packages_guard();
CREATE TRIGGER packages_no_delete BEFORE DELETE ON packages
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse('packages are archived, never deleted');

-- A rate is history once set: the only change is its deactivation.
CREATE FUNCTION conversion_rates_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT (OLD.active AND NOT NEW.active
            AND (NEW.workspace, NEW.currency, NEW.seq, NEW.rate, NEW.create_time)
                IS NOT DISTINCT FROM (OLD.workspace, OLD.currency, OLD.seq, OLD.rate, OLD.create_time)) THEN
        RAISE EXCEPTION 'conversion_rates: a rate can only be deactivated' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER conversion_rates_guard BEFORE UPDATE ON conversion_rates
    FOR EACH ROW EXECUTE FUNCTION conversion_rates_guard();
CREATE TRIGGER conversion_rates_no_delete BEFORE DELETE ON conversion_rates
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse('rates are kept as history');
