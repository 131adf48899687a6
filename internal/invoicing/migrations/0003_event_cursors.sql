-- invoicing learns that a payment's hold ended (expired, voided,
-- captured) from the ledger's events: the last event applied per
-- workspace, and the lookup of an invoice by its hold.
CREATE TABLE event_cursors (
	workspace   TEXT PRIMARY KEY,
	sequence    INTEGER NOT NULL CHECK (sequence >= 0),
	update_time TEXT NOT NULL
) STRICT;
CREATE INDEX invoices_by_hold ON invoices (workspace, hold_id) WHERE hold_id <> '';
