-- Coupons: the ones pricing created (coupon_created), kept to check what a subscription
-- asks for, and the coupons each subscription carries.

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
    created_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, coupon_id)
);

-- The coupons of a subscription, in the order attached, as a JSON list of
-- {coupon_id, code, start_period}: `start_period` is the index of the subscription's
-- billing period the coupon starts at (0: its first).
ALTER TABLE subscriptions ADD COLUMN coupons TEXT NOT NULL DEFAULT '[]';
