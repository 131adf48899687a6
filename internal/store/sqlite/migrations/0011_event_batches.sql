-- CreditLedger embedded schema, version 11: a batch's events in one row,
-- as in the PostgreSQL migration of the same number (which says why).
--
-- The workspace's last sequence is that of its last row: the database's
-- single writer numbers a batch's events from it, so event_sequences, a
-- page more in every commit, is dropped.
--
-- events holds a JSON array with one element per event, in sequence order
-- from first_sequence: [type, account ('' for none), create_time (Unix
-- microseconds), data (the event's object as ledger.EncodeEventData
-- encodes it, itself JSON)].

CREATE TABLE event_batches (
    workspace      TEXT NOT NULL CHECK (workspace <> ''),
    last_sequence  INTEGER NOT NULL,
    first_sequence INTEGER NOT NULL CHECK (first_sequence > 0 AND first_sequence <= last_sequence),
    events         TEXT NOT NULL,
    PRIMARY KEY (workspace, last_sequence)
) WITHOUT ROWID;

INSERT INTO event_batches (workspace, last_sequence, first_sequence, events)
SELECT workspace, sequence, sequence,
       json_array(json_array(type, COALESCE(account, ''), create_time, json(CAST(data AS TEXT))))
FROM events;

DROP TABLE events;
DROP TABLE event_sequences;

CREATE TRIGGER event_batches_no_update BEFORE UPDATE ON event_batches
BEGIN
    SELECT RAISE(ABORT, 'events: events are never changed or deleted');
END;
CREATE TRIGGER event_batches_no_delete BEFORE DELETE ON event_batches
BEGIN
    SELECT RAISE(ABORT, 'events: events are never changed or deleted');
END;
