CREATE TABLE customers (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    external_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    email       TEXT,
    currency    TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    metadata    TEXT NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, external_id)
);

CREATE INDEX customers_by_tenant ON customers (tenant_id, id);
