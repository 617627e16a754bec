-- Meter definitions: one row per (tenant, key); `definition` is the MeterDefinition
-- as JSON. `revision` rises on every change of any meter, so the usage consumer
-- learns with one cheap query per batch whether its cached meters are stale.
CREATE SEQUENCE meter_revisions;

CREATE TABLE meters (
    tenant_id   TEXT NOT NULL,
    key         TEXT NOT NULL,
    definition  JSONB NOT NULL,
    version     INT NOT NULL,
    archived_at TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    revision    BIGINT NOT NULL DEFAULT nextval('meter_revisions'),
    PRIMARY KEY (tenant_id, key)
);

-- Which published plan versions charge on a meter (from billing.pricing.plan_published):
-- a meter in use cannot be deleted.
CREATE TABLE meter_references (
    tenant_id  TEXT NOT NULL,
    meter_key  TEXT NOT NULL,
    plan_id    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, meter_key, plan_id)
);

-- The customers this tenant has (from billing.customers.customer_created): usage
-- events name a customer by our id or by its external id.
CREATE TABLE customers (
    tenant_id   TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    external_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, customer_id)
);

-- Not unique: an external id that moves from one customer to another may be seen on the
-- new one before it is gone from the old (their events travel on different partitions).
CREATE INDEX customers_by_external_id ON customers (tenant_id, external_id);

-- Valid events whose customer is not known yet: kept, never dropped, and released
-- into the usage stream when the customer appears.
CREATE TABLE parked_events (
    tenant_id    TEXT NOT NULL,
    customer_ref TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    event        TEXT NOT NULL,  -- the event as exact JSON (numbers never pass a float)
    parked_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, customer_ref, event_id)
);

-- Per consumer group and partition, the highest offset whose effects in this
-- database (usage_recorded events, parked events) are committed: a redelivered
-- batch skips what it finds at or below it.
CREATE TABLE consumer_offsets (
    consumer        TEXT NOT NULL,
    topic           TEXT NOT NULL,
    kafka_partition INT NOT NULL,
    last_offset     BIGINT NOT NULL,
    PRIMARY KEY (consumer, topic, kafka_partition)
);
