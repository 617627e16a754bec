"""All SQL of the gateway schema: API keys."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from billing_common.db import Connection, Pool
from billing_common.errors import ServiceUnavailable
from billing_gateway.auth import ApiKeyRecord


def _to_record(row: asyncpg.Record) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        key_hash=row["key_hash"],
        key_prefix=row["key_prefix"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


async def find_by_hash(conn: Connection | Pool, key_hash: str) -> ApiKeyRecord | None:
    row = await conn.fetchrow("SELECT * FROM api_keys WHERE key_hash = $1", key_hash)
    return None if row is None else _to_record(row)


async def insert(conn: Connection | Pool, record: ApiKeyRecord) -> bool:
    """Insert `record`; False when a key with the same hash exists already (nothing written)."""
    status: str = await conn.execute(
        "INSERT INTO api_keys (id, tenant_id, name, key_hash, key_prefix, created_at, revoked_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key_hash) DO NOTHING",
        record.id,
        record.tenant_id,
        record.name,
        record.key_hash,
        record.key_prefix,
        record.created_at,
        record.revoked_at,
    )
    return status.endswith(" 1")


class PostgresApiKeyStore:
    """`auth.ApiKeyStore` on the service's pool; the pool is asked for at each lookup,
    so a gateway still starting answers 503 instead of failing."""

    def __init__(self, pool: Callable[[], Pool]) -> None:
        self._pool = pool

    async def find(self, key_hash: str) -> ApiKeyRecord | None:
        try:
            return await find_by_hash(self._pool(), key_hash)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise ServiceUnavailable("the API key store is unreachable; retry shortly") from exc
