-- Version 6: agency controls. The payment methods a workspace offers, its
-- low-balance threshold, and credit requests that their client cancels.

-- ---------------------------------------------------------------------------
-- Settings.
--
-- payment_methods: the methods the workspace offers, as ledger.PaymentMethod
-- names in their order, each once; NULL while the agency never chose (every
-- method is offered), '{}' when it offers none. low_balance_threshold: the
-- balance below which an account is low, 0 for off, at most the largest
-- balance (10^15).

ALTER TABLE settings
    ADD COLUMN payment_methods text[]
        CHECK (payment_methods <@ ARRAY['BANK_TRANSFER', 'CRYPTO', 'STRIPE', 'PAYPAL']::text[]
               AND cardinality(payment_methods) <= 4
               AND array_position(payment_methods, NULL) IS NULL),
    ADD COLUMN low_balance_threshold bigint NOT NULL DEFAULT 0
        CHECK (low_balance_threshold BETWEEN 0 AND 1000000000000000);

-- ---------------------------------------------------------------------------
-- Credit requests: CANCELLED, a way out of PENDING beside ACCEPTED and
-- REJECTED, once, with nothing posted (no transaction) and a decide time,
-- like a rejection.

ALTER TABLE credit_requests DROP CONSTRAINT credit_requests_status_check;
ALTER TABLE credit_requests ADD CONSTRAINT credit_requests_status_check
    CHECK (status IN ('PENDING', 'ACCEPTED', 'REJECTED', 'CANCELLED'));

-- As in version 2, with CANCELLED among the final states.
CREATE OR REPLACE FUNCTION credit_requests_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'PENDING' THEN
            RAISE EXCEPTION 'credit_requests: a new request must be PENDING' USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF OLD.status <> 'PENDING' OR NEW.status NOT IN ('ACCEPTED', 'REJECTED', 'CANCELLED')
       OR (NEW.workspace, NEW.id, NEW.account, NEW.amount, NEW.payment_method, NEW.payment_reference,
           NEW.note, NEW.idempotency_key, NEW.create_time, NEW.seq)
          IS DISTINCT FROM
          (OLD.workspace, OLD.id, OLD.account, OLD.amount, OLD.payment_method, OLD.payment_reference,
           OLD.note, OLD.idempotency_key, OLD.create_time, OLD.seq)
       OR NEW.package_id IS DISTINCT FROM OLD.package_id
       OR NEW.metadata IS DISTINCT FROM OLD.metadata THEN
        RAISE EXCEPTION 'credit_requests: only a PENDING request can be decided, once'
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status = 'ACCEPTED' THEN
        PERFORM 1 FROM transactions t
        WHERE t.workspace = NEW.workspace AND t.id = NEW.transaction_id AND t.request_id = NEW.id
          AND t.account = NEW.account AND t.amount = NEW.amount AND t.type = 'IN' AND t.kind = 'REQUEST_APPROVED';
        IF NOT FOUND THEN
            RAISE EXCEPTION 'credit_requests: an accepted request needs its REQUEST_APPROVED entry'
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

-- ---------------------------------------------------------------------------
-- Idempotency records: cancel_request names its request (and no entry),
-- as version 5's check has it for the other operations.

ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_outcome;
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_outcome CHECK (
    (operation = 'decide_request'
     OR (transaction_id IS NOT NULL) = (operation IN ('credit', 'debit', 'capture_hold', 'reverse')))
    AND (request_id IS NOT NULL) = (operation IN ('submit_request', 'decide_request', 'cancel_request'))
    AND (hold_id IS NOT NULL) = (operation IN ('create_hold', 'capture_hold', 'void_hold'))
    AND (transaction_id IS NOT NULL OR request_id IS NOT NULL OR hold_id IS NOT NULL));
