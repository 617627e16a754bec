-- The catalog. Amounts live inside the JSON bodies in the wire form (pico-units as
-- integer strings), so no amount is ever stored as a float.

CREATE TABLE products (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT,
    metadata    TEXT NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX products_by_tenant ON products (tenant_id, id);

CREATE TABLE plans (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    code           TEXT NOT NULL,
    latest_version INT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, code)
);
CREATE INDEX plans_by_tenant ON plans (tenant_id, id);

-- One row per published version; `body` is the whole version (PlanBody[MoneyWire]) as JSON.
CREATE TABLE plan_versions (
    plan_id      TEXT NOT NULL REFERENCES plans (id),
    version      INT NOT NULL,
    tenant_id    TEXT NOT NULL,
    body         TEXT NOT NULL,
    published_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (plan_id, version)
);

CREATE TABLE plan_migrations (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    plan_id      TEXT NOT NULL REFERENCES plans (id),
    from_version INT NOT NULL,
    to_version   INT NOT NULL,
    effective_at TIMESTAMPTZ NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX plan_migrations_by_plan ON plan_migrations (tenant_id, plan_id, id);

-- One customer's price for one charge of a plan; setting it again replaces it.
CREATE TABLE price_overrides (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    plan_id     TEXT NOT NULL REFERENCES plans (id),
    customer_id TEXT NOT NULL,
    charge_key  TEXT NOT NULL,
    meter_key   TEXT NOT NULL,
    currency    TEXT NOT NULL,
    price       TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, plan_id, customer_id, charge_key)
);
CREATE INDEX price_overrides_by_plan ON price_overrides (tenant_id, plan_id, id);

CREATE TABLE coupons (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    code       TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, code)
);
CREATE INDEX coupons_by_tenant ON coupons (tenant_id, id);

-- The meters metering announced (projection of billing.metering.meter_*): a later
-- version replaces an earlier one; an older one arriving late changes nothing.
CREATE TABLE meters (
    tenant_id  TEXT NOT NULL,
    meter_key  TEXT NOT NULL,
    version    INT NOT NULL,
    archived   BOOLEAN NOT NULL,
    definition TEXT NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, meter_key)
);
