-- 5: a card purchase gets its payment page at the provider (a Stripe
-- Checkout Session): where the buyer pays, the provider's reference of
-- it, where the buyer comes back to, and the attempt whose idempotency key
-- the next request to the provider carries.
ALTER TABLE purchases ADD COLUMN checkout_url TEXT NOT NULL DEFAULT '';
ALTER TABLE purchases ADD COLUMN provider_checkout TEXT NOT NULL DEFAULT '';
ALTER TABLE purchases ADD COLUMN success_url TEXT NOT NULL DEFAULT '';
ALTER TABLE purchases ADD COLUMN cancel_url TEXT NOT NULL DEFAULT '';
ALTER TABLE purchases ADD COLUMN payment_attempt INTEGER NOT NULL DEFAULT 1 CHECK (payment_attempt >= 1);
