from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter
from starlette.applications import Starlette

from billing_common.config import ServiceSettings
from billing_common.currency import Currency
from billing_common.db import Pool, apply_migrations, create_pool, load_migrations, transaction
from billing_common.events import CloudEvent, new_event
from billing_common.http import TENANT_HEADER, exception_handlers
from billing_common.ids import CustomerId, PlanId
from billing_common.money import Money, MoneyPublic
from billing_common.runtime import ServiceRuntime
from billing_pricing.domain import describe_plan, describe_price, meter_keys_of, price_model
from billing_pricing.events import (
    PLAN_PUBLISHED,
    PRICE_OVERRIDE_SET,
    PlanPublished,
    PriceOverrideSet,
)
from billing_pricing.schemas import PlanBody, PriceOverrideId, PublicPrice, WirePrice
from billing_rating import api, service
from billing_rating.app import definition

NOW = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
TENANT = "ten_1"

_PUBLIC_PRICE: TypeAdapter[Any] = TypeAdapter(PublicPrice)
_WIRE_PRICE: TypeAdapter[Any] = TypeAdapter(WirePrice)


def usd(amount: str) -> dict[str, str]:
    """An amount as a client writes it (public form, major units)."""
    return {"amount": amount, "currency": "USD"}


def per_unit(amount: str) -> dict[str, Any]:
    return {"model": "per_unit", "unit_price": usd(amount)}


def graduated(*rows: tuple[str, str | None, str]) -> dict[str, Any]:
    return {
        "model": "graduated",
        "tiers": [
            {"from_units": start, "up_to": end, "unit_price": usd(price)}
            for start, end, price in rows
        ],
    }


def wire_price(price: dict[str, Any]) -> Any:
    """A price as a client describes it, in the wire form pricing stores and sends."""
    model = price_model(_PUBLIC_PRICE.validate_python(price), Currency.of("USD"))
    return _WIRE_PRICE.validate_python(describe_price(model, Money.to_wire))


def plan_published(
    plan_id: PlanId, version: int, *charges: dict[str, Any], **changes: Any
) -> PlanPublished:
    """A `plan_published` event's data, built the way pricing builds it: the plan as a client
    describes it, turned into the wire form by pricing's own `describe_plan`."""
    body = PlanBody[MoneyPublic].model_validate(
        {
            "name": "Pro",
            "currency": "USD",
            "interval": "month",
            "base_fee": usd("49"),
            "charges": list(charges),
            **changes,
        }
    )
    return PlanPublished.model_validate(
        {
            **describe_plan(body, Money.to_wire),
            "plan_id": plan_id,
            "code": "pro",
            "version": version,
            "meter_keys": meter_keys_of(body),
            "published_at": NOW,
        }
    )


def override_set(
    plan_id: PlanId,
    customer_id: CustomerId,
    charge_key: str,
    price: dict[str, Any],
    *,
    meter_key: str = "api_calls",
    set_at: datetime = NOW,
) -> PriceOverrideSet:
    """A `price_override_set` event's data, with the price in the wire form pricing sends."""
    return PriceOverrideSet(
        override_id=PriceOverrideId.new(),
        plan_id=plan_id,
        customer_id=customer_id,
        charge_key=charge_key,
        meter_key=meter_key,
        currency=Currency.of("USD"),
        price=wire_price(price),
        set_at=set_at,
    )


def plan_event(data: PlanPublished) -> CloudEvent[PlanPublished]:
    return new_event(
        PLAN_PUBLISHED,
        data,
        event_id=uuid.uuid4(),
        source="pricing",
        subject=data.plan_id,
        tenant_id=TENANT,
        time=NOW,
    )


def override_event(data: PriceOverrideSet) -> CloudEvent[PriceOverrideSet]:
    return new_event(
        PRICE_OVERRIDE_SET,
        data,
        event_id=uuid.uuid4(),
        source="pricing",
        subject=data.customer_id,
        tenant_id=TENANT,
        time=NOW,
    )


async def project(pool: Pool, *events: PlanPublished | PriceOverrideSet) -> None:
    """Apply events to the projection through the handlers, each in its own transaction (as
    the inbox runs them)."""
    for data in events:
        async with transaction(pool) as conn:
            if isinstance(data, PlanPublished):
                await service.project_plan_published(conn, plan_event(data))
            else:
                await service.project_price_override(conn, override_event(data))


@pytest.fixture
async def rating_pool(database_url: str, fresh_schema: str) -> AsyncIterator[Pool]:
    """A fresh schema migrated exactly as the service migrates its own."""
    pool = await create_pool(database_url, fresh_schema)
    try:
        common = load_migrations("billing_common")
        await apply_migrations(pool, fresh_schema, common, history_table="common_migrations")
        await apply_migrations(pool, fresh_schema, load_migrations("billing_rating"))
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
async def client(rating_pool: Pool) -> AsyncIterator[httpx.AsyncClient]:
    """The service's routes over HTTP, as the gateway calls them (tenant header set)."""
    runtime = DatabaseOnlyRuntime(rating_pool)
    app = Starlette(routes=list(api.routes(runtime)), exception_handlers=exception_handlers())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://rating", headers={TENANT_HEADER: TENANT}
    ) as http:
        yield http


#: The charges of the tests' plan: api calls by graduated tiers with a 20 USD minimum,
#: storage per GB rated per region, and payments at 2.9 % + 0.30 USD billed in advance.
CALLS: dict[str, Any] = {
    "key": "calls",
    "meter_key": "api_calls",
    "price": graduated(("0", "100", "0.10"), ("100", None, "0.05")),
    "minimum": usd("20"),
}
STORAGE: dict[str, Any] = {
    "key": "storage",
    "meter_key": "storage_gb",
    "price": per_unit("0.023"),
    "group_by": ["region"],
}
PAYMENTS: dict[str, Any] = {
    "key": "payments",
    "meter_key": "revenue",
    "price": {"model": "percentage", "rate": "2.9", "fixed_fee": usd("0.30")},
    "billing": "in_advance",
}
