-- The plumbing every service has in its own schema: the transactional outbox and
-- the consumer inbox (ARCHITECTURE.md §2). CockroachDB-compatible: BIGSERIAL maps
-- to unique_rowid() there, partial indexes are supported.

CREATE TABLE outbox (
    seq          BIGSERIAL PRIMARY KEY,
    event_id     UUID NOT NULL UNIQUE,
    topic        TEXT NOT NULL,
    key          TEXT NOT NULL,
    payload      BYTEA NOT NULL,
    headers      TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at TIMESTAMPTZ
);

CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;

-- One row per event a consumer group applied; written in the same transaction as
-- the effect, so a redelivered event finds its row and changes nothing.
CREATE TABLE inbox (
    consumer     TEXT NOT NULL,
    event_id     UUID NOT NULL,
    topic        TEXT NOT NULL,
    kafka_partition INT NOT NULL,
    kafka_offset BIGINT NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
