-- CreditLedger embedded schema, version 8: webhook endpoints and their
-- deliveries (SPEC §10). Numbered like the PostgreSQL migration of the
-- same change. The embedded store serves one process: its delivery worker
-- leases endpoints all the same, so that a restart finds the lease of the
-- attempt it was making run out and repeats that attempt only.

CREATE TABLE webhook_endpoints (
    workspace          TEXT NOT NULL CHECK (workspace <> ''),
    id                 TEXT NOT NULL CHECK (id <> ''),
    url                TEXT NOT NULL CHECK (url <> ''),
    event_types        TEXT NOT NULL DEFAULT '[]', -- a JSON array
    description        TEXT NOT NULL DEFAULT '',
    secret             TEXT NOT NULL CHECK (secret LIKE 'whsec_%'),
    enabled            INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    disabled_reason    TEXT NOT NULL DEFAULT '',
    delivered_sequence INTEGER NOT NULL CHECK (delivered_sequence >= 0),
    attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    first_failure_time INTEGER,
    next_attempt_time  INTEGER NOT NULL,
    lease_owner        TEXT,
    lease_until        INTEGER,
    create_time        INTEGER NOT NULL,
    update_time        INTEGER NOT NULL,
    PRIMARY KEY (workspace, id)
) WITHOUT ROWID;

CREATE TRIGGER webhook_endpoints_forward BEFORE UPDATE ON webhook_endpoints
WHEN NEW.delivered_sequence < OLD.delivered_sequence OR NEW.workspace IS NOT OLD.workspace OR NEW.id IS NOT OLD.id
BEGIN
    SELECT RAISE(ABORT, 'webhook_endpoints: the delivery cursor only moves forward');
END;

CREATE TABLE webhook_deliveries (
    workspace      TEXT NOT NULL,
    endpoint_id    TEXT NOT NULL,
    event_sequence INTEGER NOT NULL CHECK (event_sequence > 0),
    attempt        INTEGER NOT NULL CHECK (attempt > 0),
    event_type     TEXT NOT NULL,
    attempt_time   INTEGER NOT NULL,
    status_code    INTEGER NOT NULL CHECK (status_code >= 0),
    latency_micros INTEGER NOT NULL CHECK (latency_micros >= 0),
    succeeded      INTEGER NOT NULL CHECK (succeeded IN (0, 1)),
    error          TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (workspace, endpoint_id, event_sequence, attempt),
    FOREIGN KEY (workspace, endpoint_id) REFERENCES webhook_endpoints (workspace, id)
) WITHOUT ROWID;
