-- The engine schema: test clocks and the customers attached to them, what the engine
-- learns from customers and subscriptions (projections), and the period closes it starts
-- (one saga row per subscription period, one trial-end row per trial).

CREATE TABLE test_clocks (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    name        TEXT,
    frozen_time TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX test_clocks_by_tenant ON test_clocks (tenant_id, id);

-- A customer follows at most one test clock, from its attachment on, for good.
CREATE TABLE test_clock_customers (
    tenant_id     TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    test_clock_id TEXT NOT NULL REFERENCES test_clocks (id),
    attached_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, customer_id)
);

CREATE INDEX test_clock_customers_by_clock ON test_clock_customers (test_clock_id);

-- The customers the engine knows (from billing.customers.customer_created).
CREATE TABLE customers (
    tenant_id   TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, customer_id)
);

-- The latest revision of every subscription, as subscriptions announced it.
CREATE TABLE subscriptions (
    subscription_id      TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL,
    customer_id          TEXT NOT NULL,
    revision             INT NOT NULL,
    status               TEXT NOT NULL,
    currency             TEXT NOT NULL,
    plan_id              TEXT NOT NULL,
    plan_version         INT NOT NULL,
    current_period_start TIMESTAMPTZ,
    current_period_end   TIMESTAMPTZ,
    trial_end            TIMESTAMPTZ
);

CREATE INDEX subscriptions_by_customer ON subscriptions (tenant_id, customer_id);
CREATE INDEX subscriptions_by_period_end ON subscriptions (current_period_end);
CREATE INDEX subscriptions_by_trial_end ON subscriptions (trial_end);

-- One row per period close (saga). The UNIQUE (subscription, period start) and the
-- deterministic saga id make a period start once, whatever the engine replays.
-- `payload` is the PERIOD_CLOSING data, re-emitted as is on a retry.
CREATE TABLE sagas (
    saga_id         UUID PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    test_clock_id   TEXT,
    period_start    TIMESTAMPTZ NOT NULL,
    period_end      TIMESTAMPTZ NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
    attempts        INT NOT NULL CHECK (attempts >= 1),
    payload         TEXT NOT NULL,
    started_at      TIMESTAMPTZ NOT NULL,
    last_emitted_at TIMESTAMPTZ NOT NULL,
    completed_at    TIMESTAMPTZ,
    invoice_id      TEXT,
    UNIQUE (subscription_id, period_start)
);

CREATE INDEX sagas_pending ON sagas (last_emitted_at) WHERE status = 'pending';
CREATE INDEX sagas_by_clock ON sagas (test_clock_id, status);
CREATE INDEX sagas_by_tenant ON sagas (tenant_id, period_end, saga_id);

-- One row per trial end the engine asked subscriptions for.
CREATE TABLE trial_ends (
    subscription_id TEXT NOT NULL,
    trial_end       TIMESTAMPTZ NOT NULL,
    tenant_id       TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    test_clock_id   TEXT,
    requested_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (subscription_id, trial_end)
);
