from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from billing_common.config import ServiceSettings
from billing_common.db import Pool, apply_migrations, create_pool, load_migrations, transaction
from billing_common.events import CloudEvent, Topic, new_event
from billing_common.http import TENANT_HEADER, exception_handlers
from billing_common.ids import CustomerId, PlanId, SubscriptionId
from billing_common.outbox import OutboxWriter
from billing_common.runtime import ServiceRuntime
from billing_customers.events import CUSTOMER_CREATED, CustomerCreated
from billing_engine import api, handlers
from billing_engine.app import definition
from billing_engine.clock import BillingClock
from billing_engine.settings import EngineSettings
from billing_invoicing.events import INVOICE_FINALIZED, InvoiceFinalized
from billing_subscriptions.events import (
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_UPDATED,
    SubscriptionCreated,
    SubscriptionUpdated,
)

NOW = datetime(2026, 4, 11, 10, 0, tzinfo=UTC)
TENANT = "ten_1"


def utc(year: int, month: int, day: int = 1) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


class Clock:
    """The real clock, as the tests move it by hand."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _parsed(topic: Topic[Any], data: Any, subject: str, tenant_id: str) -> Any:
    event = new_event(
        topic,
        data,
        event_id=uuid.uuid4(),
        source="tests",
        subject=subject,
        tenant_id=tenant_id,
        time=NOW,
    )
    return topic.parse(event.to_bytes())


def subscription_fields(
    subscription_id: str,
    customer_id: str,
    *,
    revision: int = 1,
    status: str = "active",
    period: tuple[datetime, datetime] | None = (utc(2026, 1), utc(2026, 2)),
    trial_end: datetime | None = None,
) -> dict[str, Any]:
    """A whole subscription as subscriptions announces it (monthly, 30 USD)."""
    return {
        "subscription_id": subscription_id,
        "customer_id": customer_id,
        "external_id": None,
        "revision": revision,
        "status": status,
        "currency": "USD",
        "plan_id": str(PLAN),
        "plan_version": 1,
        "base_fee": {"amount": str(30 * 10**12), "currency": "USD"},
        "base_fee_timing": "in_advance",
        "interval": "month",
        "billing_anchor": "calendar",
        "timezone": "UTC",
        "billing_starts_at": utc(2026, 1),
        "ends_at": None,
        "current_period_start": None if period is None else period[0],
        "current_period_end": None if period is None else period[1],
        "current_period_fee": None if period is None else {"amount": "1", "currency": "USD"},
        "trial_end": trial_end,
        "cancel_at_period_end": False,
        "scheduled_plan_id": None,
        "scheduled_plan_version": None,
        "paused_at": None,
        "canceled_at": None,
        "ended_at": None,
        "created_at": utc(2026, 1),
        "updated_at": utc(2026, 1),
    }


PLAN = PlanId.new()


def subscription_created(
    subscription_id: str, customer_id: str, tenant_id: str = TENANT, **fields: Any
) -> CloudEvent[SubscriptionCreated]:
    data = SubscriptionCreated.model_validate(
        subscription_fields(subscription_id, customer_id, **fields)
    )
    event: CloudEvent[SubscriptionCreated] = _parsed(
        SUBSCRIPTION_CREATED, data, customer_id, tenant_id
    )
    return event


def subscription_updated(
    subscription_id: str, customer_id: str, tenant_id: str = TENANT, **fields: Any
) -> CloudEvent[SubscriptionUpdated]:
    whole = subscription_fields(subscription_id, customer_id, **fields)
    data = SubscriptionUpdated.model_validate(
        {
            **whole,
            "transition": {
                "action": "renew",
                "from_status": whole["status"],
                "to_status": whole["status"],
                "at": NOW,
            },
        }
    )
    event: CloudEvent[SubscriptionUpdated] = _parsed(
        SUBSCRIPTION_UPDATED, data, customer_id, tenant_id
    )
    return event


def customer_created(customer_id: str, tenant_id: str = TENANT) -> CloudEvent[CustomerCreated]:
    data = CustomerCreated.model_validate(
        {
            "customer_id": customer_id,
            "external_id": f"ext-{customer_id[-6:]}",
            "name": "Customer",
            "email": None,
            "currency": "USD",
            "timezone": "UTC",
            "metadata": {},
            "created_at": NOW,
        }
    )
    event: CloudEvent[CustomerCreated] = _parsed(CUSTOMER_CREATED, data, customer_id, tenant_id)
    return event


def invoice_finalized(
    saga: uuid.UUID | None, customer_id: str, invoice_id: str = "inv_1"
) -> CloudEvent[InvoiceFinalized]:
    zero = {"amount": "0", "currency": "USD"}
    data = InvoiceFinalized.model_validate(
        {
            "invoice_id": invoice_id,
            "number": "INV-0001",
            "customer_id": customer_id,
            "subscription_id": None,
            "saga_id": saga,
            "currency": "USD",
            "period_start": None,
            "period_end": None,
            "lines": [],
            "subtotal": zero,
            "discount_total": zero,
            "tax_total": zero,
            "total": zero,
            "status": "paid",
            "finalized_at": NOW,
        }
    )
    event: CloudEvent[InvoiceFinalized] = _parsed(INVOICE_FINALIZED, data, customer_id, TENANT)
    return event


def new_customer() -> CustomerId:
    return CustomerId.new()


def new_subscription() -> SubscriptionId:
    return SubscriptionId.new()


@pytest.fixture
async def engine_pool(database_url: str, fresh_schema: str) -> AsyncIterator[Pool]:
    """A fresh schema migrated exactly as the service migrates its own."""
    pool = await create_pool(database_url, fresh_schema)
    try:
        common = load_migrations("billing_common")
        await apply_migrations(pool, fresh_schema, common, history_table="common_migrations")
        await apply_migrations(pool, fresh_schema, load_migrations("billing_engine"))
        yield pool
    finally:
        await pool.close()


class DatabaseOnlyRuntime(ServiceRuntime):
    """The runtime with only its database open: what routes and the loop use, no broker."""

    def __init__(self, pool: Pool, clock: Clock) -> None:
        super().__init__(definition, ServiceSettings(), clock=clock)
        self._pool = pool
        self.health_state.ready = True


SETTINGS = EngineSettings(
    scan_interval_ms=10, saga_timeout_seconds=30, saga_max_attempts=3, attach_customer_wait_ms=0
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def runtime(engine_pool: Pool, clock: Clock) -> DatabaseOnlyRuntime:
    return DatabaseOnlyRuntime(engine_pool, clock)


@pytest.fixture
def billing_clock() -> BillingClock:
    return BillingClock(SETTINGS)


class Feed:
    """Delivers events to the engine's handlers, each in its own transaction."""

    def __init__(self, pool: Pool, clock: Clock) -> None:
        self.pool = pool
        self.clock = clock

    async def customer(self, customer_id: str, tenant_id: str = TENANT) -> None:
        async with transaction(self.pool) as conn:
            await handlers.customer_created(conn, customer_created(customer_id, tenant_id))

    async def subscription(
        self, subscription_id: str, customer_id: str, *, revision: int = 1, **fields: Any
    ) -> None:
        async with transaction(self.pool) as conn:
            if revision == 1:
                await handlers.subscription_created(
                    conn, subscription_created(subscription_id, customer_id, **fields)
                )
            else:
                await handlers.subscription_updated(
                    conn,
                    subscription_updated(subscription_id, customer_id, revision=revision, **fields),
                )

    async def invoice(self, saga: uuid.UUID | None, customer_id: str) -> None:
        async with transaction(self.pool) as conn:
            await handlers.invoice_finalized(self.clock)(conn, invoice_finalized(saga, customer_id))


@pytest.fixture
def feed(engine_pool: Pool, clock: Clock) -> Feed:
    return Feed(engine_pool, clock)


def outbox_at(now: datetime = NOW) -> OutboxWriter:
    return OutboxWriter(source="engine", clock=lambda: now)


@pytest.fixture
async def client(
    runtime: DatabaseOnlyRuntime, billing_clock: BillingClock
) -> AsyncIterator[httpx.AsyncClient]:
    """The service's routes over HTTP, as the gateway calls them (tenant `ten_1`)."""
    app = Starlette(
        routes=list(api.routes(runtime, billing_clock, SETTINGS)),
        exception_handlers=exception_handlers(),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://engine", headers={TENANT_HEADER: TENANT}
    ) as http:
        yield http
