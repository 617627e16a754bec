-- Append-only: rows are inserted by the consumer and never updated or deleted.
CREATE TABLE audit_events (
    id          TEXT PRIMARY KEY,
    event_id    UUID NOT NULL UNIQUE,
    tenant_id   TEXT NOT NULL,
    type        TEXT NOT NULL,
    source      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    data        TEXT NOT NULL
);

CREATE INDEX audit_events_by_subject ON audit_events (tenant_id, subject, id);
