from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
import pytest

from billing_common.db import apply_migrations, create_pool, load_migrations
from billing_common.errors import ServiceUnavailable
from billing_common.ids import TenantId
from billing_gateway import repository
from billing_gateway.auth import api_key_record, generate_api_key, hash_api_key
from billing_gateway.repository import PostgresApiKeyStore

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.service


@pytest.fixture
async def pool(database_url: str, fresh_schema: str) -> AsyncIterator[asyncpg.Pool]:
    pool: asyncpg.Pool = await create_pool(database_url, fresh_schema)
    try:
        await apply_migrations(pool, fresh_schema, load_migrations("billing_gateway"))
        yield pool
    finally:
        await pool.close()


class TestApiKeys:
    async def test_a_key_is_found_by_its_hash(self, pool: asyncpg.Pool) -> None:
        key = generate_api_key()
        record = api_key_record(key, tenant_id=TenantId.new(), name="ci", created_at=NOW)
        assert await repository.insert(pool, record) is True
        assert await repository.find_by_hash(pool, hash_api_key(key)) == record
        assert await repository.find_by_hash(pool, hash_api_key(generate_api_key())) is None

    async def test_a_hash_is_stored_once(self, pool: asyncpg.Pool) -> None:
        record = api_key_record(
            generate_api_key(), tenant_id=TenantId.new(), name="ci", created_at=NOW
        )
        assert await repository.insert(pool, record) is True
        again = replace(record, id=api_key_record("x", tenant_id="t", name="n", created_at=NOW).id)
        assert await repository.insert(pool, again) is False

    async def test_the_store_reads_through_the_current_pool(self, pool: asyncpg.Pool) -> None:
        key = generate_api_key()
        record = api_key_record(key, tenant_id=TenantId.new(), name="ci", created_at=NOW)
        await repository.insert(pool, record)
        store = PostgresApiKeyStore(lambda: pool)
        assert await store.find(hash_api_key(key)) == record

    async def test_the_store_is_503_when_the_database_is_gone(
        self, database_url: str, fresh_schema: str
    ) -> None:
        closed: asyncpg.Pool = await create_pool(database_url, fresh_schema)
        await closed.close()
        with pytest.raises(ServiceUnavailable):
            await PostgresApiKeyStore(lambda: closed).find("0" * 64)
