"""Fixtures of the invoicing service tests: a migrated schema, a runtime with only its
database, and the events other services write, encoded then parsed back as the consumer
would parse them."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from starlette.applications import Starlette

from billing_common.config import ServiceSettings
from billing_common.cycle import PERIOD_CLOSING, PeriodClosing, saga_id
from billing_common.db import Pool, apply_migrations, create_pool, load_migrations, transaction
from billing_common.events import CloudEvent, DataT, Topic, new_event
from billing_common.http import TENANT_HEADER, exception_handlers
from billing_common.ids import CustomerId, PlanId, SubscriptionId
from billing_common.runtime import ServiceRuntime
from billing_customers.events import CUSTOMER_CREATED, CustomerCreated
from billing_invoicing import api, projections, service
from billing_invoicing.app import definition
from billing_pricing.events import COUPON_CREATED, CouponCreated
from billing_pricing.schemas import CouponId
from billing_rating.events import PERIOD_RATED, PeriodRated
from billing_subscriptions.events import (
    BILLING_EFFECTS_RECORDED,
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_UPDATED,
    BillingEffectsRecorded,
    SubscriptionCreated,
    SubscriptionUpdated,
)

TENANT = "ten_1"
APRIL = datetime(2026, 4, 1, tzinfo=UTC)
MAY = datetime(2026, 5, 1, tzinfo=UTC)
JUNE = datetime(2026, 6, 1, tzinfo=UTC)
NOW = MAY + timedelta(minutes=5)


def pico(major: str) -> str:
    """Pico-units of a decimal amount in major units, as the wire writes them."""
    whole, _, fraction = major.partition(".")
    return str(int(whole) * 10**12 + int((fraction + "0" * 12)[:12] or 0))


def wire(major: str, currency: str = "USD") -> dict[str, str]:
    return {"amount": pico(major), "currency": currency}


def parsed(topic: Topic[DataT], data: DataT, subject: str) -> CloudEvent[DataT]:
    event = new_event(
        topic,
        data,
        event_id=uuid.uuid4(),
        source="tests",
        subject=subject,
        tenant_id=TENANT,
        time=NOW,
    )
    return topic.parse(event.to_bytes())


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# -- events ---------------------------------------------------------------------------------------


def customer_created(
    customer_id: CustomerId,
    *,
    name: str = "Acme",
    currency: str = "USD",
    grace_days: int = 0,
    parent_id: CustomerId | None = None,
    bill_to_parent: bool = False,
    updated_at: datetime = APRIL,
) -> CloudEvent[CustomerCreated]:
    data = CustomerCreated.model_validate(
        {
            "customer_id": customer_id,
            "external_id": f"ext-{customer_id[-8:]}",
            "name": name,
            "email": None,
            "currency": currency,
            "timezone": "UTC",
            "billing_address": {"line1": "1 Main St", "city": "Paris", "country": "fr"},
            "invoice_grace_period_days": grace_days,
            "parent_id": parent_id,
            "bill_to_parent": bill_to_parent,
            "metadata": {},
            "created_at": APRIL - timedelta(days=30),
            "updated_at": updated_at,
        }
    )
    return parsed(CUSTOMER_CREATED, data, customer_id)


class Subscription:
    """One subscription of a customer on a 30 USD/month plan, and the events it makes."""

    def __init__(
        self,
        customer_id: CustomerId,
        *,
        fee: str = "30",
        coupons: tuple[tuple[str, int], ...] = (),
    ) -> None:
        """`coupons`: `(coupon_id, start_period)` per coupon the subscription carries."""
        self.id = SubscriptionId.new()
        self.customer_id = customer_id
        self.plan_id = PlanId.new()
        self.fee = fee
        self.coupons = coupons

    def _fields(
        self, revision: int, status: str, start: datetime, end: datetime, **more: Any
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "subscription_id": self.id,
            "customer_id": self.customer_id,
            "external_id": None,
            "revision": revision,
            "status": status,
            "currency": "USD",
            "plan_id": self.plan_id,
            "plan_version": 1,
            "base_fee": wire(self.fee),
            "base_fee_timing": "in_advance",
            "interval": "month",
            "billing_anchor": "calendar",
            "timezone": "UTC",
            "billing_starts_at": APRIL,
            "ends_at": None,
            "current_period_start": start,
            "current_period_end": end,
            "current_period_fee": wire(self.fee),
            "trial_end": None,
            "cancel_at_period_end": False,
            "scheduled_plan_id": None,
            "scheduled_plan_version": None,
            "paused_at": None,
            "canceled_at": None,
            "ended_at": None,
            "coupons": [
                {"coupon_id": coupon_id, "code": f"CODE-{coupon_id[-6:]}", "start_period": start}
                for coupon_id, start in self.coupons
            ],
            "created_at": APRIL,
            "updated_at": APRIL,
        }
        fields.update(more)
        return fields

    def created(self) -> CloudEvent[SubscriptionCreated]:
        data = SubscriptionCreated.model_validate(self._fields(1, "active", APRIL, MAY))
        return parsed(SUBSCRIPTION_CREATED, data, self.customer_id)

    def updated(
        self,
        revision: int,
        action: str,
        at: datetime,
        *,
        start: datetime = APRIL,
        end: datetime = MAY,
        from_status: str = "active",
        status: str = "active",
    ) -> CloudEvent[SubscriptionUpdated]:
        fields = self._fields(revision, status, start, end, updated_at=at)
        fields["transition"] = {
            "action": action,
            "from_status": from_status,
            "to_status": status,
            "at": at,
        }
        data = SubscriptionUpdated.model_validate(fields)
        return parsed(SUBSCRIPTION_UPDATED, data, self.customer_id)

    def effects(
        self, revision: int, at: datetime, *effects: tuple[str, str, datetime, datetime]
    ) -> CloudEvent[BillingEffectsRecorded]:
        """`(reason, amount, service_start, service_end)` per effect."""
        recorded = [
            {
                "reason": reason,
                "plan_id": self.plan_id,
                "plan_version": 1,
                "base_fee_timing": "in_advance",
                "amount": wire(amount),
                "service_start": start,
                "service_end": end,
            }
            for reason, amount, start, end in effects
        ]
        net = sum(int(pico(amount)) for _, amount, _, _ in effects)
        data = BillingEffectsRecorded.model_validate(
            {
                "subscription_id": self.id,
                "customer_id": self.customer_id,
                "revision": revision,
                "action": "start" if revision == 1 else "renew",
                "at": at,
                "currency": "USD",
                "effects": recorded,
                "net": {"amount": str(net), "currency": "USD"},
            }
        )
        return parsed(BILLING_EFFECTS_RECORDED, data, self.customer_id)

    def closing(self, start: datetime, end: datetime, revision: int) -> CloudEvent[PeriodClosing]:
        data = PeriodClosing.model_validate(
            {
                "saga_id": saga_id(self.id, start),
                "subscription_id": self.id,
                "customer_id": self.customer_id,
                "plan_id": self.plan_id,
                "plan_version": 1,
                "period_start": start,
                "period_end": end,
                "subscription_revision": revision,
                "currency": "USD",
                "closed_at": end,
            }
        )
        return parsed(PERIOD_CLOSING, data, self.customer_id)

    def rated(
        self,
        start: datetime = APRIL,
        end: datetime = MAY,
        *,
        usage: str | None = "3.5",
        minimum: str | None = None,
    ) -> CloudEvent[PeriodRated]:
        lines = []
        if usage is not None:
            lines.append(
                {
                    "charge_key": "api_calls",
                    "meter_key": "api_calls",
                    "group": {},
                    "kind": "usage",
                    "billing": "in_arrears",
                    "overridden": False,
                    "period_start": start,
                    "period_end": end,
                    "quantity": "1000",
                    "amount": {"amount": usage, "currency": "USD"},
                    "unit_price": {"amount": "0.0035", "currency": "USD"},
                    "tiers": [],
                    "packages": None,
                    "percentage": None,
                    "matrix_cell": None,
                    "explanation": "1000 calls x 0.0035",
                }
            )
        data = PeriodRated.model_validate(
            {
                "saga_id": saga_id(self.id, start),
                "subscription_id": self.id,
                "customer_id": self.customer_id,
                "plan_id": self.plan_id,
                "plan_version": 1,
                "period_start": start,
                "period_end": end,
                "currency": "USD",
                "lines": lines,
                "minimum_commitment": (
                    None if minimum is None else {"amount": minimum, "currency": "USD"}
                ),
                "rated_at": end,
            }
        )
        return parsed(PERIOD_RATED, data, self.customer_id)


def coupon_created(
    code: str,
    *,
    percent_off: str | None = None,
    amount_off: str | None = None,
    duration: str = "forever",
    duration_periods: int | None = None,
    plan_ids: tuple[PlanId, ...] = (),
) -> CloudEvent[CouponCreated]:
    """Pricing's `coupon_created`; `amount_off` in USD major units."""
    coupon_id = CouponId.new()
    data = CouponCreated.model_validate(
        {
            "coupon_id": coupon_id,
            "code": code,
            "name": code.title(),
            "percent_off": percent_off,
            "amount_off": None if amount_off is None else wire(amount_off),
            "duration": duration,
            "duration_periods": duration_periods,
            "plan_ids": list(plan_ids),
            "created_at": APRIL - timedelta(days=1),
        }
    )
    return parsed(COUPON_CREATED, data, coupon_id)


