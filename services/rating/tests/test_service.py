"""The catalog projection and rate_period, on a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing_common.db import Pool
from billing_common.ids import CustomerId, PlanId
from billing_common.money import Money
from billing_rating import repository, service
from billing_rating.domain import LineKind, Period, RatedLineItem, Usage, UsageRecord

from .conftest import (
    CALLS,
    NOW,
    PAYMENTS,
    STORAGE,
    TENANT,
    graduated,
    override_set,
    per_unit,
    plan_published,
    project,
)

pytestmark = pytest.mark.service

PERIOD = Period(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
USAGE = Usage(
    [
        UsageRecord("api_calls", {}, Decimal(1500)),
        UsageRecord("storage_gb", {"region": "eu"}, Decimal("10.5")),
        UsageRecord("storage_gb", {"region": "us"}, Decimal(3)),
        UsageRecord(
            "revenue", {}, Decimal("120.50"), transactions=(Decimal(100), Decimal("20.50"))
        ),
        UsageRecord("gpu_hours", {}, Decimal(7)),  # no charge of the plan: left aside
    ]
)


def usd(amount: str) -> Money:
    return Money.parse(amount, "USD")


def summary(lines: list[RatedLineItem]) -> list[tuple[str, dict[str, str], str, Money]]:
    return [(line.charge_id, line.group, line.kind.value, line.amount) for line in lines]


async def rate(
    pool: Pool,
    plan_id: PlanId,
    version: int | None = None,
    customer_id: CustomerId | None = None,
    usage: Usage = USAGE,
) -> list[RatedLineItem]:
    async with pool.acquire() as conn:
        return await service.rate_period(conn, TENANT, plan_id, version, customer_id, usage, PERIOD)


class TestProjection:
    async def test_a_plan_version_is_stored_whole(self, rating_pool: Pool) -> None:
        plan_id = PlanId.new()
        published = plan_published(plan_id, 1, CALLS, STORAGE, PAYMENTS)
        await project(rating_pool, published)
        async with rating_pool.acquire() as conn:
            assert await repository.get_plan_version(conn, TENANT, plan_id, 1) == published
            assert await repository.get_plan_version(conn, TENANT, plan_id) == published
            assert await repository.get_plan_version(conn, "ten_other", plan_id) is None

    async def test_an_older_version_arriving_late_does_not_replace_a_newer_one(
        self, rating_pool: Pool
    ) -> None:
        plan_id = PlanId.new()
        first = plan_published(plan_id, 1, CALLS)
        second = plan_published(plan_id, 2, CALLS, STORAGE, name="Pro 2")
        await project(rating_pool, second, first)
        async with rating_pool.acquire() as conn:
            assert await repository.get_plan_version(conn, TENANT, plan_id) == second
            assert await repository.get_plan_version(conn, TENANT, plan_id, 1) == first
        # Each version rates with its own charges: the latest, unless one is asked for.
        assert [line.charge_id for line in await rate(rating_pool, plan_id)] == [
            "calls",
            "storage",
            "storage",
        ]
        assert [line.charge_id for line in await rate(rating_pool, plan_id, 1)] == ["calls"]

    async def test_a_version_once_known_never_changes(self, rating_pool: Pool) -> None:
        plan_id = PlanId.new()
        first = plan_published(plan_id, 1, CALLS)
        await project(rating_pool, first, plan_published(plan_id, 1, STORAGE, name="Other"))
        async with rating_pool.acquire() as conn:
            assert await repository.get_plan_version(conn, TENANT, plan_id, 1) == first

    async def test_a_later_override_replaces_an_earlier_one_not_the_reverse(
        self, rating_pool: Pool
    ) -> None:
        plan_id, customer = PlanId.new(), CustomerId.new()
        later = override_set(
            plan_id, customer, "calls", per_unit("0.02"), set_at=NOW + timedelta(hours=1)
        )
        await project(
            rating_pool,
            plan_published(plan_id, 1, CALLS),
            override_set(plan_id, customer, "calls", per_unit("0.01")),
            later,
            override_set(plan_id, customer, "calls", per_unit("0.03")),  # set before `later`
        )
        async with rating_pool.acquire() as conn:
            stored = await repository.overrides_of(conn, TENANT, plan_id, customer)
        assert list(stored) == ["calls"]
        assert stored["calls"].price == later.price
        assert (await rate(rating_pool, plan_id, customer_id=customer))[0].amount == usd("30")


class TestRatePeriod:
    async def test_without_overrides(self, rating_pool: Pool) -> None:
        plan_id = PlanId.new()
        await project(rating_pool, plan_published(plan_id, 1, CALLS, STORAGE, PAYMENTS))
        lines = await rate(rating_pool, plan_id)
        assert summary(lines) == [
            ("calls", {}, "usage", usd("80")),  # 100 x 0.10 + 1400 x 0.05
            # 2.9 % of 100 + 0.30, then 2.9 % of 20.50 + 0.30
            ("payments", {}, "usage", usd("4.0945")),
            ("storage", {"region": "eu"}, "usage", usd("0.2415")),  # 10.5 x 0.023
            ("storage", {"region": "us"}, "usage", usd("0.069")),
        ]
        assert [line.amount.amount for line in lines] == [
            80_000_000_000_000,
            4_094_500_000_000,
            241_500_000_000,
            69_000_000_000,
        ]
        assert all(line.period == PERIOD for line in lines)
        assert [tier.amount for tier in lines[0].tiers] == [usd("10"), usd("70")]

    async def test_with_a_customers_override(self, rating_pool: Pool) -> None:
        plan_id, customer, other = PlanId.new(), CustomerId.new(), CustomerId.new()
        await project(
            rating_pool,
            plan_published(plan_id, 1, CALLS, STORAGE, PAYMENTS),
            override_set(plan_id, customer, "calls", per_unit("0.01")),
        )
        lines = await rate(rating_pool, plan_id, customer_id=customer)
        assert summary(lines) == [
            ("calls", {}, "usage", usd("15")),  # 1500 x 0.01
            ("calls", {}, "charge_minimum", usd("5")),  # the charge's 20 USD minimum holds
            ("payments", {}, "usage", usd("4.0945")),
            ("storage", {"region": "eu"}, "usage", usd("0.2415")),
            ("storage", {"region": "us"}, "usage", usd("0.069")),
        ]
        assert lines[1].kind is LineKind.CHARGE_MINIMUM
        # Another customer, and no customer, pay the plan's price.
        for customer_id in (other, None):
            rated = await rate(rating_pool, plan_id, customer_id=customer_id)
            assert rated[0].amount == usd("80")

    async def test_an_override_holds_for_every_version_with_the_charge_on_its_meter(
        self, rating_pool: Pool
    ) -> None:
        plan_id, customer = PlanId.new(), CustomerId.new()
        moved = {**CALLS, "meter_key": "api_requests"}
        await project(
            rating_pool,
            plan_published(plan_id, 1, CALLS),
            plan_published(plan_id, 2, {**CALLS, "price": graduated(("0", None, "0.04"))}),
            plan_published(plan_id, 3, moved),
            override_set(plan_id, customer, "calls", per_unit("0.02")),
        )
        usage = Usage(
            [
                UsageRecord("api_calls", {}, Decimal(1500)),
                UsageRecord("api_requests", {}, Decimal(1500)),
            ]
        )
        for version in (1, 2):
            lines = await rate(rating_pool, plan_id, version, customer, usage)
            assert summary(lines) == [("calls", {}, "usage", usd("30"))]
        # Version 3 charges another meter: the price set for api_calls does not carry over.
        lines = await rate(rating_pool, plan_id, 3, customer, usage)
        assert summary(lines) == [("calls", {}, "usage", usd("80"))]
        assert lines[0].meter_key == "api_requests"

    async def test_a_charge_without_usage_rates_zero_then_its_minimum(
        self, rating_pool: Pool
    ) -> None:
        plan_id = PlanId.new()
        await project(rating_pool, plan_published(plan_id, 1, CALLS, STORAGE))
        lines = await rate(rating_pool, plan_id, usage=Usage([]))
        assert summary(lines) == [
            ("calls", {}, "usage", usd("0")),
            ("calls", {}, "charge_minimum", usd("20")),
        ]

    async def test_unknown_plans_and_versions(self, rating_pool: Pool) -> None:
        plan_id = PlanId.new()
        await project(rating_pool, plan_published(plan_id, 1, CALLS))
        with pytest.raises(service.PlanNotFound):
            await rate(rating_pool, PlanId.new())
        with pytest.raises(service.PlanNotFound):
            await rate(rating_pool, PlanId.new(), 1)
        with pytest.raises(service.PlanVersionNotFound) as missing:
            await rate(rating_pool, plan_id, 2)
        assert (missing.value.status, missing.value.code) == (404, "plan_version_not_found")
