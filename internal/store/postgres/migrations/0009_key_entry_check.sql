-- CreditLedger PostgreSQL schema, version 9: an idempotency record's entry
-- is checked once per statement, not by a foreign key.
--
-- Every credit and debit writes a record that names its entry. The foreign
-- key from idempotency_keys to transactions checked each with a locking
-- probe (FOR KEY SHARE), which also wrote a lock of the entry to the WAL:
-- one more row write per operation. Entries are never deleted (the ledger
-- is append-only) and records never change, so the key's only work is the
-- existence of the entry when the record is written, which one statement
-- trigger now checks for every record of the batch, as version 2 did for
-- the entries' accounts. The probes are correlated lookups of the entries'
-- primary key (a scalar subquery, which the planner does not turn into a
-- join as it would NOT EXISTS), not a join: the transition table has no
-- statistics, and a join could be planned as a scan of the whole ledger.

ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_workspace_transaction_id_fkey;

CREATE FUNCTION idempotency_keys_entries() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing record;
BEGIN
    SELECT k.workspace, k.key, k.transaction_id INTO missing
    FROM new_keys k
    WHERE k.transaction_id IS NOT NULL
      AND (SELECT 1 FROM transactions t WHERE t.id = k.transaction_id AND t.workspace = k.workspace) IS NULL
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'idempotency_keys: record %/% names entry %, which does not exist',
            missing.workspace, missing.key, missing.transaction_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER idempotency_keys_entries AFTER INSERT ON idempotency_keys
    REFERENCING NEW TABLE AS new_keys
    FOR EACH STATEMENT EXECUTE FUNCTION idempotency_keys_entries();
