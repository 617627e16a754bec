from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from starlette.applications import Starlette

from billing_common.config import ServiceSettings
from billing_common.db import Pool, apply_migrations, create_pool, load_migrations, transaction
from billing_common.http import TENANT_HEADER, exception_handlers
from billing_common.outbox import OutboxWriter
from billing_common.runtime import ServiceRuntime
from billing_metering.meters import MeterDefinition
from billing_pricing import api, repository
from billing_pricing.app import definition

NOW = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
OUTBOX = OutboxWriter(source="pricing", clock=lambda: NOW)
TENANT = "ten_1"

#: The meters the tests' plans use: `old` is archived.
METERS = (
    MeterDefinition(
        key="api_calls",
        name="API calls",
        event_types=("api_call",),
        aggregation="count",
        group_by=("region", "size"),
    ),
    MeterDefinition(
        key="revenue",
        name="Revenue",
        event_types=("payment",),
        aggregation="sum",
        value_property="amount",
    ),
    MeterDefinition(
        key="peak_cpu", name="Peak CPU", event_types=("cpu",), aggregation="max", value_property="n"
    ),
    MeterDefinition(key="old", name="Old", event_types=("old",), aggregation="count"),
)


@pytest.fixture
async def pricing_pool(database_url: str, fresh_schema: str) -> AsyncIterator[Pool]:
    """A fresh schema migrated exactly as the service migrates its own, with `METERS` known."""
    pool = await create_pool(database_url, fresh_schema)
    try:
        common = load_migrations("billing_common")
        await apply_migrations(pool, fresh_schema, common, history_table="common_migrations")
        await apply_migrations(pool, fresh_schema, load_migrations("billing_pricing"))
        async with transaction(pool) as conn:
            for meter in METERS:
                await repository.upsert_meter(
                    conn,
                    TENANT,
                    meter,
                    version=1,
                    archived=meter.key == "old",
                    changed_at=NOW,
                )
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
async def client(pricing_pool: Pool) -> AsyncIterator[httpx.AsyncClient]:
    """The service's routes over HTTP, as the gateway calls them (tenant header set)."""
    runtime = DatabaseOnlyRuntime(pricing_pool)
    app = Starlette(routes=list(api.routes(runtime)), exception_handlers=exception_handlers())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://pricing", headers={TENANT_HEADER: TENANT}
    ) as http:
        yield http
