-- The ledger service's own tables (the outbox and inbox come from billing-common).
-- Ids and amounts are u128: NUMERIC(39,0) holds every one exactly (CockroachDB DECIMAL).

-- The directory of ledger accounts: which tenant, currency, kind and customer each
-- account id belongs to. Both backends keep it (TigerBeetle cannot list a tenant's
-- accounts); with the in-process ledger it is also where accounts are rebuilt from.
CREATE TABLE accounts (
    id            NUMERIC(39, 0) PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    currency      TEXT NOT NULL,
    kind          TEXT NOT NULL,
    customer_id   TEXT,
    ledger        BIGINT NOT NULL,
    code          INT NOT NULL,
    flags         INT NOT NULL,
    user_data_128 NUMERIC(39, 0) NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX accounts_by_tenant ON accounts (tenant_id, id);
CREATE INDEX accounts_by_customer ON accounts (tenant_id, customer_id, id);

-- The journal of the in-process ledger: every chain of transfers it created, as
-- submitted, in the order it applied them (`seq` the chain, `position` within it).
-- Replaying it on an empty in-process ledger rebuilds every balance. Unused (empty)
-- when the service runs on TigerBeetle.
CREATE TABLE journal (
    id                NUMERIC(39, 0) PRIMARY KEY,
    seq               BIGINT NOT NULL,
    position          INT NOT NULL,
    debit_account_id  NUMERIC(39, 0) NOT NULL,
    credit_account_id NUMERIC(39, 0) NOT NULL,
    amount            NUMERIC(39, 0) NOT NULL,
    pending_id        NUMERIC(39, 0) NOT NULL,
    user_data_128     NUMERIC(39, 0) NOT NULL,
    user_data_64      NUMERIC(20, 0) NOT NULL,
    user_data_32      BIGINT NOT NULL,
    timeout           BIGINT NOT NULL,
    ledger            BIGINT NOT NULL,
    code              INT NOT NULL,
    flags             INT NOT NULL,
    UNIQUE (seq, position)
);

-- One row: the `seq` of the last chain the journal holds. Every write to the in-process
-- ledger locks it (SELECT ... FOR UPDATE) until its transaction ends, so writers of all
-- replicas take turns, and a writer whose memory is not at this seq rebuilds first.
CREATE TABLE journal_head (
    singleton BOOL PRIMARY KEY DEFAULT true CHECK (singleton),
    seq       BIGINT NOT NULL
);

INSERT INTO journal_head (singleton, seq) VALUES (true, 0);

-- What the ledger posted per invoice line, so a credit note reverses a line from the
-- account it went to, and a void reverses what no credit note took back yet.
CREATE TABLE invoices (
    tenant_id    TEXT NOT NULL,
    invoice_id   TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    currency     TEXT NOT NULL,
    total        NUMERIC(39, 0) NOT NULL,
    finalized_at TIMESTAMPTZ NOT NULL,
    voided_at    TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, invoice_id)
);

CREATE TABLE invoice_lines (
    tenant_id  TEXT NOT NULL,
    invoice_id TEXT NOT NULL,
    line_id    TEXT NOT NULL,
    position   INT NOT NULL,
    treatment  TEXT NOT NULL,
    amount     NUMERIC(39, 0) NOT NULL,
    tax        NUMERIC(39, 0) NOT NULL,
    PRIMARY KEY (tenant_id, invoice_id, line_id)
);

CREATE TABLE credited_lines (
    tenant_id      TEXT NOT NULL,
    credit_note_id TEXT NOT NULL,
    invoice_id     TEXT NOT NULL,
    line_id        TEXT NOT NULL,
    amount         NUMERIC(39, 0) NOT NULL,
    tax            NUMERIC(39, 0) NOT NULL,
    PRIMARY KEY (tenant_id, credit_note_id, line_id)
);

CREATE INDEX credited_lines_by_invoice ON credited_lines (tenant_id, invoice_id);
