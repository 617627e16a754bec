-- API keys (ARCHITECTURE.md §6): only the SHA-256 of a key is stored; the key
-- itself is shown once, when it is created. `key_prefix` (e.g. "sk_test_AbCd")
-- lets a person recognise a key without revealing it.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    key_prefix  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);

CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, id);
