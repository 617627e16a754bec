"""The routes as the gateway calls them: JSON in, JSON or problem+json out."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from billing_common.cycle import saga_id
from billing_common.http import TENANT_HEADER
from billing_common.ids import TestClockId
from billing_engine.clock import BillingClock

from .conftest import DatabaseOnlyRuntime, Feed, new_customer, new_subscription, utc

pytestmark = pytest.mark.service

PROBLEM = "application/problem+json"
OTHER_TENANT = {TENANT_HEADER: "ten_2"}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert (problem["code"], problem["status"]) == (code, status), problem
    return problem


async def created(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"frozen_time": "2026-01-15T00:00:00Z", **fields}
    response = await client.post("/v1/test_clocks", json=body)
    assert response.status_code == 201, response.text
    clock: dict[str, Any] = response.json()
    return clock


async def test_create_retrieve_and_list(client: httpx.AsyncClient) -> None:
    clock = await created(client, name="Annual plan", frozen_time="2026-01-15T01:00:00+01:00")
    assert clock["id"].startswith("clock_")
    assert clock == {
        "object": "test_clock",
        "id": clock["id"],
        "name": "Annual plan",
        "frozen_time": "2026-01-15T00:00:00Z",
        "status": "ready",
        "customer_count": 0,
        "sagas": {"pending": 0, "done": 0, "failed": 0},
        "created_at": clock["created_at"],
    }
    retrieved = await client.get(f"/v1/test_clocks/{clock['id']}")
    assert retrieved.status_code == 200
    assert retrieved.json() == clock

    second = await created(client)
    assert second["name"] is None
    first_page = await client.get("/v1/test_clocks", params={"limit": 1})
    assert first_page.status_code == 200
    page = first_page.json()
    assert ([c["id"] for c in page["data"]], page["has_more"]) == ([clock["id"]], True)
    rest = (
        await client.get("/v1/test_clocks", params={"starting_after": page["next_cursor"]})
    ).json()
    assert ([c["id"] for c in rest["data"]], rest["has_more"]) == ([second["id"]], False)
    assert (await client.get("/v1/test_clocks", headers=OTHER_TENANT)).json()["data"] == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"frozen_time": "2026-01-15T00:00:00"},  # no offset
        {"frozen_time": "soon"},
        {"frozen_time": "2026-01-15T00:00:00Z", "name": ""},
        {"frozen_time": "2026-01-15T00:00:00Z", "color": "red"},
    ],
)
async def test_create_validates(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    assert_problem(await client.post("/v1/test_clocks", json=body), 422, "validation_failed")


async def test_unknown_malformed_and_foreign_clocks(client: httpx.AsyncClient) -> None:
    unknown = TestClockId.new()
    assert_problem(await client.get(f"/v1/test_clocks/{unknown}"), 404, "test_clock_not_found")
    assert_problem(
        await client.post(
            f"/v1/test_clocks/{unknown}/advance", json={"to": "2027-01-01T00:00:00Z"}
        ),
        404,
        "test_clock_not_found",
    )
    assert_problem(
        await client.post(
            f"/v1/test_clocks/{unknown}/customers", json={"customer_id": new_customer()}
        ),
        404,
        "test_clock_not_found",
    )
    assert_problem(await client.get("/v1/test_clocks/cus_nope"), 422, "invalid_id")
    clock = await created(client)
    assert_problem(
        await client.get(f"/v1/test_clocks/{clock['id']}", headers=OTHER_TENANT),
        404,
        "test_clock_not_found",
    )
    no_tenant = await client.get(f"/v1/test_clocks/{clock['id']}", headers={TENANT_HEADER: ""})
    assert_problem(no_tenant, 401, "unauthenticated")


async def test_attach_customers(client: httpx.AsyncClient, feed: Feed) -> None:
    clock, other = await created(client), await created(client)
    customer = new_customer()
    await feed.customer(customer)
    attach = f"/v1/test_clocks/{clock['id']}/customers"
    response = await client.post(attach, json={"customer_id": customer})
    assert response.status_code == 200, response.text
    assert response.json()["customer_count"] == 1

    twice = await client.post(attach, json={"customer_id": customer})
    assert_problem(twice, 409, "customer_already_on_test_clock")
    elsewhere = await client.post(
        f"/v1/test_clocks/{other['id']}/customers", json={"customer_id": customer}
    )
    assert (
        assert_problem(elsewhere, 409, "customer_already_on_test_clock")["test_clock_id"]
        == (clock["id"])
    )

    unknown = await client.post(attach, json={"customer_id": new_customer()})
    assert assert_problem(unknown, 422, "unknown_customer")["errors"][0]["field"] == "customer_id"
    assert_problem(await client.post(attach, json={"customer_id": "x"}), 422, "validation_failed")

    subscribed = new_customer()
    await feed.customer(subscribed)
    await feed.subscription(new_subscription(), subscribed)
    late = await client.post(attach, json={"customer_id": subscribed})
    assert_problem(late, 409, "customer_has_subscriptions")
    assert (await client.get(f"/v1/test_clocks/{clock['id']}")).json()["customer_count"] == 1


async def test_advance_then_billing_runs(
    client: httpx.AsyncClient,
    feed: Feed,
    runtime: DatabaseOnlyRuntime,
    billing_clock: BillingClock,
) -> None:
    clock = await created(client)
    customer, sub = new_customer(), new_subscription()
    await feed.customer(customer)
    attached = await client.post(
        f"/v1/test_clocks/{clock['id']}/customers", json={"customer_id": customer}
    )
    assert attached.status_code == 200
    await feed.subscription(sub, customer, period=(utc(2026, 1), utc(2026, 2)))
    advance = f"/v1/test_clocks/{clock['id']}/advance"

    for to in ("2026-01-15T00:00:00Z", "2026-01-14T00:00:00Z"):
        backwards = await client.post(advance, json={"to": to})
        assert assert_problem(backwards, 422, "invalid_test_clock_advance")["errors"][0][
            "field"
        ] == ("to")
    assert_problem(await client.post(advance, json={}), 422, "validation_failed")

    moved = await client.post(advance, json={"to": "2026-02-01T00:00:00Z"})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["frozen_time"], moved.json()["status"]) == (
        "2026-02-01T00:00:00Z",
        "advancing",
    )
    tick = await billing_clock.tick(runtime)
    assert [w.subscription.subscription_id for w in tick.started] == [sub]
    shown = (await client.get(f"/v1/test_clocks/{clock['id']}")).json()
    assert (shown["status"], shown["sagas"]) == (
        "advancing",
        {"pending": 1, "done": 0, "failed": 0},
    )

    expected = saga_id(sub, utc(2026, 1))
    runs = await client.get("/v1/billing_runs", params={"test_clock_id": clock["id"]})
    assert runs.status_code == 200, runs.text
    (run,) = runs.json()["data"]
    assert run["saga_id"] == str(expected)
    assert (run["subscription_id"], run["status"], run["attempts"]) == (sub, "pending", 1)
    assert (run["period_start"], run["period_end"]) == (
        "2026-01-01T00:00:00Z",
        "2026-02-01T00:00:00Z",
    )
    assert (await client.get("/v1/billing_runs", params={"status": "done"})).json()["data"] == []
    one = await client.get(f"/v1/billing_runs/{expected}")
    assert one.json() == run
    assert_problem(
        await client.get(f"/v1/billing_runs/{expected}", headers=OTHER_TENANT),
        404,
        "billing_run_not_found",
    )
    assert_problem(
        await client.get(f"/v1/billing_runs/{uuid.uuid4()}"), 404, "billing_run_not_found"
    )
    assert_problem(await client.get("/v1/billing_runs/nope"), 422, "invalid_id")

    await feed.invoice(expected, customer)
    await feed.subscription(sub, customer, revision=2, period=(utc(2026, 2), utc(2026, 3)))
    ready = (await client.get(f"/v1/test_clocks/{clock['id']}")).json()
    assert (ready["status"], ready["sagas"]["done"]) == ("ready", 1)
    finished = (await client.get(f"/v1/billing_runs/{expected}")).json()
    assert (finished["status"], finished["invoice_id"]) == ("done", "inv_1")
