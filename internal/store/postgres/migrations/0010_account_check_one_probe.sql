-- CreditLedger PostgreSQL schema, version 10: the commit-time check that an
-- account moved with its entry reads both in one query.
--
-- accounts_explained runs at COMMIT for every account a batch moved (a
-- batch of a thousand accounts' credits runs it a thousand times). It read
-- the account's current version and balance, then looked for the entry
-- that leads there: two queries. It now finds both in one, the entry by a
-- correlated probe of its unique (account, workspace, account_version)
-- index. What it checks is unchanged (version 5), and so is its error.

CREATE OR REPLACE FUNCTION accounts_explained() RETURNS trigger LANGUAGE plpgsql AS $$
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
    PERFORM 1 FROM accounts a
    WHERE a.workspace = NEW.workspace AND a.id = NEW.id
      AND (SELECT t.balance_after FROM transactions t
           WHERE t.account = a.id AND t.workspace = a.workspace AND t.account_version = a.version) = a.balance;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'accounts: %/% moved to version % without its entry', NEW.workspace, NEW.id,
            (SELECT a.version FROM accounts a WHERE a.workspace = NEW.workspace AND a.id = NEW.id)
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
