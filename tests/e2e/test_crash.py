"""Crash tests: SIGKILL in the narrow windows the outbox and the inbox must survive.

Each test restarts a service with a crash point (`BILLING_CRASH_AT`) or with its
outbox relay off, lets it die or kills it, restarts it normally, and then checks
through the public API (and Kafka) that every customer was audited exactly once:
nothing lost, nothing twice. The `services` fixture restarts whatever a test left
crashed or reconfigured, so the next test finds normal services.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor, as_completed

import httpx
import pytest

from tests.e2e.support import (
    Api,
    Services,
    assert_problem,
    consumer_lag,
    customer_events,
    eventually,
    new_customer_body,
    wait_caught_up,
)

pytestmark = pytest.mark.e2e


def test_event_committed_but_never_published_is_published_after_a_crash(
    api: Api, services: Services, kafka: str
) -> None:
    services.restart("customers", OUTBOX_RELAY_ENABLED="false")
    body = new_customer_body()
    customer = api.created_customer(body)  # 201: committed, with its event in the outbox
    assert customer_events(kafka, external_id=body["external_id"]) == [], "relay is off"

    services.kill("customers")
    down = api.client.get(f"/v1/customers/{customer['id']}")
    assert_problem(down, 503, "service_unavailable")
    assert down.headers.get("Retry-After") == "1"

    services.restart("customers")
    api.wait_audited_once([customer["id"]])
    wait_caught_up(kafka)
    api.assert_audited_once([customer["id"]])
    events = customer_events(kafka, external_id=body["external_id"])
    assert len(events) == 1, events
    (entry,) = api.audit_entries(customer["id"])
    assert entry["event_id"] == events[0]["id"]


def test_crash_after_publish_republishes_and_audit_dedupes(
    api: Api, services: Services, kafka: str
) -> None:
    services.restart("customers", BILLING_CRASH_AT="outbox.after_publish")
    body = new_customer_body()
    response = api.create_customer(body)
    # The relay starts right after the commit; the response normally leaves first, but
    # if the crash wins that race the gateway answers 503 and the customer still exists.
    assert response.status_code in (201, 503), response.text
    services.wait_dead("customers")
    first = customer_events(kafka, external_id=body["external_id"])
    assert len(first) == 1, "Kafka acknowledged the event before the crash"

    services.restart("customers")
    customer = api.customer_by_external_id(body["external_id"])
    assert customer is not None, "the committed customer is lost"
    if response.status_code == 201:
        assert response.json() == customer

    def republished() -> list[dict[str, object]]:
        events = customer_events(kafka, external_id=body["external_id"])
        assert len(events) >= 2, f"not re-published yet: {events}"
        return events

    events = eventually(republished)
    assert {e["id"] for e in events} == {first[0]["id"]}, "a duplicate keeps its event id"

    api.wait_audited_once([customer["id"]])
    wait_caught_up(kafka)  # the duplicate has been consumed too
    entries = api.audit_entries(customer["id"])
    assert len(entries) == 1, entries
    assert entries[0]["event_id"] == first[0]["id"]


def test_consumer_killed_after_commit_before_offset_loses_and_duplicates_nothing(
    api: Api, services: Services, kafka: str
) -> None:
    services.restart("audit", BILLING_CRASH_AT="consumer.after_commit:5")
    ids = [api.created_customer()["id"] for _ in range(20)]
    services.wait_dead("audit")

    # Four offsets were committed; the fifth message's entry was, its offset was not.
    def behind_by_sixteen() -> None:
        lag = consumer_lag(kafka)
        assert sum(lag.values()) == 20 - 4, lag
        assert min(lag.values()) >= 0, lag

    eventually(behind_by_sixteen)

    services.restart("audit")
    api.wait_audited_once(ids)
    wait_caught_up(kafka)
    api.assert_audited_once(ids)


def test_consumer_sigkilled_while_customers_are_created_concurrently(
    api: Api, services: Services, kafka: str
) -> None:
    count = 50
    kill_after = random.randint(1, count - 1)
    bodies = [new_customer_body() for _ in range(count)]
    responses: list[httpx.Response] = []
    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(api.create_customer, body) for body in bodies]
        for done, _ in enumerate(as_completed(futures), start=1):
            if done == kill_after:
                services.kill("audit")
        responses = [future.result() for future in futures]
    statuses = [r.status_code for r in responses]
    assert statuses == [201] * count, (f"audit killed after {kill_after} responses", statuses)
    ids = [r.json()["id"] for r in responses]
    assert len(set(ids)) == count

    services.restart("audit")
    api.wait_audited_once(ids)
    wait_caught_up(kafka)
    api.assert_audited_once(ids)
