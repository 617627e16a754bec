from __future__ import annotations

from typing import Any

import httpx
import pytest

from billing_common.ids import CustomerId, PlanId

pytestmark = pytest.mark.service

PROBLEM = "application/problem+json"


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


def tiers(*rows: tuple[str, str | None, str]) -> dict[str, Any]:
    return {
        "model": "graduated",
        "tiers": [
            {"from_units": start, "up_to": end, "unit_price": usd(price)}
            for start, end, price in rows
        ],
    }


GRADUATED = tiers(("0", "100", "0.10"), ("100", None, "0.05"))


def plan(*charges: dict[str, Any], code: str = "pro", **changes: Any) -> dict[str, Any]:
    return {
        "code": code,
        "name": "Pro",
        "currency": "USD",
        "interval": "month",
        "base_fee": usd("49"),
        "charges": list(charges),
        **changes,
    }


def charge(price: dict[str, Any], meter: str = "api_calls", **changes: Any) -> dict[str, Any]:
    return {"key": "usage", "meter_key": meter, "price": price, **changes}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code, problem
    assert problem["status"] == status
    assert problem["type"].endswith("/" + code)
    return problem


class TestPlans:
    async def test_create_then_read_version_and_list(self, client: httpx.AsyncClient) -> None:
        created = await client.post("/v1/plans", json=plan(charge(GRADUATED)))
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["object"] == "plan"
        assert body["version"] == 1
        assert body["meter_keys"] == ["api_calls"]
        assert body["base_fee"] == {"amount": "49", "currency": "USD"}
        assert body["charges"][0]["price"]["tiers"][1] == {
            "from_units": "100",
            "up_to": None,
            "unit_price": {"amount": "0.05", "currency": "USD"},
            "flat_fee": None,
        }
        plan_id = body["id"]
        assert (await client.get(f"/v1/plans/{plan_id}")).json() == body
        assert (await client.get(f"/v1/plans/{plan_id}/versions/1")).json() == body
        listed = (await client.get("/v1/plans", params={"limit": "5"})).json()
        assert [p["id"] for p in listed["data"]] == [plan_id]

    async def test_versions_and_migrations(self, client: httpx.AsyncClient) -> None:
        plan_id = (await client.post("/v1/plans", json=plan(charge(GRADUATED)))).json()["id"]
        new_body = {k: v for k, v in plan(charge(GRADUATED), name="Pro 2").items() if k != "code"}
        published = await client.post(f"/v1/plans/{plan_id}/versions", json=new_body)
        assert published.status_code == 201, published.text
        assert (published.json()["version"], published.json()["name"]) == (2, "Pro 2")
        assert (await client.get(f"/v1/plans/{plan_id}/versions/1")).json()["name"] == "Pro"
        assert_problem(
            await client.get(f"/v1/plans/{plan_id}/versions/3"), 404, "plan_version_not_found"
        )
        assert_problem(
            await client.get(f"/v1/plans/{plan_id}/versions/x"), 404, "plan_version_not_found"
        )
        migration = await client.post(
            f"/v1/plans/{plan_id}/migrations",
            json={"from_version": 1, "to_version": 2, "effective_at": "2026-05-01T00:00:00Z"},
        )
        assert migration.status_code == 201, migration.text
        assert migration.json()["effective_at"] == "2026-05-01T00:00:00Z"
        listed = (await client.get(f"/v1/plans/{plan_id}/migrations")).json()
        assert [m["id"] for m in listed["data"]] == [migration.json()["id"]]
        past = await client.post(
            f"/v1/plans/{plan_id}/migrations",
            json={"from_version": 1, "to_version": 2, "effective_at": "2026-01-01T00:00:00Z"},
        )
        assert_problem(past, 422, "migration_in_past")

    async def test_overrides(self, client: httpx.AsyncClient) -> None:
        plan_id = (await client.post("/v1/plans", json=plan(charge(GRADUATED)))).json()["id"]
        customer = CustomerId.new()
        request = {
            "customer_id": customer,
            "charge_key": "usage",
            "price": {"model": "per_unit", "unit_price": usd("0.01")},
        }
        created = await client.post(f"/v1/plans/{plan_id}/overrides", json=request)
        assert created.status_code == 201, created.text
        assert created.json()["price"]["unit_price"] == {"amount": "0.01", "currency": "USD"}
        listed = (await client.get(f"/v1/plans/{plan_id}/overrides")).json()
        assert [o["customer_id"] for o in listed["data"]] == [customer]
        unknown = await client.post(
            f"/v1/plans/{plan_id}/overrides", json={**request, "charge_key": "other"}
        )
        assert_problem(unknown, 422, "unknown_charge")
        eur = {"model": "per_unit", "unit_price": {"amount": "1", "currency": "EUR"}}
        mismatch = await client.post(
            f"/v1/plans/{plan_id}/overrides", json={**request, "price": eur}
        )
        assert_problem(mismatch, 422, "currency_mismatch")

    async def test_unknown_plan(self, client: httpx.AsyncClient) -> None:
        assert_problem(await client.get(f"/v1/plans/{PlanId.new()}"), 404, "plan_not_found")
        assert_problem(await client.get("/v1/plans/cus_1"), 422, "invalid_id")


