-- The checkout learns the agency's decisions and the end of its orders'
-- holds from the ledger's events: the last event applied per workspace,
-- and the lookups an event needs (its request, its hold).
CREATE TABLE event_cursors (
	workspace   TEXT PRIMARY KEY,
	sequence    INTEGER NOT NULL CHECK (sequence >= 0),
	update_time TEXT NOT NULL
) STRICT;
CREATE INDEX purchases_by_request ON purchases (workspace, request_id) WHERE request_id <> '';
CREATE INDEX orders_by_hold ON orders (workspace, hold_id) WHERE hold_id <> '';
