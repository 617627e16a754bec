"""Usage ingestion end to end: HTTP batches → gateway → Kafka → metering → ClickHouse.

100,000 events through the public API, with 2 % duplicates resent in other batches,
1 % invalid, 5 % late, and 1,000 for a customer created only after its events were
sent; metering is SIGKILLed mid-stream and restarted. The usage the API returns must
equal what this test computes on its own from what it sent, exactly.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing_common.ids import uuid7
from tests.e2e.support import Api, Services, assert_problem, eventually

pytestmark = pytest.mark.e2e

TOTAL_EVENTS = 100_000
BATCH = 1000
CUSTOMERS = 20
LATE_CUSTOMER_EVENTS = 1000


@dataclass
class Expected:
    """What the test sent and must get back: per customer id, per meter."""

    calls: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    bytes: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    peak: dict[str, Decimal] = field(default_factory=dict)
    users: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def add(self, customer: str, event: dict[str, Any]) -> None:
        region = event["properties"]["region"]
        by_region = self.calls[customer]
        by_region[region] = by_region.get(region, 0) + 1
        value = Decimal(event["properties"]["bytes"])
        self.bytes[customer] += value
        self.peak[customer] = max(self.peak.get(customer, value), value)
        self.users[customer].add(event["properties"]["user"])


@pytest.fixture(scope="module")
def suffix() -> str:
    return uuid7().hex[-8:]


@pytest.fixture(scope="module")
def meters(api: Api, suffix: str) -> dict[str, str]:
    """The test's own meters (the tenant is shared with other tests)."""
    keys = {name: f"{name}_{suffix}" for name in ("calls", "bytes", "peak", "users")}
    bodies: list[dict[str, Any]] = [
        {"key": keys["calls"], "aggregation": "count", "group_by": ["region"]},
        {"key": keys["bytes"], "aggregation": "sum", "value_property": "bytes"},
        {"key": keys["peak"], "aggregation": "max", "value_property": "bytes"},
        {"key": keys["users"], "aggregation": "unique_count", "value_property": "user"},
    ]
    for body in bodies:
        response = api.client.post(
            "/v1/meters",
            json={"name": body["key"], "event_types": [f"api.request.{suffix}"], **body},
        )
        assert response.status_code == 201, response.text
    return keys


def batches(events: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(events), BATCH):
        yield events[start : start + BATCH]


