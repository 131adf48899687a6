-- CreditLedger PostgreSQL schema, version 7: events (SPEC §10), the
-- transactional outbox that ListEvents, WatchEvents and webhook
-- deliveries read.
--
-- Every batch that changes something inserts its events in its own
-- transaction, numbered from its workspace's counter in event_sequences.
-- The batch bumps the counter with its last statement before COMMIT, so
-- the counter's row lock, held until the commit ends, orders the batches
-- of a workspace: a batch that commits after another has the greater
-- sequences, and a reader that sees sequence n sees every sequence below
-- it (the lock is released only after the commit is visible). Being the
-- last lock a batch takes, it cannot be part of a deadlock, and it is
-- held for the commit only.
--
-- The object of an event (the entry, request, hold, settings or package
-- as the change left it) is kept as the domain encodes it
-- (ledger.EncodeEventData); bytea, since the database never looks into
-- it and parsing JSON would cost every insert.

CREATE TABLE event_sequences (
    workspace text COLLATE "C" NOT NULL PRIMARY KEY CHECK (workspace <> ''),
    last      bigint NOT NULL CHECK (last >= 0)
);

CREATE TABLE events (
    workspace   text COLLATE "C" NOT NULL CHECK (workspace <> ''),
    sequence    bigint NOT NULL CHECK (sequence > 0),
    type        text NOT NULL,
    account     text COLLATE "C",
    create_time timestamptz NOT NULL,
    data        bytea NOT NULL,
    PRIMARY KEY (workspace, sequence)
);

-- Events are history: never changed, never deleted; a counter only grows.
CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse('events are never changed or deleted');
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse('events are never deleted');
CREATE FUNCTION event_sequences_grow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'event_sequences: a workspace''s event counter only grows' USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER event_sequences_grow BEFORE UPDATE ON event_sequences
    FOR EACH ROW WHEN (NEW.last < OLD.last OR NEW.workspace IS DISTINCT FROM OLD.workspace)
    EXECUTE FUNCTION event_sequences_grow();
CREATE TRIGGER event_sequences_no_delete BEFORE DELETE ON event_sequences
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse('event counters are never deleted');

-- Row-level security, as every tenant table (migration 0004).
ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE events FORCE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON events
    USING (workspace = current_setting('creditledger.workspace', true))
    WITH CHECK (workspace = current_setting('creditledger.workspace', true));
ALTER TABLE event_sequences ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_sequences FORCE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON event_sequences
    USING (workspace = current_setting('creditledger.workspace', true))
    WITH CHECK (workspace = current_setting('creditledger.workspace', true));
