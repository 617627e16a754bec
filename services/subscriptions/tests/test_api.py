from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from billing_common.db import Pool
from billing_common.http import TENANT_HEADER
from billing_common.ids import CustomerId, PlanId, SubscriptionId
from billing_subscriptions.events import BILLING_EFFECTS_RECORDED, SUBSCRIPTION_UPDATED

from .conftest import NOW, Catalog, Clock

pytestmark = pytest.mark.service

PROBLEM = "application/problem+json"
APRIL_21 = datetime(2026, 4, 21, 10, 0, tzinfo=UTC)


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code, problem
    assert problem["status"] == status
    assert problem["type"].endswith("/" + code)
    return problem


async def create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/subscriptions", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


class TestCreateAndRead:
    async def test_create_then_retrieve_and_list(
        self, client: httpx.AsyncClient, catalog: Catalog
    ) -> None:
        body = await create(
            client,
            customer_id=catalog.alice,
            plan_id=catalog.basic,
            plan_version=1,
            external_id="team-42",
        )
        assert body["object"] == "subscription"
        assert body["status"] == "active"
        assert body["external_id"] == "team-42"
        assert body["base_fee"] == {"amount": "30", "currency": "USD"}
        assert body["current_period_fee"] == {"amount": "20", "currency": "USD"}
        assert body["current_period_start"] == "2026-04-11T10:00:00Z"
        assert body["current_period_end"] == "2026-05-01T00:00:00Z"
        assert body["billing_anchor"] == "calendar"
        assert body["cancel_at"] is None
        retrieved = await client.get(f"/v1/subscriptions/{body['id']}")
        assert retrieved.status_code == 200
        assert retrieved.json() == body
        listed = await client.get(
            "/v1/subscriptions", params={"customer_id": catalog.alice, "status": "active"}
        )
        assert listed.json() == {
            "object": "list",
            "data": [body],
            "has_more": False,
            "next_cursor": None,
        }
        none = await client.get("/v1/subscriptions", params={"status": "paused"})
        assert none.json()["data"] == []

    async def test_a_date_start_and_anniversary_anchor(
        self, client: httpx.AsyncClient, catalog: Catalog
    ) -> None:
        body = await create(
            client,
            customer_id=catalog.bruno,
            plan_id=catalog.pro,
            start="2026-05-15",
            billing_anchor="anniversary",
        )
        assert body["billing_starts_at"] == "2026-05-14T22:00:00Z"
        assert body["current_period_end"] == "2026-06-14T22:00:00Z"

    async def test_pages_follow_creation_order(
        self, client: httpx.AsyncClient, catalog: Catalog
    ) -> None:
        ids = [(await create(client, customer_id=catalog.alice, plan_id=catalog.pro))["id"]]
        ids.append((await create(client, customer_id=catalog.alice, plan_id=catalog.pro))["id"])
        first = (await client.get("/v1/subscriptions", params={"limit": "1"})).json()
        assert ([s["id"] for s in first["data"]], first["has_more"]) == ([ids[0]], True)
        rest = (
            await client.get("/v1/subscriptions", params={"starting_after": first["next_cursor"]})
        ).json()
        assert [s["id"] for s in rest["data"]] == [ids[1]]

    @pytest.mark.parametrize(
        ("body", "status", "code"),
        [
            ({"customer_id": "unknown", "plan_id": "plan"}, 422, "validation_failed"),
            ({"plan_id": None}, 422, "validation_failed"),
            ({"start": "tomorrow"}, 422, "validation_failed"),
            ({"billing_anchor": "weekly"}, 422, "validation_failed"),
            ({"trial_days": -1}, 422, "validation_failed"),
            ({"surprise": True}, 422, "validation_failed"),
        ],
    )
    async def test_invalid_bodies_are_422_problems(
        self,
        client: httpx.AsyncClient,
        catalog: Catalog,
        body: dict[str, Any],
        status: int,
        code: str,
    ) -> None:
        full = {"customer_id": catalog.alice, "plan_id": catalog.pro, **body}
        assert_problem(await client.post("/v1/subscriptions", json=full), status, code)

    async def test_unknown_references_and_currency_mismatch_are_specific_422s(
        self, client: httpx.AsyncClient, catalog: Catalog
    ) -> None:
        unknown_customer = await client.post(
            "/v1/subscriptions", json={"customer_id": CustomerId.new(), "plan_id": catalog.pro}
        )
        problem = assert_problem(unknown_customer, 422, "unknown_customer")
        assert problem["errors"][0]["field"] == "customer_id"
        unknown_plan = await client.post(
            "/v1/subscriptions", json={"customer_id": catalog.alice, "plan_id": PlanId.new()}
        )
        assert_problem(unknown_plan, 422, "unknown_plan")
        unknown_version = await client.post(
            "/v1/subscriptions",
            json={"customer_id": catalog.alice, "plan_id": catalog.pro, "plan_version": 7},
        )
        assert_problem(unknown_version, 422, "unknown_plan_version")
        mismatch = await client.post(
            "/v1/subscriptions", json={"customer_id": catalog.chloe, "plan_id": catalog.pro}
        )
        problem = assert_problem(mismatch, 422, "subscription_currency_mismatch")
        assert (problem["customer_currency"], problem["plan_currency"]) == ("EUR", "USD")

    async def test_a_taken_external_id_is_409(
        self, client: httpx.AsyncClient, catalog: Catalog
    ) -> None:
        body = {"customer_id": catalog.alice, "plan_id": catalog.pro, "external_id": "x"}
        assert (await client.post("/v1/subscriptions", json=body)).status_code == 201
        taken = await client.post("/v1/subscriptions", json=body)
        assert_problem(taken, 409, "subscription_external_id_taken")

    async def test_unknown_and_malformed_ids(self, client: httpx.AsyncClient) -> None:
        assert_problem(
            await client.get(f"/v1/subscriptions/{SubscriptionId.new()}"),
            404,
            "subscription_not_found",
        )
        assert_problem(await client.get("/v1/subscriptions/cus_nope"), 422, "invalid_id")
        assert_problem(
            await client.post(f"/v1/subscriptions/{SubscriptionId.new()}/pause"),
            404,
            "subscription_not_found",
        )

    async def test_requests_without_a_tenant_are_refused(
        self, client: httpx.AsyncClient, catalog: Catalog
    ) -> None:
        response = await client.get("/v1/subscriptions", headers={TENANT_HEADER: ""})
        assert_problem(response, 401, "unauthenticated")

    async def test_tenants_see_only_their_subscriptions(
        self, client: httpx.AsyncClient, catalog: Catalog
    ) -> None:
        body = await create(client, customer_id=catalog.alice, plan_id=catalog.pro)
        other = await client.get(f"/v1/subscriptions/{body['id']}", headers={TENANT_HEADER: "t2"})
        assert_problem(other, 404, "subscription_not_found")
        unknown_there = await client.post(
            "/v1/subscriptions",
            json={"customer_id": catalog.alice, "plan_id": catalog.pro},
            headers={TENANT_HEADER: "t2"},
        )
        assert_problem(unknown_there, 422, "unknown_customer")