def test_100k_events_with_repeats_bad_late_unknown_and_a_sigkill_are_counted_exactly(
    api: Api, services: Services, meters: dict[str, str], suffix: str
) -> None:
    rng = random.Random(20261126)
    now = datetime.now(UTC)
    customers = [
        api.created_customer(
            {"external_id": f"usage-{suffix}-{i}", "name": f"Usage {i}", "currency": "USD"}
        )
        for i in range(CUSTOMERS)
    ]
    # Half the customers are named by our id, half by their external id.
    references = {
        c["id"]: (c["id"] if i % 2 else c["external_id"]) for i, c in enumerate(customers)
    }
    late_external_id = f"usage-{suffix}-late"
    expected = Expected()
    events: list[dict[str, Any]] = []
    invalid: list[int] = []
    for n in range(TOTAL_EVENTS - LATE_CUSTOMER_EVENTS):
        customer = customers[rng.randrange(CUSTOMERS)]["id"]
        age = timedelta(days=rng.randint(1, 20)) if rng.random() < 0.05 else timedelta(0)
        event = {
            "id": f"evt-{n}",
            "customer": references[customer],
            "type": f"api.request.{suffix}",
            "timestamp": (now - age - timedelta(seconds=rng.randrange(3600))).isoformat(),
            "properties": {
                "region": rng.choice(["eu", "us", "ap"]),
                # Exact decimals a float would not keep.
                "bytes": f"{rng.randrange(1, 10**6)}.{rng.randrange(10**12):012d}",
                "user": f"user-{rng.randrange(500)}",
            },
        }
        if rng.random() < 0.01:  # invalid: rejected by the gateway, never counted
            event["timestamp"] = (now - timedelta(days=40)).isoformat()
            invalid.append(n)
        else:
            expected.add(customer, event)
        events.append(event)
    late_customer_events = [
        {
            "id": f"late-{n}",
            "customer": late_external_id,
            "type": f"api.request.{suffix}",
            "timestamp": (now - timedelta(seconds=n)).isoformat(),
            "properties": {"region": "eu", "bytes": "0.5", "user": f"late-{n % 7}"},
        }
        for n in range(LATE_CUSTOMER_EVENTS)
    ]
    events.extend(late_customer_events)
    rng.shuffle(events)
    # 2 % duplicates of valid events, resent in later batches than their originals.
    cutoff = (now - timedelta(days=35)).isoformat()
    events.extend(rng.sample([e for e in events if e["timestamp"] > cutoff], TOTAL_EVENTS // 50))

    rejected_codes: dict[str, int] = defaultdict(int)
    accepted = 0

    def send(batch: list[dict[str, Any]]) -> None:
        nonlocal accepted
        response = api.client.post("/v1/events", json=batch)
        assert response.status_code == 202, response.text
        body = response.json()
        accepted += body["accepted"]
        for reject in body["rejected"]:
            assert reject["message"]
            rejected_codes[reject["code"]] += 1

    all_batches = list(batches(events))
    kill_at = len(all_batches) * 2 // 5
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(send, all_batches[:kill_at]))
        services.kill("metering")  # mid-stream: the gateway keeps accepting meanwhile
        list(pool.map(send, all_batches[kill_at : kill_at * 3 // 2]))
        services.restart("metering")
        list(pool.map(send, all_batches[kill_at * 3 // 2 :]))

    assert dict(rejected_codes) == {"timestamp_too_old": len(invalid)}
    assert accepted == len(events) - sum(rejected_codes.values())

    late_customer = api.created_customer(
        {"external_id": late_external_id, "name": "Late", "currency": "USD"}
    )
    for event in late_customer_events:
        expected.add(late_customer["id"], event)

    start = (now - timedelta(days=36)).replace(minute=0, second=0, microsecond=0)
    end = (now + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)

    def usage(meter: str, customer: str, **params: str) -> list[dict[str, Any]]:
        response = api.client.get(
            f"/v1/meters/{meter}/usage",
            params={
                "customer": customer,
                "from": start.isoformat(),
                "to": end.isoformat(),
                **params,
            },
        )
        assert response.status_code == 200, response.text
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    everyone = [*customers, late_customer]

    def all_counted() -> None:
        for customer in everyone:
            customer_id = customer["id"]
            calls = {
                p["group"]["region"]: int(p["value"])
                for p in usage(meters["calls"], customer_id, source="store")
            }
            assert calls == expected.calls[customer_id], customer_id

    eventually(all_counted, timeout=180, interval=1.0)
    for customer in everyone:
        customer_id = customer["id"]
        [total] = usage(meters["bytes"], customer_id)
        assert Decimal(total["value"]) == expected.bytes[customer_id]
        [peak] = usage(meters["peak"], customer_id)
        assert Decimal(peak["value"]) == expected.peak[customer_id]
        [users] = usage(meters["users"], customer_id)
        assert int(users["value"]) == len(expected.users[customer_id])


def test_the_accumulators_agree_with_the_store_for_the_current_month(
    api: Api, meters: dict[str, str], suffix: str
) -> None:
    customer = api.created_customer(
        {"external_id": f"acc-{suffix}", "name": "Accumulated", "currency": "USD"}
    )
    now = datetime.now(UTC)
    month = datetime(now.year, now.month, 1, tzinfo=UTC)
    next_month = (month + timedelta(days=32)).replace(day=1)
    events = [
        {
            "id": f"acc-{n}",
            "customer": customer["id"],
            "type": f"api.request.{suffix}",
            "timestamp": max(month, now - timedelta(minutes=n)).isoformat(),
            "properties": {"region": ["eu", "us"][n % 2], "bytes": f"{n}.25", "user": f"u{n % 9}"},
        }
        for n in range(300)
    ]
    response = api.client.post("/v1/events", json=events)
    assert response.status_code == 202, response.text
    query = {"customer": customer["id"], "from": month.isoformat(), "to": next_month.isoformat()}

    def both(meter: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        answers = []
        for source in ("store", "accumulator"):
            response = api.client.get(
                f"/v1/meters/{meter}/usage", params={**query, "source": source}
            )
            assert response.status_code == 200, response.text
            assert response.json()["source"] == source
            answers.append(response.json()["data"])
        return answers[0], answers[1]

    def calls_arrived() -> None:
        store, accumulator = both(meters["calls"])
        assert sum(int(p["value"]) for p in store) == 300
        assert accumulator == store

    eventually(calls_arrived, timeout=60)
    for key in ("bytes", "peak", "users"):
        store, accumulator = both(meters[key])
        assert accumulator == store, key
    automatic = api.client.get(f"/v1/meters/{meters['bytes']}/usage", params=query).json()
    assert automatic["source"] == "accumulator"
    assert Decimal(automatic["data"][0]["value"]) == sum(Decimal(f"{n}.25") for n in range(300))

    windowed = api.client.get(
        f"/v1/meters/{meters['bytes']}/usage",
        params={**query, "window_size": "day", "source": "accumulator"},
    )
    assert_problem(windowed, 422, "accumulator_not_applicable")


def test_usage_queries_refuse_bad_input_with_problems(api: Api, meters: dict[str, str]) -> None:
    now = datetime.now(UTC).isoformat()
    cases = [
        ("/v1/meters/nope_nope/usage", {"from": now, "to": now}, 404, "meter_not_found"),
        (f"/v1/meters/{meters['calls']}/usage", {"to": now}, 422, "validation_failed"),
        (
            f"/v1/meters/{meters['calls']}/usage",
            {"from": now, "to": now, "customer": "nobody-at-all"},
            404,
            "customer_not_found",
        ),
        (
            f"/v1/meters/{meters['calls']}/usage",
            {"from": now, "to": now, "group": "region"},
            422,
            "validation_failed",
        ),
    ]
    for path, params, status, code in cases:
        assert_problem(api.client.get(path, params=params), status, code)


def test_meters_are_managed_through_the_api(api: Api, suffix: str) -> None:
    key = f"seats_{suffix}"
    created = api.client.post(
        "/v1/meters",
        json={
            "key": key,
            "name": "Seats",
            "event_types": ["seat"],
            "aggregation": "unique_count",
            "value_property": "seat",
            "operation_property": "op",
            "carry_over": True,
        },
    )
    assert created.status_code == 201, created.text
    assert_problem(
        api.client.post("/v1/meters", json=created.json() | {"object": None}),
        422,
        "validation_failed",
    )
    renamed = api.client.patch(f"/v1/meters/{key}", json={"name": "Seats in use"})
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["version"]) == ("Seats in use", 2)
    assert_problem(
        api.client.patch(f"/v1/meters/{key}", json={"aggregation": "count"}),
        422,
        "meter_field_immutable",
    )
    assert_problem(
        api.client.post(
            "/v1/meters",
            json={"key": "Bad Key", "name": "x", "event_types": ["t"], "aggregation": "count"},
        ),
        422,
        "invalid_meter_key",
    )
    assert_problem(
        api.client.post(
            "/v1/meters",
            json={"key": f"s_{suffix}", "name": "x", "event_types": ["t"], "aggregation": "sum"},
        ),
        422,
        "value_property_required",
    )
    archived = api.client.delete(f"/v1/meters/{key}")
    assert archived.status_code == 200, archived.text
    assert archived.json()["archived"] is True
    listed = api.client.get("/v1/meters").json()["data"]
    assert key not in [meter["key"] for meter in listed]
    assert api.client.get(f"/v1/meters/{key}").json()["archived"] is True
