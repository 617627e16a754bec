from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from billing_common.config import ServiceSettings
from billing_common.currency import Currency
from billing_common.db import Pool, apply_migrations, create_pool, load_migrations, transaction
from billing_common.events import CloudEvent, new_event
from billing_common.http import TENANT_HEADER, exception_handlers
from billing_common.ids import CustomerId, PlanId
from billing_common.outbox import OutboxWriter
from billing_common.runtime import ServiceRuntime
from billing_customers.events import CUSTOMER_CREATED, CustomerCreated
from billing_pricing.events import PLAN_PUBLISHED, PlanPublished
from billing_subscriptions import api, projections
from billing_subscriptions.app import definition

NOW = datetime(2026, 4, 11, 10, 0, tzinfo=UTC)
TENANT = "ten_1"


class Clock:
    """A clock the tests move by hand."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def outbox_at(now: datetime = NOW) -> OutboxWriter:
    return OutboxWriter(source="subscriptions", clock=lambda: now)


def usd(amount_pico: int, currency: str = "USD") -> dict[str, str]:
    return {"amount": str(amount_pico), "currency": currency}


def pico(major: int) -> int:
    return major * 10**12


def plan_published(
    plan_id: PlanId,
    version: int = 1,
    *,
    base_fee: int | None = 30,
    currency: str = "USD",
    interval: str = "month",
    trial_days: int = 0,
    timing: str = "in_advance",
    charges: list[dict[str, Any]] | None = None,
    tenant_id: str = TENANT,
) -> CloudEvent[PlanPublished]:
    """A `plan_published` event as pricing writes it, encoded then parsed back."""
    data = PlanPublished.model_validate(
        {
            "plan_id": plan_id,
            "code": f"plan-{plan_id[-6:].lower()}",
            "version": version,
            "name": f"Plan v{version}",
            "currency": currency,
            "interval": interval,
            "base_fee": None if base_fee is None else usd(pico(base_fee), currency),
            "base_fee_timing": timing,
            "trial_days": trial_days,
            "charges": charges or [],
            "meter_keys": sorted({c["meter_key"] for c in charges or []}),
            "published_at": NOW,
        }
    )
    event = new_event(
        PLAN_PUBLISHED,
        data,
        event_id=uuid.uuid4(),
        source="pricing",
        subject=plan_id,
        tenant_id=tenant_id,
        time=NOW,
    )
    return PLAN_PUBLISHED.parse(event.to_bytes())


def customer_created(
    customer_id: CustomerId,
    *,
    currency: str = "USD",
    timezone: str = "UTC",
    tenant_id: str = TENANT,
) -> CloudEvent[CustomerCreated]:
    data = CustomerCreated(
        customer_id=customer_id,
        external_id=f"ext-{customer_id[-6:]}",
        name="Customer",
        email=None,
        currency=Currency.of(currency),
        timezone=timezone,
        metadata={},
        created_at=NOW,
    )
    event = new_event(
        CUSTOMER_CREATED,
        data,
        event_id=uuid.uuid4(),
        source="customers",
        subject=customer_id,
        tenant_id=tenant_id,
        time=NOW,
    )
    return CUSTOMER_CREATED.parse(event.to_bytes())


@pytest.fixture
async def subscriptions_pool(database_url: str, fresh_schema: str) -> AsyncIterator[Pool]:
    """A fresh schema migrated exactly as the service migrates its own."""
    pool = await create_pool(database_url, fresh_schema)
    try:
        common = load_migrations("billing_common")
        await apply_migrations(pool, fresh_schema, common, history_table="common_migrations")
        await apply_migrations(pool, fresh_schema, load_migrations("billing_subscriptions"))
        yield pool
    finally:
        await pool.close()


class Catalog:
    """What the tests subscribe to, projected through the real handlers:

    - `basic` (30 USD/month, v1) and its v2 (45 USD/month, 7 trial days);
    - `pro` (60 USD/month); `yearly` (300 USD/year); `euro` (30 EUR/month);
    - `alice` (USD, UTC), `bruno` (USD, Europe/Paris), `chloe` (EUR, UTC).
    """

    def __init__(self) -> None:
        self.basic = PlanId.new()
        self.pro = PlanId.new()
        self.yearly = PlanId.new()
        self.euro = PlanId.new()
        self.alice = CustomerId.new()
        self.bruno = CustomerId.new()
        self.chloe = CustomerId.new()

    async def project(self, pool: Pool) -> None:
        async with transaction(pool) as conn:
            await projections.plan_published(conn, plan_published(self.basic, 1, base_fee=30))
            await projections.plan_published(
                conn, plan_published(self.basic, 2, base_fee=45, trial_days=7)
            )
            await projections.plan_published(conn, plan_published(self.pro, base_fee=60))
            await projections.plan_published(
                conn, plan_published(self.yearly, base_fee=300, interval="year")
            )
            await projections.plan_published(
                conn, plan_published(self.euro, base_fee=30, currency="EUR")
            )
            await projections.customer_created(conn, customer_created(self.alice))
            await projections.customer_created(
                conn, customer_created(self.bruno, timezone="Europe/Paris")
            )
            await projections.customer_created(conn, customer_created(self.chloe, currency="EUR"))


@pytest.fixture
async def catalog(subscriptions_pool: Pool) -> Catalog:
    known = Catalog()
    await known.project(subscriptions_pool)
    return known


class DatabaseOnlyRuntime(ServiceRuntime):
    """The runtime with only its database open: what the routes use, without a broker."""

    def __init__(self, pool: Pool, clock: Clock) -> None:
        super().__init__(definition, ServiceSettings(), clock=clock)
        self._pool = pool
        self.health_state.ready = True


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(
    subscriptions_pool: Pool, catalog: Catalog, clock: Clock
) -> AsyncIterator[httpx.AsyncClient]:
    """The service's routes over HTTP, as the gateway calls them (tenant header set)."""
    runtime = DatabaseOnlyRuntime(subscriptions_pool, clock)
    app = Starlette(routes=list(api.routes(runtime)), exception_handlers=exception_handlers())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://subscriptions", headers={TENANT_HEADER: TENANT}
    ) as http:
        yield http
