-- Version 3: idempotency keys scoped to their account (or request), who
-- submitted a request, and the agency's four-eyes setting.

-- Who submitted a request: the authenticated subject, never the body.
ALTER TABLE credit_requests ADD COLUMN submitted_by text NOT NULL DEFAULT '';

CREATE FUNCTION credit_requests_submitter_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'credit_requests: the submitter of a request never changes' USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER credit_requests_submitter_fixed BEFORE UPDATE ON credit_requests
    FOR EACH ROW WHEN (NEW.submitted_by IS DISTINCT FROM OLD.submitted_by)
    EXECUTE FUNCTION credit_requests_submitter_fixed();

-- With it on, the submitter of a request cannot decide it.
ALTER TABLE settings ADD COLUMN require_distinct_approver boolean NOT NULL DEFAULT false;

-- Keys were one namespace per workspace; they are now remembered under
-- their scope (see ledger.PostKey, SubmitKey, DecideKey): "a:<account>:",
-- "s:<account>:" or "d:<request>:" before the caller's key. Existing
-- records are rewritten in place so that a retry after the upgrade still
-- replays. The primary key is rebuilt around the rewrite: checked row by
-- row, it could trip over an old key that already looked scoped.
ALTER TABLE idempotency_keys DISABLE TRIGGER idempotency_keys_immutable;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
UPDATE idempotency_keys k SET key = 'a:' || t.account || ':' || k.key
    FROM transactions t
    WHERE k.operation IN ('credit', 'debit') AND t.workspace = k.workspace AND t.id = k.transaction_id;
UPDATE idempotency_keys k SET key = 's:' || r.account || ':' || k.key
    FROM credit_requests r
    WHERE k.operation = 'submit_request' AND r.workspace = k.workspace AND r.id = k.request_id;
UPDATE idempotency_keys SET key = 'd:' || request_id || ':' || key WHERE operation = 'decide_request';
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_pkey PRIMARY KEY (workspace, key);
ALTER TABLE idempotency_keys ENABLE TRIGGER idempotency_keys_immutable;