class TestPlanRefusals:
    @pytest.mark.parametrize(
        ("rows", "code"),
        [
            ((("0", "100", "0.1"), ("150", None, "0.05")), "tiers_not_contiguous"),
            ((("0", "100", "0.1"), ("50", None, "0.05")), "tier_overlap"),
            (
                (("0", "100", "0.1"), ("200", None, "0.05"), ("100", "200", "0.07")),
                "tiers_unsorted",
            ),
            ((("0", "100", "0.1"), ("100", None, "-0.05")), "negative_price"),
            ((("0", "100", "0.1"),), "last_tier_not_open"),
        ],
    )
    async def test_invalid_tier_tables(
        self, client: httpx.AsyncClient, rows: tuple[tuple[str, str | None, str], ...], code: str
    ) -> None:
        response = await client.post("/v1/plans", json=plan(charge(tiers(*rows))))
        problem = assert_problem(response, 422, code)
        assert problem["charge"] == "usage"
        assert problem["detail"].startswith("charge 'usage': ")
        assert (await client.get("/v1/plans")).json()["data"] == []

    @pytest.mark.parametrize(
        ("body", "code"),
        [
            (plan(charge(GRADUATED, "nope")), "unknown_meter"),
            (plan(charge(GRADUATED, "old")), "meter_archived"),
            (
                plan(charge(GRADUATED, "peak_cpu", billing="in_advance")),
                "advance_requires_count_or_sum_meter",
            ),
            (
                plan(
                    charge({"model": "per_unit", "unit_price": {"amount": "1", "currency": "EUR"}})
                ),
                "currency_mismatch",
            ),
            (
                plan(charge(GRADUATED), base_fee={"amount": "5", "currency": "EUR"}),
                "currency_mismatch",
            ),
            (
                plan(
                    charge(
                        {
                            "model": "matrix",
                            "dimensions": ["colour"],
                            "default": {"model": "per_unit", "unit_price": usd("1")},
                        }
                    )
                ),
                "matrix_dimension_not_in_meter",
            ),
            (plan(charge(GRADUATED), charge(GRADUATED)), "duplicate_charge"),
        ],
    )
    async def test_refusals(
        self, client: httpx.AsyncClient, body: dict[str, Any], code: str
    ) -> None:
        assert_problem(await client.post("/v1/plans", json=body), 422, code)

    async def test_a_duplicate_code_is_a_conflict(self, client: httpx.AsyncClient) -> None:
        assert (await client.post("/v1/plans", json=plan())).status_code == 201
        assert_problem(await client.post("/v1/plans", json=plan()), 409, "plan_code_taken")

    async def test_a_float_amount_is_a_validation_problem(self, client: httpx.AsyncClient) -> None:
        body = plan(charge({"model": "package", "package_size": 100.0, "package_price": usd("5")}))
        problem = assert_problem(
            await client.post("/v1/plans", json=body), 422, "validation_failed"
        )
        assert any("package_size" in error["field"] for error in problem["errors"])

    async def test_a_request_without_tenant_is_refused(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/v1/plans", headers={"x-tenant-id": ""})
        assert_problem(response, 401, "unauthenticated")


class TestProductsAndCoupons:
    async def test_products(self, client: httpx.AsyncClient) -> None:
        created = await client.post("/v1/products", json={"name": "API", "metadata": {"a": "b"}})
        assert created.status_code == 201, created.text
        product = created.json()
        assert (await client.get(f"/v1/products/{product['id']}")).json() == product
        assert (await client.get("/v1/products")).json()["data"] == [product]
        with_product = await client.post("/v1/plans", json=plan(product_id=product["id"]))
        assert with_product.json()["product_id"] == product["id"]

    async def test_coupons(self, client: httpx.AsyncClient) -> None:
        created = await client.post(
            "/v1/coupons",
            json={"code": "TEN", "name": "10 %", "percent_off": "10", "duration": "forever"},
        )
        assert created.status_code == 201, created.text
        coupon = created.json()
        assert coupon["percent_off"] == "10"
        assert (await client.get(f"/v1/coupons/{coupon['id']}")).json() == coupon
        assert (await client.get("/v1/coupons")).json()["data"] == [coupon]
        plan_id = (await client.post("/v1/plans", json=plan())).json()["id"]
        eur = await client.post(
            "/v1/coupons",
            json={
                "code": "EUR",
                "name": "5 EUR",
                "amount_off": {"amount": "5", "currency": "EUR"},
                "duration": "once",
                "plan_ids": [plan_id],
            },
        )
        assert_problem(eur, 422, "currency_mismatch")
        both = await client.post(
            "/v1/coupons",
            json={
                "code": "B",
                "name": "b",
                "percent_off": "5",
                "amount_off": usd("1"),
                "duration": "once",
            },
        )
        assert_problem(both, 422, "invalid_coupon_discount")
        repeating = await client.post(
            "/v1/coupons",
            json={"code": "R", "name": "r", "percent_off": "5", "duration": "repeating"},
        )
        assert_problem(repeating, 422, "invalid_coupon_duration")
