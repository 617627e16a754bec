from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from starlette.applications import Starlette

from billing_common.config import ServiceSettings
from billing_common.db import Pool, apply_migrations, create_pool, load_migrations
from billing_common.http import TENANT_HEADER, exception_handlers
from billing_common.runtime import ServiceRuntime
from billing_customers import api
from billing_customers.app import definition

NOW = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
async def customers_pool(database_url: str, fresh_schema: str) -> AsyncIterator[Pool]:
    """A fresh schema migrated exactly as the service migrates its own."""
    pool = await create_pool(database_url, fresh_schema)
    try:
        common = load_migrations("billing_common")
        await apply_migrations(pool, fresh_schema, common, history_table="common_migrations")
        await apply_migrations(pool, fresh_schema, load_migrations("billing_customers"))
        yield pool
    finally:
        await pool.close()


class DatabaseOnlyRuntime(ServiceRuntime):
    """The runtime with only its database open: what the routes use, without a broker."""

    def __init__(self, pool: Pool) -> None:
        super().__init__(definition, ServiceSettings(), clock=lambda: NOW)
        self._pool = pool
        self.health_state.ready = True


@pytest.fixture
async def client(customers_pool: Pool) -> AsyncIterator[httpx.AsyncClient]:
    """The service's routes over HTTP, as the gateway calls them (tenant `ten_1`)."""
    runtime = DatabaseOnlyRuntime(customers_pool)
    app = Starlette(routes=list(api.routes(runtime)), exception_handlers=exception_handlers())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://customers", headers={TENANT_HEADER: "ten_1"}
    ) as http:
        yield http
