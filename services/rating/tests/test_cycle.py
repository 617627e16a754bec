"""Rating's step of a period's close, on a real PostgreSQL: the usage metering computed,
rated by the subscription's plan version, published for invoicing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing_common.cycle import saga_id
from billing_common.db import Connection, Pool, transaction
from billing_common.events import new_event
from billing_common.ids import PlanId, uuid7
from billing_common.outbox import OutboxWriter
from billing_metering.events import PERIOD_USAGE_COMPUTED, PeriodUsage, PeriodUsageComputed
from billing_rating import cycle
from billing_rating.events import PERIOD_RATED

from .conftest import CALLS, NOW, PAYMENTS, STORAGE, TENANT, plan_published, project, usd

pytestmark = pytest.mark.service

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 4, 1, tzinfo=UTC)


@dataclass
class Context:
    pool: Pool
    outbox: OutboxWriter
    clock: Callable[[], datetime]

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[Connection]:
        async with transaction(self.pool) as conn:
            yield conn


async def test_a_closing_period_is_rated_with_its_plan_version(rating_pool: Pool) -> None:
    plan_id = PlanId.new()
    await project(
        rating_pool,
        plan_published(plan_id, 1, CALLS, STORAGE, PAYMENTS, minimum_commitment=usd("100")),
    )
    context = Context(rating_pool, OutboxWriter(source="rating", clock=lambda: NOW), lambda: NOW)
    computed = new_event(
        PERIOD_USAGE_COMPUTED,
        PeriodUsageComputed(
            saga_id=saga_id("sub_1", START),
            subscription_id="sub_1",
            customer_id="cus_1",
            plan_id=plan_id,
            plan_version=1,
            period_start=START,
            period_end=END,
            usage=[
                PeriodUsage(meter_key="api_calls", group={}, quantity=Decimal(1500)),
                PeriodUsage(meter_key="storage_gb", group={"region": "eu"}, quantity=Decimal(10)),
                PeriodUsage(meter_key="gpu_hours", group={}, quantity=Decimal(7)),
                PeriodUsage(
                    meter_key="revenue",
                    group={},
                    quantity=Decimal("120.50"),
                    transactions=[Decimal(100), Decimal("20.50")],
                ),
            ],
            computed_at=NOW,
        ),
        event_id=uuid7(),
        source="metering",
        subject="cus_1",
        tenant_id=TENANT,
        time=NOW,
    )
    async with context.unit_of_work() as conn:
        await cycle.period_usage_computed(context, conn, computed)
    [row] = await rating_pool.fetch(
        "SELECT key, payload FROM outbox WHERE topic = $1", PERIOD_RATED.name
    )
    rated = PERIOD_RATED.parse(bytes(row["payload"]))
    assert row["key"] == "cus_1"
    assert rated.data.saga_id == computed.data.saga_id
    assert rated.data.currency.code == "USD"
    assert rated.data.minimum_commitment is not None
    assert rated.data.minimum_commitment.amount == "100"
    # 100 x 0.10 + 1400 x 0.05 = 80; 10 GB x 0.023 = 0.23; gpu_hours is not charged;
    # payments: 2.9 % of 120.50 plus 0.30 a transaction, twice = 4.0945.
    assert [
        (line.charge_key, line.group, str(line.amount.amount)) for line in rated.data.lines
    ] == [
        ("calls", {}, "80"),
        ("payments", {}, "4.0945"),
        ("storage", {"region": "eu"}, "0.23"),
    ]
    assert [tier.units for tier in rated.data.lines[0].tiers] == [Decimal(100), Decimal(1400)]