class TestTransitions:
    async def test_pause_resume_cancel_with_the_clock_of_the_runtime(
        self,
        client: httpx.AsyncClient,
        catalog: Catalog,
        clock: Clock,
        subscriptions_pool: Pool,
    ) -> None:
        sub = await create(client, customer_id=catalog.alice, plan_id=catalog.basic, plan_version=1)
        url = f"/v1/subscriptions/{sub['id']}"
        clock.now = APRIL_21
        paused = await client.post(f"{url}/pause")
        assert paused.status_code == 200, paused.text
        assert (paused.json()["status"], paused.json()["paused_at"]) == (
            "paused",
            "2026-04-21T10:00:00Z",
        )
        assert_problem(await client.post(f"{url}/pause"), 409, "invalid_subscription_transition")
        resumed = await client.post(f"{url}/resume")
        assert resumed.json()["status"] == "active"
        pending = await client.post(f"{url}/cancel", json={"at": "period_end"})
        assert (pending.json()["status"], pending.json()["cancel_at"]) == (
            "active",
            "2026-05-01T00:00:00Z",
        )
        canceled = await client.post(f"{url}/cancel", json={"at": "now"})
        assert (canceled.json()["status"], canceled.json()["canceled_at"]) == (
            "canceled",
            "2026-04-21T10:00:00Z",
        )
        again = await client.post(f"{url}/cancel", json={})
        problem = assert_problem(again, 409, "invalid_subscription_transition")
        assert (problem["action"], problem["from_status"], problem["to_status"]) == (
            "cancel_now",
            "canceled",
            "canceled",
        )
        assert (await client.get(url)).json() == canceled.json()

        rows = await subscriptions_pool.fetch("SELECT topic, payload FROM outbox ORDER BY seq")
        actions = [
            SUBSCRIPTION_UPDATED.parse(bytes(row["payload"])).data.transition.action
            for row in rows
            if row["topic"] == SUBSCRIPTION_UPDATED.name
        ]
        assert actions == ["pause", "resume", "cancel_at_period_end", "cancel_now"]
        billed = [
            BILLING_EFFECTS_RECORDED.parse(bytes(row["payload"])).data
            for row in rows
            if row["topic"] == BILLING_EFFECTS_RECORDED.name
        ]
        assert [(b.action, b.net.amount) for b in billed] == [
            ("start", 20 * 10**12),
            ("pause", -10 * 10**12),
            ("resume", 10 * 10**12),  # resumed the same day: the whole rest again
            ("cancel_now", -10 * 10**12),
        ]

    async def test_change_plan(
        self, client: httpx.AsyncClient, catalog: Catalog, clock: Clock
    ) -> None:
        sub = await create(client, customer_id=catalog.alice, plan_id=catalog.basic, plan_version=1)
        url = f"/v1/subscriptions/{sub['id']}"
        clock.now = APRIL_21
        upgraded = await client.post(f"{url}/change_plan", json={"plan_id": catalog.pro})
        assert upgraded.status_code == 200, upgraded.text
        assert (upgraded.json()["plan_id"], upgraded.json()["plan_version"]) == (catalog.pro, 1)
        scheduled = await client.post(
            f"{url}/change_plan",
            json={"plan_id": catalog.basic, "plan_version": 1, "when": "period_end"},
        )
        assert (scheduled.json()["plan_id"], scheduled.json()["scheduled_plan_id"]) == (
            catalog.pro,
            catalog.basic,
        )
        assert scheduled.json()["scheduled_plan_version"] == 1
        euro = await client.post(f"{url}/change_plan", json={"plan_id": catalog.euro})
        assert_problem(euro, 422, "invalid_plan_change")
        unknown = await client.post(f"{url}/change_plan", json={"plan_id": PlanId.new()})
        assert_problem(unknown, 422, "unknown_plan")
        same = await client.post(f"{url}/change_plan", json={"plan_id": catalog.pro})
        assert_problem(same, 422, "invalid_plan_change")
        bad_when = await client.post(
            f"{url}/change_plan", json={"plan_id": catalog.pro, "when": "later"}
        )
        assert_problem(bad_when, 422, "validation_failed")

    async def test_an_instant_outside_the_period_is_409(
        self, client: httpx.AsyncClient, catalog: Catalog, clock: Clock
    ) -> None:
        sub = await create(
            client, customer_id=catalog.alice, plan_id=catalog.pro, start="2026-06-01"
        )
        assert sub["current_period_start"] == "2026-06-01T00:00:00Z"
        clock.now = NOW  # before the subscription's first period
        paused = await client.post(f"/v1/subscriptions/{sub['id']}/pause")
        assert_problem(paused, 409, "instant_outside_current_period")


