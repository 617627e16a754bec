from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from billing_common.db import (
    Connection,
    Pool,
    apply_migrations,
    create_pool,
    load_migrations,
    transaction,
)
from billing_common.ids import uuid7
from billing_common.outbox import OutboxWriter
from billing_common.runtime import ServiceContext
from billing_local.stack import StackUrls
from billing_metering.store import UsageStore


@pytest.fixture(scope="session")
def chdb_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UsageStore]:
    """The one chdb store of this test process (chdb opens one data directory per process).
    Tests keep apart by tenant, as tenants do in production."""
    store = UsageStore.embedded(tmp_path_factory.mktemp("chdb"))
    store.migrate()
    try:
        yield store
    finally:
        store.close()


@dataclass
class Context:
    """A `ServiceContext` on a real schema: what the usage consumer and projections need."""

    pool: Pool
    outbox: OutboxWriter
    clock: Callable[[], datetime]

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[Connection]:
        async with transaction(self.pool) as conn:
            yield conn


NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
async def metering_pool(database_url: str, fresh_schema: str) -> AsyncIterator[Pool]:
    """A fresh schema migrated exactly as the service migrates its own."""
    pool = await create_pool(database_url, fresh_schema)
    try:
        common = load_migrations("billing_common")
        await apply_migrations(pool, fresh_schema, common, history_table="common_migrations")
        await apply_migrations(pool, fresh_schema, load_migrations("billing_metering"))
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def context(metering_pool: Pool) -> ServiceContext:
    return Context(metering_pool, OutboxWriter(source="metering", clock=lambda: NOW), lambda: NOW)


@pytest.fixture
async def redis(stack_urls: StackUrls) -> AsyncIterator[Redis]:
    client = Redis.from_url(stack_urls.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def key_prefix() -> str:
    """A Redis key prefix no other test uses."""
    return f"t_{uuid7().hex[-12:]}"
