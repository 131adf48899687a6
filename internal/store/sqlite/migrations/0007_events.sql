-- CreditLedger embedded schema, version 7: events (SPEC §10), the
-- transactional outbox that ListEvents, WatchEvents and webhook deliveries
-- read. Numbered like the PostgreSQL migration of the same change.
--
-- A batch numbers its events from its workspace's counter in
-- event_sequences, in its own transaction; the database's single writer
-- makes that commit order. The object of an event is kept as the domain
-- encodes it (ledger.EncodeEventData).

CREATE TABLE event_sequences (
    workspace TEXT NOT NULL PRIMARY KEY CHECK (workspace <> ''),
    last      INTEGER NOT NULL CHECK (last >= 0)
) WITHOUT ROWID;

CREATE TABLE events (
    workspace   TEXT NOT NULL CHECK (workspace <> ''),
    sequence    INTEGER NOT NULL CHECK (sequence > 0),
    type        TEXT NOT NULL,
    account     TEXT,
    create_time INTEGER NOT NULL,
    data        BLOB NOT NULL,
    PRIMARY KEY (workspace, sequence)
) WITHOUT ROWID;

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events: events are never changed or deleted');
END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events: events are never changed or deleted');
END;
CREATE TRIGGER event_sequences_grow BEFORE UPDATE ON event_sequences
WHEN NEW.last < OLD.last OR NEW.workspace IS NOT OLD.workspace
BEGIN
    SELECT RAISE(ABORT, 'event_sequences: a workspace''s event counter only grows');
END;
CREATE TRIGGER event_sequences_no_delete BEFORE DELETE ON event_sequences
BEGIN
    SELECT RAISE(ABORT, 'event_sequences: event counters are never deleted');
END;