# -- database -------------------------------------------------------------------------------------


@pytest.fixture
async def invoicing_pool(database_url: str, fresh_schema: str) -> AsyncIterator[Pool]:
    """A fresh schema migrated exactly as the service migrates its own."""
    pool = await create_pool(database_url, fresh_schema)
    try:
        common = load_migrations("billing_common")
        await apply_migrations(pool, fresh_schema, common, history_table="common_migrations")
        await apply_migrations(pool, fresh_schema, load_migrations("billing_invoicing"))
        yield pool
    finally:
        await pool.close()


class DatabaseOnlyRuntime(ServiceRuntime):
    """The runtime with only its database open: what routes and loops use, without a broker."""

    def __init__(self, pool: Pool, clock: Clock) -> None:
        super().__init__(definition, ServiceSettings(), clock=clock)
        self._pool = pool
        self.health_state.ready = True


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def runtime(invoicing_pool: Pool, clock: Clock) -> DatabaseOnlyRuntime:
    return DatabaseOnlyRuntime(invoicing_pool, clock)


@pytest.fixture
def invoicing(runtime: DatabaseOnlyRuntime) -> service.Invoicing:
    return service.Invoicing(runtime.outbox, runtime.clock)


async def apply(pool: Pool, *events: CloudEvent[Any]) -> None:
    """Project `events` through the real handlers, each in its own transaction."""
    handlers: dict[str, Any] = {
        "billing.customers.customer_created": projections.customer_created,
        "billing.customers.customer_updated": projections.customer_updated,
        "billing.subscriptions.subscription_created": projections.subscription_created,
        "billing.subscriptions.subscription_updated": projections.subscription_updated,
        "billing.subscriptions.billing_effects_recorded": projections.billing_effects_recorded,
        "billing.engine.period_closing": projections.period_closing,
        "billing.pricing.coupon_created": projections.coupon_created,
    }
    for event in events:
        async with transaction(pool) as conn:
            await handlers[event.type](conn, event)


async def outbox_events(pool: Pool, topic: Topic[Any]) -> list[dict[str, Any]]:
    """The `data` of every event written to the outbox on `topic`, in order."""
    rows = await pool.fetch("SELECT payload FROM outbox WHERE topic = $1 ORDER BY seq", topic.name)
    return [json.loads(bytes(row["payload"]))["data"] for row in rows]


def dump(model: BaseModel) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(model.model_dump_json())
    return result


@pytest.fixture
async def client(runtime: DatabaseOnlyRuntime) -> AsyncIterator[httpx.AsyncClient]:
    """The service's routes over HTTP, as the gateway calls them (tenant header set)."""
    app = Starlette(routes=list(api.routes(runtime)), exception_handlers=exception_handlers())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://invoicing", headers={TENANT_HEADER: TENANT}
    ) as http:
        yield http
