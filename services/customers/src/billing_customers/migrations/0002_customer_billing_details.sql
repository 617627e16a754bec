-- Billing details and the one-level parent/child hierarchy (see domain.py).
-- JSON is stored as TEXT, as metadata is. The hierarchy rules (same tenant, same
-- currency, one level, no cycle, bill_to_parent only with a parent) are checked by the
-- service under row locks (see service.py).
-- Each new column is added on its own with at most a check on itself: CockroachDB
-- cannot reference a column added in the same transaction from a table constraint,
-- nor backfill it with an UPDATE. So updated_at stays nullable, and rows created
-- before this migration read it as their created_at.
ALTER TABLE customers ADD COLUMN billing_address TEXT;
ALTER TABLE customers ADD COLUMN tax_ids TEXT NOT NULL DEFAULT '[]';
ALTER TABLE customers ADD COLUMN invoice_grace_period_days INT NOT NULL DEFAULT 0
    CHECK (invoice_grace_period_days BETWEEN 0 AND 30);
ALTER TABLE customers ADD COLUMN parent_id TEXT;
ALTER TABLE customers ADD COLUMN bill_to_parent BOOL NOT NULL DEFAULT false;
ALTER TABLE customers ADD COLUMN updated_at TIMESTAMPTZ;

CREATE INDEX customers_by_parent ON customers (tenant_id, parent_id, id);
