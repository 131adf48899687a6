-- CreditLedger PostgreSQL schema, version 11: a batch's events in one row.
--
-- Version 7 kept one row per event. A batch of 32 entries then wrote 32
-- more rows and 32 more index entries than before events, a third of what
-- its entries cost, which the hot scenario (many entries, few accounts)
-- measured as lost throughput. The events of a batch are now one row: their
-- sequences first_sequence..last_sequence, and per event, in that order,
-- its type, account ('' for none), time and data. What a reader sees is
-- unchanged: the same events, numbered the same way, in the same order
-- (ListEvents expands the rows). A row is written once and never changed,
-- as events were.
--
-- A row of a few dozen events is a few kilobytes; toast_tuple_target keeps
-- it in the heap, uncompressed, rather than compressing it or moving it to
-- the TOAST table at 2 kB.

CREATE TABLE event_batches (
    workspace      text COLLATE "C" NOT NULL CHECK (workspace <> ''),
    last_sequence  bigint NOT NULL,
    first_sequence bigint NOT NULL CHECK (first_sequence > 0 AND first_sequence <= last_sequence),
    types          text[] NOT NULL,
    accounts       text[] NOT NULL,
    create_times   timestamptz[] NOT NULL,
    data           bytea[] NOT NULL,
    CHECK (cardinality(types) = last_sequence - first_sequence + 1
       AND cardinality(accounts) = cardinality(types)
       AND cardinality(create_times) = cardinality(types)
       AND cardinality(data) = cardinality(types)),
    PRIMARY KEY (workspace, last_sequence)
) WITH (toast_tuple_target = 8160);

INSERT INTO event_batches (workspace, last_sequence, first_sequence, types, accounts, create_times, data)
SELECT workspace, sequence, sequence, ARRAY[type], ARRAY[COALESCE(account, '')], ARRAY[create_time], ARRAY[data]
FROM events;

DROP TABLE events;

CREATE TRIGGER event_batches_no_update BEFORE UPDATE OR DELETE ON event_batches
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse('events are never changed or deleted');
CREATE TRIGGER event_batches_no_truncate BEFORE TRUNCATE ON event_batches
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse('events are never deleted');

ALTER TABLE event_batches ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_batches FORCE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON event_batches
    USING (workspace = current_setting('creditledger.workspace', true))
    WITH CHECK (workspace = current_setting('creditledger.workspace', true));
