-- CreditLedger PostgreSQL schema, version 8: webhook endpoints and their
-- deliveries (SPEC §10).
--
-- An endpoint's cursor (delivered_sequence) is the last event it handled;
-- the worker that holds its lease (lease_owner, lease_until) delivers the
-- next event, records the attempt and moves the cursor in one
-- transaction. Replicas take due endpoints with FOR UPDATE SKIP LOCKED
-- and a lease, so each event is delivered by one of them at a time; a
-- worker that dies leaves a lease that runs out, and the event in flight
-- is delivered again (at least once).

CREATE TABLE webhook_endpoints (
    workspace          text COLLATE "C" NOT NULL CHECK (workspace <> ''),
    id                 text COLLATE "C" NOT NULL CHECK (id <> ''),
    url                text NOT NULL CHECK (url <> ''),
    event_types        text[] NOT NULL DEFAULT '{}',
    description        text NOT NULL DEFAULT '',
    secret             text NOT NULL CHECK (secret LIKE 'whsec\_%'),
    enabled            boolean NOT NULL,
    disabled_reason    text NOT NULL DEFAULT '',
    delivered_sequence bigint NOT NULL CHECK (delivered_sequence >= 0),
    attempts           integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    first_failure_time timestamptz,
    next_attempt_time  timestamptz NOT NULL,
    lease_owner        text,
    lease_until        timestamptz,
    create_time        timestamptz NOT NULL,
    update_time        timestamptz NOT NULL,
    PRIMARY KEY (workspace, id)
);
CREATE INDEX webhook_endpoints_due ON webhook_endpoints (workspace, next_attempt_time) WHERE enabled;

-- The cursor only moves forward.
CREATE FUNCTION webhook_endpoints_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'webhook_endpoints: the delivery cursor only moves forward' USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER webhook_endpoints_forward BEFORE UPDATE ON webhook_endpoints
    FOR EACH ROW WHEN (NEW.delivered_sequence < OLD.delivered_sequence OR NEW.workspace IS DISTINCT FROM OLD.workspace
                       OR NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION webhook_endpoints_forward();

CREATE TABLE webhook_deliveries (
    workspace      text COLLATE "C" NOT NULL,
    endpoint_id    text COLLATE "C" NOT NULL,
    event_sequence bigint NOT NULL CHECK (event_sequence > 0),
    attempt        integer NOT NULL CHECK (attempt > 0),
    event_type     text NOT NULL,
    attempt_time   timestamptz NOT NULL,
    status_code    integer NOT NULL CHECK (status_code >= 0),
    latency_micros bigint NOT NULL CHECK (latency_micros >= 0),
    succeeded      boolean NOT NULL,
    error          text NOT NULL DEFAULT '',
    PRIMARY KEY (workspace, endpoint_id, event_sequence, attempt),
    FOREIGN KEY (workspace, endpoint_id) REFERENCES webhook_endpoints (workspace, id)
);

-- The workspaces that have had an endpoint: the delivery workers look at
-- these only (a scan of every workspace every second would not do). Like
-- the registry of migration 0004, names only: every session may read it,
-- and insert its own workspace.
CREATE TABLE webhook_workspaces (
    workspace text COLLATE "C" NOT NULL CHECK (workspace <> '') PRIMARY KEY
);
ALTER TABLE webhook_workspaces ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_workspaces FORCE ROW LEVEL SECURITY;
CREATE POLICY webhook_workspace_list ON webhook_workspaces FOR SELECT USING (true);
CREATE POLICY webhook_workspace_register ON webhook_workspaces FOR INSERT
    WITH CHECK (workspace = current_setting('creditledger.workspace', true));

ALTER TABLE webhook_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_endpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON webhook_endpoints
    USING (workspace = current_setting('creditledger.workspace', true))
    WITH CHECK (workspace = current_setting('creditledger.workspace', true));
ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON webhook_deliveries
    USING (workspace = current_setting('creditledger.workspace', true))
    WITH CHECK (workspace = current_setting('creditledger.workspace', true));
