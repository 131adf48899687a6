-- CreditLedger PostgreSQL schema, version 4: row-level security.
--
-- Every tenant table (every table of this schema with a workspace column,
-- whatever migration created it) gets ENABLE and FORCE ROW LEVEL SECURITY
-- and one policy: a row is visible, and may be written, only when its
-- workspace is the transaction's creditledger.workspace setting. The store
-- sets it with set_config('creditledger.workspace', $1, true) inside every
-- transaction (transaction-local: nothing survives in the session, so it
-- works behind a transaction-pooling proxy). Without the setting a session
-- sees no row of any tenant and can write none.
--
-- The service connects as a runtime role that `ledgerd migrate` creates and
-- grants (cmd/ledgerd, postgres.MigrateRole): it owns nothing, so it can
-- neither alter these tables nor drop or disable their triggers, and it has
-- no BYPASSRLS. FORCE makes the owner subject to the policies too: a later
-- migration that rewrites tenant rows as a non-superuser owner must set the
-- workspace, or turn FORCE off and on again around its statements.
--
-- The integrity triggers read other rows of the table they guard (the
-- predecessor entry, the account, the paying entry). They run as the
-- invoker, under these policies, and read only rows of the workspace being
-- written: a batch never mixes workspaces, and WITH CHECK refuses a row of
-- another workspace before they run. Foreign-key and unique checks are
-- made by the server without row security.

-- The workspace registry: operator tasks that span every workspace (verify,
-- the pending-requests gauge) list workspaces here, then read each one with
-- its own setting. A SECURITY DEFINER function returning
-- "SELECT DISTINCT workspace FROM …" cannot serve: FORCE subjects the owner
-- to the policies as well, and only a superuser or a BYPASSRLS role (which
-- a managed database's owner usually cannot create) would see past them.
-- So the registry is a table of names only, which every session may read
-- (the service knows every workspace anyway) and into which a session may
-- insert only its own workspace. The write path registers the batch's
-- workspace as the first write of every batch that writes (batch.go), so
-- that the registry row is one more lock in the global order, taken before
-- any other write; a trigger on the tenant tables would take it in the
-- middle of a batch's writes instead, where two first batches of a new
-- workspace could deadlock on it.
CREATE TABLE ledger_workspaces (
    workspace text COLLATE "C" NOT NULL CHECK (workspace <> '') PRIMARY KEY
);

DO $$
DECLARE
    t text;
BEGIN
    FOR t IN
        SELECT c.relname FROM pg_class c
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'workspace' AND NOT a.attisdropped
        WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
          AND c.relname <> 'ledger_workspaces'
        ORDER BY c.relname
    LOOP
        EXECUTE format('INSERT INTO ledger_workspaces (workspace) SELECT DISTINCT workspace FROM %I '
                       'ON CONFLICT DO NOTHING', t);
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY workspace_isolation ON %I '
                       'USING (workspace = current_setting(''creditledger.workspace'', true)) '
                       'WITH CHECK (workspace = current_setting(''creditledger.workspace'', true))', t);
    END LOOP;
END;
$$;

ALTER TABLE ledger_workspaces ENABLE ROW LEVEL SECURITY;
ALTER TABLE ledger_workspaces FORCE ROW LEVEL SECURITY;
CREATE POLICY workspace_list ON ledger_workspaces FOR SELECT USING (true);
CREATE POLICY workspace_register ON ledger_workspaces FOR INSERT
    WITH CHECK (workspace = current_setting('creditledger.workspace', true));
