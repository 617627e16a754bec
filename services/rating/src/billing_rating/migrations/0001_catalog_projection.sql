-- What rating knows of the catalog: its own projection of the pricing topics
-- (event-carried state transfer; rating never calls pricing). Amounts stay inside
-- the JSON in the wire form (pico-units as integer strings): never a float.

-- One row per published plan version (billing.pricing.plan_published); `body` is the
-- event's data (PlanPublished) as JSON. A version never changes once published, so a
-- redelivered or late one adds nothing, and an older version never hides a newer one.
CREATE TABLE plan_versions (
    tenant_id    TEXT NOT NULL,
    plan_id      TEXT NOT NULL,
    version      INT NOT NULL,
    currency     TEXT NOT NULL,
    body         TEXT NOT NULL,
    published_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, plan_id, version)
);

-- A customer's own price for one charge of a plan, of any version that has the charge
-- (billing.pricing.price_override_set). A later `set_at` replaces an earlier one; an
-- earlier one arriving late changes nothing. `price` is a WirePrice as JSON.
CREATE TABLE price_overrides (
    tenant_id   TEXT NOT NULL,
    plan_id     TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    charge_key  TEXT NOT NULL,
    override_id TEXT NOT NULL,
    meter_key   TEXT NOT NULL,
    currency    TEXT NOT NULL,
    price       TEXT NOT NULL,
    set_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, plan_id, customer_id, charge_key)
);