class TestPolicy:
    async def test_get_defaults_put_then_get(self, client: httpx.AsyncClient) -> None:
        defaults = await client.get("/v1/subscription_policy")
        assert defaults.json() == {
            "object": "subscription_policy",
            "prorate_first_calendar_period": True,
            "proration_granularity": "days",
            "upgrade_rule": "higher_base_fee",
            "downgrade_timing": "period_end",
            "prorate_on_cancel": True,
        }
        put = await client.put(
            "/v1/subscription_policy",
            json={"proration_granularity": "seconds", "prorate_on_cancel": False},
        )
        assert put.status_code == 200, put.text
        expected = {
            **defaults.json(),
            "proration_granularity": "seconds",
            "prorate_on_cancel": False,
        }
        assert put.json() == expected
        assert (await client.get("/v1/subscription_policy")).json() == expected
        other = await client.get("/v1/subscription_policy", headers={TENANT_HEADER: "t2"})
        assert other.json() == defaults.json()

    async def test_an_invalid_policy_is_422(self, client: httpx.AsyncClient) -> None:
        bad = await client.put("/v1/subscription_policy", json={"upgrade_rule": "vibes"})
        problem = assert_problem(bad, 422, "validation_failed")
        assert problem["errors"][0]["field"] == "upgrade_rule"
        unknown = await client.put("/v1/subscription_policy", json={"object": "x"})
        assert_problem(unknown, 422, "validation_failed")

    async def test_the_policy_applies_to_later_transitions(
        self, client: httpx.AsyncClient, catalog: Catalog, clock: Clock
    ) -> None:
        await client.put("/v1/subscription_policy", json={"downgrade_timing": "now"})
        sub = await create(client, customer_id=catalog.alice, plan_id=catalog.pro)
        clock.now = APRIL_21
        downgraded = await client.post(
            f"/v1/subscriptions/{sub['id']}/change_plan",
            json={"plan_id": catalog.basic, "plan_version": 1},
        )
        body = downgraded.json()
        assert (body["plan_id"], body["scheduled_plan_id"]) == (catalog.basic, None)
