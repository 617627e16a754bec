-- The subscriptions schema: what subscriptions learn from pricing and customers (the
-- projections `plan_versions` and `customers`), the tenants' policies, and the
-- subscriptions themselves. Amounts are pico-units in NUMERIC(39,0).

-- Every published plan version, as pricing announced it. Versions never change once
-- published, so a redelivery or a late older version is simply kept beside the newer
-- ones; "the latest version" is the highest one known.
CREATE TABLE plan_versions (
    tenant_id       TEXT NOT NULL,
    plan_id         TEXT NOT NULL,
    version         INT NOT NULL CHECK (version >= 1),
    code            TEXT NOT NULL,
    currency        TEXT NOT NULL,
    billing_interval TEXT NOT NULL,
    base_fee        NUMERIC(39, 0) NOT NULL CHECK (base_fee >= 0),
    base_fee_timing TEXT NOT NULL,
    trial_days      INT NOT NULL CHECK (trial_days >= 0),
    -- charge key -> per-unit price in pico-units (JSON), for the `any_price_increase` rule
    usage_prices    TEXT NOT NULL DEFAULT '{}',
    published_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, plan_id, version)
);

-- The customers of each tenant: where their billing days begin and what they pay in.
CREATE TABLE customers (
    tenant_id   TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    currency    TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, customer_id)
);

-- A tenant's `SubscriptionPolicy` as JSON; a tenant without a row has the defaults.
CREATE TABLE subscription_policies (
    tenant_id  TEXT PRIMARY KEY,
    policy     TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- One row per subscription: the whole state of `domain.Subscription`, plus which plan
-- versions it is on and is scheduled to move to. `revision` counts the changes (1 at
-- creation); every event about the subscription carries it.
CREATE TABLE subscriptions (
    id                     TEXT PRIMARY KEY,
    tenant_id              TEXT NOT NULL,
    customer_id            TEXT NOT NULL,
    external_id            TEXT,
    status                 TEXT NOT NULL,
    currency               TEXT NOT NULL,
    plan_id                TEXT NOT NULL,
    plan_version           INT NOT NULL,
    billing_interval       TEXT NOT NULL,
    billing_anchor         TEXT NOT NULL,
    timezone               TEXT NOT NULL,
    starts_at              TIMESTAMPTZ NOT NULL,
    ends_at                TIMESTAMPTZ,
    period_start           TIMESTAMPTZ,
    period_end             TIMESTAMPTZ,
    period_nominal_start   TIMESTAMPTZ,
    period_nominal_end     TIMESTAMPTZ,
    period_fee             NUMERIC(39, 0),
    trial_end              TIMESTAMPTZ,
    cancel_at_period_end   BOOL NOT NULL DEFAULT false,
    scheduled_plan_id      TEXT,
    scheduled_plan_version INT,
    paused_at              TIMESTAMPTZ,
    canceled_at            TIMESTAMPTZ,
    ended_at               TIMESTAMPTZ,
    revision               INT NOT NULL,
    created_at             TIMESTAMPTZ NOT NULL,
    updated_at             TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, external_id)
);

CREATE INDEX subscriptions_by_tenant ON subscriptions (tenant_id, id);
CREATE INDEX subscriptions_by_customer ON subscriptions (tenant_id, customer_id, id);
CREATE INDEX subscriptions_by_status ON subscriptions (tenant_id, status, id);
