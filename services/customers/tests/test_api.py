"""The routes as the gateway calls them: JSON in, JSON or problem+json out."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from billing_common.ids import CustomerId

pytestmark = pytest.mark.service

PROBLEM = "application/problem+json"


def body(external_id: str, **fields: Any) -> dict[str, Any]:
    return {"external_id": external_id, "name": external_id.title(), "currency": "USD", **fields}


async def created(client: httpx.AsyncClient, external_id: str, **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/customers", json=body(external_id, **fields))
    assert response.status_code == 201, response.text
    customer: dict[str, Any] = response.json()
    return customer


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code, problem
    assert problem["status"] == status
    assert problem["type"].endswith("/" + code)
    return problem


async def test_create_patch_and_read_back(client: httpx.AsyncClient) -> None:
    customer = await created(
        client,
        "acme",
        billing_address={"line1": "1 Main St", "city": "Austin", "state": "TX", "country": "us"},
        tax_ids=[{"type": "us_ein", "value": "12-3456789"}],
        invoice_grace_period_days=5,
    )
    assert customer["object"] == "customer"
    assert customer["billing_address"] == {
        "line1": "1 Main St",
        "line2": None,
        "city": "Austin",
        "state": "TX",
        "postal_code": None,
        "country": "US",
    }
    assert customer["tax_ids"] == [{"type": "us_ein", "value": "12-3456789"}]
    assert customer["invoice_grace_period_days"] == 5
    assert (customer["parent_id"], customer["bill_to_parent"]) == (None, False)
    assert customer["updated_at"] == customer["created_at"]

    patched = await client.patch(
        f"/v1/customers/{customer['id']}", json={"name": "Acme Corp", "billing_address": None}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json() == {**customer, "name": "Acme Corp", "billing_address": None}
    retrieved = await client.get(f"/v1/customers/{customer['id']}")
    assert retrieved.json() == patched.json()


async def test_children_route_and_filter(client: httpx.AsyncClient) -> None:
    parent = await created(client, "parent")
    child = await created(client, "child", parent_id=parent["id"], bill_to_parent=True)
    await created(client, "loner")
    by_route = await client.get(f"/v1/customers/{parent['id']}/children", params={"limit": 1})
    assert by_route.status_code == 200, by_route.text
    assert [c["id"] for c in by_route.json()["data"]] == [child["id"]]
    assert by_route.json()["has_more"] is False
    by_filter = await client.get("/v1/customers", params={"parent_id": parent["id"]})
    assert by_filter.json()["data"] == by_route.json()["data"]
    assert_problem(
        await client.get(f"/v1/customers/{CustomerId.new()}/children"), 404, "customer_not_found"
    )
    assert_problem(await client.get("/v1/customers?parent_id=nope"), 422, "validation_failed")


async def test_every_create_refusal_has_its_code(client: httpx.AsyncClient) -> None:
    root = await created(client, "root")
    child = await created(client, "child", parent_id=root["id"])
    euro = await created(client, "euro", currency="EUR")
    refusals = [
        (body("root"), 409, "customer_external_id_taken"),
        (body("x", parent_id=str(CustomerId.new())), 422, "customer_parent_not_found"),
        (body("x", parent_id=euro["id"]), 422, "customer_parent_currency_mismatch"),
        (body("x", parent_id=child["id"]), 422, "customer_parent_is_child"),
        (body("x", bill_to_parent=True), 422, "customer_bill_to_parent_without_parent"),
        (
            body("x", billing_address={"line1": "a", "city": "b", "country": "UK"}),
            422,
            "invalid_country",
        ),
        (body("x", tax_ids=[{"type": "vat", "value": "1"}]), 422, "invalid_tax_id_type"),
        (body("x", tax_ids=[{"type": "gb_vat", "value": "1"}]), 422, "invalid_tax_id_value"),
        (
            body("x", tax_ids=[{"type": "us_ein", "value": "12-3456789"}] * 2),
            422,
            "duplicate_tax_id",
        ),
        (body("x", invoice_grace_period_days=31), 422, "validation_failed"),
    ]
    for request, status, code in refusals:
        assert_problem(await client.post("/v1/customers", json=request), status, code)
    listed = await client.get("/v1/customers")
    assert [c["external_id"] for c in listed.json()["data"]] == ["root", "child", "euro"]


async def test_every_update_refusal_has_its_code(client: httpx.AsyncClient) -> None:
    root = await created(client, "root")
    child = await created(client, "child", parent_id=root["id"], bill_to_parent=True)
    other = await created(client, "other")
    euro = await created(client, "euro", currency="EUR")
    refusals = [
        (other, {"currency": "EUR"}, 422, "customer_field_immutable"),
        (other, {"external_id": "root"}, 409, "customer_external_id_taken"),
        (other, {"parent_id": other["id"]}, 422, "customer_hierarchy_cycle"),
        (root, {"parent_id": child["id"]}, 422, "customer_hierarchy_cycle"),
        (root, {"parent_id": other["id"]}, 422, "customer_has_children"),
        (other, {"parent_id": child["id"]}, 422, "customer_parent_is_child"),
        (other, {"parent_id": euro["id"]}, 422, "customer_parent_currency_mismatch"),
        (other, {"parent_id": str(CustomerId.new())}, 422, "customer_parent_not_found"),
        (child, {"parent_id": None}, 422, "customer_bill_to_parent_without_parent"),
        (
            other,
            {"billing_address": {"line1": "a", "city": "b", "country": "XX"}},
            422,
            "invalid_country",
        ),
        (other, {"tax_ids": [{"type": "ssn", "value": "1"}]}, 422, "invalid_tax_id_type"),
        (other, {}, 422, "validation_failed"),
        (other, {"name": None}, 422, "validation_failed"),
    ]
    for customer, patch, status, code in refusals:
        response = await client.patch(f"/v1/customers/{customer['id']}", json=patch)
        problem = assert_problem(response, status, code)
        assert problem["instance"] == f"/v1/customers/{customer['id']}"
    for customer in (root, child, other, euro):
        unchanged = await client.get(f"/v1/customers/{customer['id']}")
        assert unchanged.json() == customer
    assert_problem(
        await client.patch(f"/v1/customers/{CustomerId.new()}", json={"name": "x"}),
        404,
        "customer_not_found",
    )
    assert_problem(
        await client.patch("/v1/customers/cus_123", json={"name": "x"}), 422, "invalid_id"
    )
