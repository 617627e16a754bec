"""POST /v1/rating/preview through the service's routes, as the gateway calls them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from billing_common.db import Pool
from billing_common.ids import CustomerId, PlanId

from .conftest import (
    CALLS,
    PAYMENTS,
    STORAGE,
    override_set,
    per_unit,
    plan_published,
    project,
    usd,
)

pytestmark = pytest.mark.service

PROBLEM = "application/problem+json"
START, END = "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"
USAGE: list[dict[str, Any]] = [
    {"meter_key": "api_calls", "quantity": "1500"},
    {"meter_key": "storage_gb", "group": {"region": "eu"}, "quantity": "10.5"},
    {"meter_key": "revenue", "quantity": "120.50", "transactions": ["100", "20.50"]},
]


def request(plan_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "plan_id": plan_id,
        "period_start": START,
        "period_end": END,
        "usage": USAGE,
        **changes,
    }


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code, problem
    assert problem["status"] == status
    assert problem["type"].endswith("/" + code)
    return problem


@pytest.fixture
async def plan_id(rating_pool: Pool) -> PlanId:
    """A plan rating has heard of: version 1 (api calls only), then version 2 (all three)."""
    plan = PlanId.new()
    await project(
        rating_pool,
        plan_published(plan, 1, CALLS),
        plan_published(plan, 2, CALLS, STORAGE, PAYMENTS),
    )
    return plan


def line_amounts(body: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    return [
        (line["charge_key"], line["kind"], line["amount"]["amount"], line["overridden"])
        for line in body["lines"]
    ]


class TestPreview:
    async def test_rates_the_latest_version_and_explains_each_line(
        self, client: httpx.AsyncClient, plan_id: PlanId
    ) -> None:
        response = await client.post("/v1/rating/preview", json=request(plan_id))
        assert response.status_code == 200, response.text
        body = response.json()
        assert {key: body[key] for key in ("object", "plan_id", "version", "customer_id")} == {
            "object": "rating_preview",
            "plan_id": plan_id,
            "version": 2,
            "customer_id": None,
        }
        assert (body["currency"], body["period_start"], body["period_end"]) == ("USD", START, END)
        calls, payments, storage = body["lines"]
        assert calls == {
            "charge_key": "calls",
            "meter_key": "api_calls",
            "group": {},
            "kind": "usage",
            "billing": "in_arrears",
            "overridden": False,
            "period_start": START,
            "period_end": END,
            "quantity": "1500",
            "amount": usd("80"),
            "unit_price": None,
            "tiers": [
                {
                    "tier": 1,
                    "from_units": "0",
                    "up_to": "100",
                    "units": "100",
                    "unit_price": usd("0.1"),
                    "rate": None,
                    "flat_fee": None,
                    "amount": usd("10"),
                },
                {
                    "tier": 2,
                    "from_units": "100",
                    "up_to": None,
                    "units": "1400",
                    "unit_price": usd("0.05"),
                    "rate": None,
                    "flat_fee": None,
                    "amount": usd("70"),
                },
            ],
            "packages": None,
            "percentage": None,
            "matrix_cell": None,
            "explanation": calls["explanation"],
        }
        assert "1400 x 0.05 USD" in calls["explanation"]
        assert (payments["billing"], payments["quantity"], payments["amount"]) == (
            "in_advance",
            "120.50",
            usd("4.0945"),  # 2.9 % of 100 + 0.30, then 2.9 % of 20.50 + 0.30
        )
        assert payments["percentage"] == {
            "transactions": 2,
            "free_transactions": 0,
            "raised_to_minimum": 0,
            "capped_at_maximum": 0,
            "total_amount": usd("120.5"),
            "paid_amount": usd("120.5"),
            "percentage_fees": usd("3.4945"),
            "fixed_fees": usd("0.6"),
        }
        assert (storage["group"], storage["amount"], storage["unit_price"]) == (
            {"region": "eu"},
            usd("0.2415"),  # 10.5 x 0.023, exact: invoicing rounds
            usd("0.023"),
        )
        assert body["total"] == usd("84.336")

    async def test_an_earlier_version(self, client: httpx.AsyncClient, plan_id: PlanId) -> None:
        only_calls = request(plan_id, version=1, usage=USAGE[:1])
        response = await client.post("/v1/rating/preview", json=only_calls)
        assert response.status_code == 200, response.text
        assert response.json()["version"] == 1
        assert line_amounts(response.json()) == [("calls", "usage", "80", False)]

    async def test_a_customers_overrides_apply(
        self, client: httpx.AsyncClient, rating_pool: Pool, plan_id: PlanId
    ) -> None:
        customer = CustomerId.new()
        await project(rating_pool, override_set(plan_id, customer, "calls", per_unit("0.01")))
        response = await client.post(
            "/v1/rating/preview", json=request(plan_id, customer_id=customer)
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["customer_id"] == customer
        assert line_amounts(body) == [
            ("calls", "usage", "15", True),  # 1500 x 0.01
            ("calls", "charge_minimum", "5", True),  # up to the charge's 20 USD minimum
            ("payments", "usage", "4.0945", False),
            ("storage", "usage", "0.2415", False),
        ]
        assert body["lines"][0]["unit_price"] == usd("0.01")
        assert body["total"] == usd("24.336")
        # Someone else pays the plan's price.
        other = await client.post(
            "/v1/rating/preview", json=request(plan_id, customer_id=CustomerId.new())
        )
        assert other.json()["total"] == usd("84.336")

    async def test_no_usage_rates_each_charge_at_zero_and_minimums(
        self, client: httpx.AsyncClient, plan_id: PlanId
    ) -> None:
        response = await client.post("/v1/rating/preview", json=request(plan_id, usage=[]))
        assert response.status_code == 200, response.text
        assert line_amounts(response.json()) == [
            ("calls", "usage", "0", False),
            ("calls", "charge_minimum", "20", False),
            ("payments", "usage", "0", False),
        ]
        assert response.json()["total"] == usd("20")


class TestPreviewRefusals:
    async def test_unknown_plan_and_version(
        self, client: httpx.AsyncClient, plan_id: PlanId
    ) -> None:
        unknown = await client.post("/v1/rating/preview", json=request(PlanId.new()))
        assert_problem(unknown, 404, "plan_not_found")
        version = await client.post("/v1/rating/preview", json=request(plan_id, version=3))
        assert assert_problem(version, 404, "plan_version_not_found")["version"] == 3
        not_a_plan = await client.post("/v1/rating/preview", json=request(CustomerId.new()))
        assert_problem(not_a_plan, 422, "validation_failed")

    async def test_usage_of_a_meter_the_plan_does_not_charge(
        self, client: httpx.AsyncClient, plan_id: PlanId
    ) -> None:
        usage = [*USAGE, {"meter_key": "gpu_hours", "quantity": "3"}]
        response = await client.post("/v1/rating/preview", json=request(plan_id, usage=usage))
        assert assert_problem(response, 422, "unknown_meter_usage")["meter_keys"] == ["gpu_hours"]
        # Version 1 charges api calls only: storage usage is unknown to it.
        earlier = await client.post("/v1/rating/preview", json=request(plan_id, version=1))
        problem = assert_problem(earlier, 422, "unknown_meter_usage")
        assert problem["meter_keys"] == ["revenue", "storage_gb"]

    @pytest.mark.parametrize(
        ("record", "status", "code"),
        [
            ({"meter_key": "api_calls", "quantity": "-3"}, 422, "negative_quantity"),
            ({"meter_key": "api_calls", "quantity": "abc"}, 422, "validation_failed"),
            ({"meter_key": "api_calls", "quantity": 1.5}, 422, "validation_failed"),
            ({"meter_key": "api_calls", "quantity": "1e3"}, 422, "validation_failed"),
            ({"meter_key": "api_calls"}, 422, "validation_failed"),
            (
                {"meter_key": "revenue", "quantity": "10", "transactions": ["4", "5"]},
                422,
                "usage_inconsistent",
            ),
            (
                {"meter_key": "revenue", "quantity": "1", "transactions": ["-1", "2"]},
                422,
                "negative_quantity",
            ),
            (
                {"meter_key": "revenue", "quantity": "1", "transactions": ["0.0000000000001"]},
                422,
                "invalid_amount",
            ),
        ],
    )
    async def test_invalid_quantities(
        self,
        client: httpx.AsyncClient,
        plan_id: PlanId,
        record: dict[str, Any],
        status: int,
        code: str,
    ) -> None:
        response = await client.post("/v1/rating/preview", json=request(plan_id, usage=[record]))
        assert_problem(response, status, code)

    async def test_the_same_meter_and_group_twice(
        self, client: httpx.AsyncClient, plan_id: PlanId
    ) -> None:
        usage = [USAGE[0], {**USAGE[0], "quantity": "1"}]
        response = await client.post("/v1/rating/preview", json=request(plan_id, usage=usage))
        assert_problem(response, 422, "duplicate_usage")

    @pytest.mark.parametrize(
        ("start", "end", "code"),
        [
            (END, START, "invalid_period"),
            (START, START, "invalid_period"),
            ("2026-03-01T00:00:00", END, "validation_failed"),  # no timezone
        ],
    )
    async def test_invalid_periods(
        self, client: httpx.AsyncClient, plan_id: PlanId, start: str, end: str, code: str
    ) -> None:
        body = request(plan_id, period_start=start, period_end=end)
        assert_problem(await client.post("/v1/rating/preview", json=body), 422, code)

    async def test_a_request_without_tenant_is_refused(
        self, client: httpx.AsyncClient, plan_id: PlanId
    ) -> None:
        response = await client.post(
            "/v1/rating/preview", json=request(plan_id), headers={"x-tenant-id": ""}
        )
        assert_problem(response, 401, "unauthenticated")

    async def test_another_tenants_plan_is_unknown(
        self, client: httpx.AsyncClient, plan_id: PlanId
    ) -> None:
        response = await client.post(
            "/v1/rating/preview", json=request(plan_id), headers={"x-tenant-id": "ten_2"}
        )
        assert_problem(response, 404, "plan_not_found")
