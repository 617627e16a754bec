-- The invoicing schema: what invoicing learns from other services (customers, subscription
-- revisions, billing effects, period closes), and what it owns (invoices, their numbers,
-- credit notes). Amounts are pico-units in NUMERIC(39,0); whole invoices are JSON documents
-- (`codec`), with the columns lists and filters need beside them.

-- Customers as customers announced them: who is billed, in what, where, and how long a
-- draft stays editable. A late older snapshot never overwrites a newer one (updated_at).
CREATE TABLE customers (
    tenant_id                 TEXT NOT NULL,
    customer_id               TEXT NOT NULL,
    name                      TEXT NOT NULL,
    currency                  TEXT NOT NULL,
    timezone                  TEXT NOT NULL,
    invoice_grace_period_days INT NOT NULL DEFAULT 0,
    parent_id                 TEXT,
    bill_to_parent            BOOL NOT NULL DEFAULT false,
    country                   TEXT,
    region                    TEXT,
    tax_ids                   TEXT NOT NULL DEFAULT '[]',
    updated_at                TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, customer_id)
);

-- Every revision of every subscription (subscription_created/updated), so the revision
-- current at a period's close is known and whether it billed anything.
CREATE TABLE subscription_revisions (
    tenant_id            TEXT NOT NULL,
    subscription_id      TEXT NOT NULL,
    revision             INT NOT NULL CHECK (revision >= 1),
    customer_id          TEXT NOT NULL,
    status               TEXT NOT NULL,
    action               TEXT NOT NULL,
    changed_at           TIMESTAMPTZ NOT NULL,
    current_period_start TIMESTAMPTZ,
    current_period_end   TIMESTAMPTZ,
    bills                BOOL NOT NULL,
    PRIMARY KEY (tenant_id, subscription_id, revision)
);

-- Each billing effect (billing_effects_recorded), pending until an invoice claims it:
-- `invoice_id` is set once, in the transaction that puts it on that invoice.
CREATE TABLE billing_effects (
    tenant_id       TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    revision        INT NOT NULL,
    position        INT NOT NULL,
    customer_id     TEXT NOT NULL,
    reason          TEXT NOT NULL,
    plan_id         TEXT NOT NULL,
    plan_version    INT NOT NULL,
    base_fee_timing TEXT NOT NULL,
    amount          NUMERIC(39, 0) NOT NULL,
    currency        TEXT NOT NULL,
    service_start   TIMESTAMPTZ NOT NULL,
    service_end     TIMESTAMPTZ NOT NULL,
    invoice_id      TEXT,
    PRIMARY KEY (tenant_id, subscription_id, revision, position)
);

CREATE INDEX billing_effects_pending ON billing_effects (tenant_id, customer_id, invoice_id);

-- The revision the engine saw when each period closed (period_closing), by saga.
CREATE TABLE period_closings (
    saga_id               UUID PRIMARY KEY,
    tenant_id             TEXT NOT NULL,
    subscription_id       TEXT NOT NULL,
    subscription_revision INT NOT NULL
);

CREATE TABLE invoices (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    subscription_id TEXT,
    saga_id         UUID UNIQUE,
    status          TEXT NOT NULL,
    number          TEXT,
    currency        TEXT NOT NULL,
    period_start    TIMESTAMPTZ NOT NULL,
    period_end      TIMESTAMPTZ NOT NULL,
    total           NUMERIC(39, 0) NOT NULL,
    finalize_after  TIMESTAMPTZ,
    document        TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, number)
);

CREATE INDEX invoices_by_tenant ON invoices (tenant_id, id);
CREATE INDEX invoices_by_customer ON invoices (tenant_id, customer_id, id);
CREATE INDEX invoices_open_drafts ON invoices (tenant_id, customer_id, period_start, status);
CREATE INDEX invoices_due ON invoices (status, finalize_after);

-- Every period close an invoice bills (a parent's draft may bill its children's too):
-- the saga's key makes a redelivered period_rated find the invoice it already made.
CREATE TABLE invoice_sagas (
    saga_id         UUID PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    invoice_id      TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    customer_id     TEXT NOT NULL
);

CREATE INDEX invoice_sagas_by_invoice ON invoice_sagas (invoice_id);

-- numbering.py's rule: one counter per tenant and year, taken in the finalize transaction.
CREATE TABLE invoice_number_counters (
    tenant_id     TEXT NOT NULL,
    year          INT NOT NULL,
    last_sequence INT8 NOT NULL,
    PRIMARY KEY (tenant_id, year)
);

CREATE TABLE credit_notes (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    invoice_id  TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    document    TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX credit_notes_by_invoice ON credit_notes (tenant_id, invoice_id, id);
CREATE INDEX credit_notes_by_tenant ON credit_notes (tenant_id, id);
