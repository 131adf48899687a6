-- Version 3: idempotency keys scoped to their account (or request), who
-- submitted a request, and the agency's four-eyes setting.

-- Who submitted a request: the authenticated subject, never the body.
ALTER TABLE credit_requests ADD COLUMN submitted_by TEXT NOT NULL DEFAULT '';

CREATE TRIGGER credit_requests_submitter_fixed BEFORE UPDATE ON credit_requests
WHEN NEW.submitted_by IS NOT OLD.submitted_by
BEGIN
    SELECT RAISE(ABORT, 'credit_requests: the submitter of a request never changes');
END;

-- With it on, the submitter of a request cannot decide it.
ALTER TABLE settings ADD COLUMN require_distinct_approver INTEGER NOT NULL DEFAULT 0
    CHECK (require_distinct_approver IN (0, 1));

-- Keys were one namespace per workspace; they are now remembered under
-- their scope (see ledger.PostKey, SubmitKey, DecideKey). The records are
-- immutable, so the table is rebuilt with every key rewritten: a retry
-- after the upgrade still replays.
CREATE TABLE idempotency_keys_scoped (
    workspace      TEXT    NOT NULL,
    key            TEXT    NOT NULL CHECK (key <> ''),
    operation      TEXT    NOT NULL CHECK (operation IN ('credit', 'debit', 'submit_request', 'decide_request')),
    fingerprint    BLOB    NOT NULL,
    transaction_id TEXT,
    request_id     TEXT,
    create_time    INTEGER NOT NULL,
    PRIMARY KEY (workspace, key),
    FOREIGN KEY (workspace, transaction_id) REFERENCES transactions (workspace, id),
    FOREIGN KEY (workspace, request_id) REFERENCES credit_requests (workspace, id)
) STRICT, WITHOUT ROWID;

INSERT INTO idempotency_keys_scoped (workspace, key, operation, fingerprint, transaction_id, request_id, create_time)
SELECT k.workspace,
       CASE k.operation
           WHEN 'decide_request' THEN 'd:' || k.request_id || ':' || k.key
           WHEN 'submit_request' THEN 's:' || (SELECT r.account FROM credit_requests r
                                               WHERE r.workspace = k.workspace AND r.id = k.request_id) || ':' || k.key
           ELSE 'a:' || (SELECT t.account FROM transactions t
                         WHERE t.workspace = k.workspace AND t.id = k.transaction_id) || ':' || k.key
       END,
       k.operation, k.fingerprint, k.transaction_id, k.request_id, k.create_time
FROM idempotency_keys k;

DROP TABLE idempotency_keys;
ALTER TABLE idempotency_keys_scoped RENAME TO idempotency_keys;

-- A key remembers a posted outcome for as long as the outcome exists: forever.
CREATE TRIGGER idempotency_keys_no_update BEFORE UPDATE ON idempotency_keys
BEGIN
    SELECT RAISE(ABORT, 'idempotency_keys: records are immutable');
END;

CREATE TRIGGER idempotency_keys_no_delete BEFORE DELETE ON idempotency_keys
BEGIN
    SELECT RAISE(ABORT, 'idempotency_keys: records are immutable');
END;
