-- Coupons on period invoices: the coupons pricing created (coupon_created), the coupons
-- each subscription revision carried (subscription_created/updated), and where each
-- invoiced period stands in its subscription (its index counts the periods before it).

-- A coupon as pricing announced it (coupons never change once created). `amount_off` is
-- pico-units in `currency`; `plan_ids` a JSON list, empty when it applies to any plan.
CREATE TABLE coupons (
    tenant_id        TEXT NOT NULL,
    coupon_id        TEXT NOT NULL,
    code             TEXT NOT NULL,
    percent_off      TEXT,
    amount_off       NUMERIC(39, 0),
    currency         TEXT,
    duration         TEXT NOT NULL,
    duration_periods INT,
    plan_ids         TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (tenant_id, coupon_id)
);

-- The coupons of the subscription at each revision: a JSON list of
-- {coupon_id, start_period}, in the order attached.
ALTER TABLE subscription_revisions ADD COLUMN coupons TEXT NOT NULL DEFAULT '[]';

-- The start of the period each saga billed, to count a subscription's periods invoiced
-- before another (NULL for sagas billed before this migration: they count as earlier).
ALTER TABLE invoice_sagas ADD COLUMN period_start TIMESTAMPTZ;

CREATE INDEX invoice_sagas_by_subscription ON invoice_sagas (tenant_id, subscription_id);
