-- Pay with Credit reserves the credits first (a hold), then captures
-- them. hold_id is the hold of the payment in progress; attempt counts
-- the payments begun, so that each gets its own ledger key (a hold that
-- expired or was voided ends its key for good). Invoices PAYING from
-- before are left to the one-step debit they started (method DEBIT).
ALTER TABLE invoices ADD COLUMN hold_id TEXT NOT NULL DEFAULT '';
ALTER TABLE invoices ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE invoices ADD COLUMN method TEXT NOT NULL DEFAULT 'HOLD' CHECK (method IN ('HOLD', 'DEBIT'));
UPDATE invoices SET method = 'DEBIT', attempt = 1 WHERE status = 'PAYING';
UPDATE invoices SET attempt = 1 WHERE status = 'PAID';
