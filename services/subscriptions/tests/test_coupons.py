"""Coupons on subscriptions: projected from pricing's `coupon_created`, checked when a
subscription asks for them, carried by the subscription and its events."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from billing_common.db import Pool, transaction
from billing_common.events import CloudEvent, new_event
from billing_common.ids import PlanId
from billing_pricing.events import COUPON_CREATED, CouponCreated
from billing_pricing.schemas import CouponId
from billing_subscriptions import projections
from billing_subscriptions.events import SUBSCRIPTION_CREATED, SUBSCRIPTION_UPDATED

from .conftest import NOW, TENANT, Catalog, pico, usd
from .test_api import assert_problem, create

pytestmark = pytest.mark.service


def coupon_created(
    code: str,
    *,
    percent_off: str | None = None,
    amount_off: tuple[int, str] | None = None,
    duration: str = "forever",
    duration_periods: int | None = None,
    plan_ids: list[PlanId] | None = None,
) -> CloudEvent[CouponCreated]:
    """A `coupon_created` event as pricing writes it, encoded then parsed back."""
    coupon_id = CouponId.new()
    data = CouponCreated.model_validate(
        {
            "coupon_id": coupon_id,
            "code": code,
            "name": code.title(),
            "percent_off": percent_off,
            "amount_off": None if amount_off is None else usd(pico(amount_off[0]), amount_off[1]),
            "duration": duration,
            "duration_periods": duration_periods,
            "plan_ids": plan_ids or [],
            "created_at": NOW,
        }
    )
    event = new_event(
        COUPON_CREATED,
        data,
        event_id=uuid.uuid4(),
        source="pricing",
        subject=coupon_id,
        tenant_id=TENANT,
        time=NOW,
    )
    return COUPON_CREATED.parse(event.to_bytes())


async def project(pool: Pool, *events: CloudEvent[CouponCreated]) -> None:
    for event in events:
        async with transaction(pool) as conn:
            await projections.coupon_created(conn, event)


async def outbox_data(pool: Pool, topic_name: str) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT payload FROM outbox WHERE topic = $1 ORDER BY seq", topic_name)
    if topic_name == SUBSCRIPTION_CREATED.name:
        return [
            SUBSCRIPTION_CREATED.parse(bytes(row["payload"])).data.model_dump(mode="json")
            for row in rows
        ]
    return [
        SUBSCRIPTION_UPDATED.parse(bytes(row["payload"])).data.model_dump(mode="json")
        for row in rows
    ]


class TestCouponsOnCreate:
    async def test_the_subscription_and_its_events_carry_its_coupons_from_period_0(
        self, client: httpx.AsyncClient, catalog: Catalog, subscriptions_pool: Pool
    ) -> None:
        ten = coupon_created("TEN", percent_off="10")
        five = coupon_created("FIVE", amount_off=(5, "USD"), plan_ids=[catalog.basic])
        await project(subscriptions_pool, ten, five)
        coupon_ids = [ten.data.coupon_id, five.data.coupon_id]
        body = await create(
            client,
            customer_id=catalog.alice,
            plan_id=catalog.basic,
            plan_version=1,
            coupons=coupon_ids,
        )
        expected = [
            {"coupon_id": ten.data.coupon_id, "code": "TEN", "start_period": 0},
            {"coupon_id": five.data.coupon_id, "code": "FIVE", "start_period": 0},
        ]
        assert body["coupons"] == expected
        retrieved = await client.get(f"/v1/subscriptions/{body['id']}")
        assert retrieved.json()["coupons"] == expected
        [created] = await outbox_data(subscriptions_pool, SUBSCRIPTION_CREATED.name)
        assert created["coupons"] == expected
        # Every later snapshot carries them too.
        paused = await client.post(f"/v1/subscriptions/{body['id']}/pause")
        assert paused.status_code == 200, paused.text
        [updated] = await outbox_data(subscriptions_pool, SUBSCRIPTION_UPDATED.name)
        assert updated["transition"]["action"] == "pause"
        assert updated["coupons"] == expected

    async def test_without_coupons_the_list_is_empty(
        self, client: httpx.AsyncClient, catalog: Catalog, subscriptions_pool: Pool
    ) -> None:
        body = await create(client, customer_id=catalog.alice, plan_id=catalog.pro)
        assert body["coupons"] == []
        [created] = await outbox_data(subscriptions_pool, SUBSCRIPTION_CREATED.name)
        assert created["coupons"] == []

    async def test_a_redelivered_coupon_changes_nothing(
        self, client: httpx.AsyncClient, catalog: Catalog, subscriptions_pool: Pool
    ) -> None:
        ten = coupon_created("TEN", percent_off="10")
        await project(subscriptions_pool, ten, ten)
        assert await subscriptions_pool.fetchval("SELECT count(*) FROM coupons") == 1
        body = await create(
            client, customer_id=catalog.alice, plan_id=catalog.pro, coupons=[ten.data.coupon_id]
        )
        assert [c["code"] for c in body["coupons"]] == ["TEN"]


class TestCouponRefusals:
    async def test_an_unknown_coupon_is_422_unknown_coupon(
        self, client: httpx.AsyncClient, catalog: Catalog, subscriptions_pool: Pool
    ) -> None:
        missing = CouponId.new()
        response = await client.post(
            "/v1/subscriptions",
            json={"customer_id": catalog.alice, "plan_id": catalog.pro, "coupons": [missing]},
        )
        problem = assert_problem(response, 422, "unknown_coupon")
        assert problem["coupon_id"] == missing
        assert problem["errors"][0]["field"] == "coupons[0]"
        assert await subscriptions_pool.fetchval("SELECT count(*) FROM subscriptions") == 0

    async def test_a_fixed_amount_in_another_currency_is_422_coupon_currency_mismatch(
        self, client: httpx.AsyncClient, catalog: Catalog, subscriptions_pool: Pool
    ) -> None:
        euros = coupon_created("EUR5", amount_off=(5, "EUR"))
        await project(subscriptions_pool, euros)
        response = await client.post(
            "/v1/subscriptions",
            json={
                "customer_id": catalog.alice,
                "plan_id": catalog.pro,
                "coupons": [euros.data.coupon_id],
            },
        )
        problem = assert_problem(response, 422, "coupon_currency_mismatch")
        assert (problem["coupon_currency"], problem["plan_currency"]) == ("EUR", "USD")
        # The same coupon on a plan in euros is fine.
        body = await create(
            client,
            customer_id=catalog.chloe,
            plan_id=catalog.euro,
            coupons=[euros.data.coupon_id],
        )
        assert [c["code"] for c in body["coupons"]] == ["EUR5"]

    async def test_a_coupon_for_other_plans_is_422_coupon_not_for_plan(
        self, client: httpx.AsyncClient, catalog: Catalog, subscriptions_pool: Pool
    ) -> None:
        basic_only = coupon_created("BASIC", percent_off="20", plan_ids=[catalog.basic])
        await project(subscriptions_pool, basic_only)
        response = await client.post(
            "/v1/subscriptions",
            json={
                "customer_id": catalog.alice,
                "plan_id": catalog.pro,
                "coupons": [basic_only.data.coupon_id],
            },
        )
        problem = assert_problem(response, 422, "coupon_not_for_plan")
        assert problem["plan_id"] == catalog.pro
        assert problem["errors"][0]["field"] == "coupons[0]"

    async def test_too_many_or_repeated_coupons_are_422_validation_failed(
        self, client: httpx.AsyncClient, catalog: Catalog, subscriptions_pool: Pool
    ) -> None:
        coupons = [coupon_created(f"C{i}", percent_off="1") for i in range(6)]
        await project(subscriptions_pool, *coupons)
        ids = [c.data.coupon_id for c in coupons]
        base = {"customer_id": catalog.alice, "plan_id": catalog.pro}
        too_many = await client.post("/v1/subscriptions", json={**base, "coupons": ids})
        assert_problem(too_many, 422, "validation_failed")
        repeated = await client.post(
            "/v1/subscriptions", json={**base, "coupons": [ids[0], ids[0]]}
        )
        assert_problem(repeated, 422, "validation_failed")
        five = await create(client, **base, coupons=ids[:5])
        assert len(five["coupons"]) == 5
