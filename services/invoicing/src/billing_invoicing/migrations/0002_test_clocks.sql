-- The test clocks invoicing follows (the engine's test_clock_customer_attached and
-- test_clock_advanced): the drafts of a customer attached to one are made and finalized
-- on the clock's time, and only when the clock advances, never by the real-clock loop.

-- The latest frozen time known of each clock. An advance is keyed by the clock and an
-- attachment by the customer, so they may arrive in any order: the latest time wins.
CREATE TABLE test_clocks (
    tenant_id     TEXT NOT NULL,
    test_clock_id TEXT NOT NULL,
    frozen_time   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, test_clock_id)
);

-- A customer follows at most one test clock, from its attachment on, for good.
CREATE TABLE test_clock_customers (
    tenant_id     TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    test_clock_id TEXT NOT NULL,
    attached_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, customer_id)
);

CREATE INDEX test_clock_customers_by_clock ON test_clock_customers (tenant_id, test_clock_id);
