"""The backbone end to end: gateway → customers → outbox → Kafka → audit, with idempotency."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.support import (
    CUSTOMER_CREATED,
    Api,
    assert_problem,
    new_customer_body,
    wait_caught_up,
)

pytestmark = pytest.mark.e2e


def test_create_customer_idempotently_and_audit_it_once(api: Api, kafka: str) -> None:
    body = new_customer_body(
        name="Ada Lovelace",
        email="ada@example.com",
        timezone="Europe/London",
        metadata={"plan": "gold"},
    )
    key = f"e2e-{uuid.uuid4()}"

    first = api.create_customer(body, idempotency_key=key)
    assert first.status_code == 201, first.text
    assert first.headers["content-type"].startswith("application/json")
    assert "idempotent-replayed" not in first.headers
    customer = first.json()
    assert customer["object"] == "customer"
    assert customer["id"].startswith("cus_")
    for field, value in body.items():
        assert customer[field] == value, field

    replay = api.create_customer(body, idempotency_key=key)
    assert replay.status_code == 201, replay.text
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == customer
    assert replay.content == first.content

    reused = api.create_customer({**body, "name": "Someone Else"}, idempotency_key=key)
    problem = assert_problem(reused, 409, "idempotency_key_reused")
    assert problem["instance"] == "/v1/customers"

    retrieved = api.client.get(f"/v1/customers/{customer['id']}")
    assert retrieved.status_code == 200, retrieved.text
    assert retrieved.json() == customer
    assert api.customer_by_external_id(body["external_id"]) == customer

    api.wait_audited_once([customer["id"]])
    # Barrier: the audit consumer has processed every message on the topic, so a
    # duplicate published meanwhile would have shown up by now.
    wait_caught_up(kafka)
    entries = api.audit_entries(customer["id"])
    assert len(entries) == 1, entries
    (entry,) = entries
    assert entry["object"] == "audit_event"
    assert entry["id"].startswith("aud_")
    assert entry["type"] == CUSTOMER_CREATED
    assert entry["source"] == "customers"
    assert entry["subject"] == customer["id"]
    expected = {k: v for k, v in customer.items() if k not in ("object", "id")}
    assert entry["data"] == {**expected, "customer_id": customer["id"]}
    uuid.UUID(entry["event_id"])  # the CloudEvents id


def test_reused_key_creates_nothing_and_a_rejected_body_does_not_claim_a_key(api: Api) -> None:
    key = f"e2e-{uuid.uuid4()}"
    body = new_customer_body()
    assert api.create_customer(body, idempotency_key=key).status_code == 201
    other_body = new_customer_body()
    assert_problem(
        api.create_customer(other_body, idempotency_key=key), 409, "idempotency_key_reused"
    )
    assert api.customer_by_external_id(other_body["external_id"]) is None
    # A request the schema rejects never claims the key: fixed, it goes through.
    fresh = f"e2e-{uuid.uuid4()}"
    assert_problem(
        api.create_customer({**body, "currency": 5}, idempotency_key=fresh),
        422,
        "validation_failed",
    )
    assert api.create_customer(new_customer_body(), idempotency_key=fresh).status_code == 201


def test_customers_appear_once_each_in_list_pagination(api: Api) -> None:
    created = [api.created_customer() for _ in range(5)]
    ids = [c["id"] for c in created]

    pages = api.list_pages("/v1/customers", {"limit": 2})
    listed = [customer for page in pages for customer in page["data"]]
    assert all(len(page["data"]) <= 2 for page in pages)
    assert all(page["has_more"] for page in pages[:-1])
    listed_ids = [c["id"] for c in listed]
    assert len(listed_ids) == len(set(listed_ids)), "a customer is on two pages"
    assert listed_ids == sorted(listed_ids), "pages are not in id (creation) order"
    positions = [listed_ids.index(i) for i in ids]  # ValueError: one is missing
    assert positions == sorted(positions)
    by_id = {c["id"]: c for c in listed}
    assert [by_id[i] for i in ids] == created

    # A cursor in the middle continues right after it.
    after = api.client.get("/v1/customers", params={"limit": 2, "starting_after": ids[1]})
    assert after.status_code == 200, after.text
    assert [c["id"] for c in after.json()["data"]][:1] == [listed_ids[listed_ids.index(ids[1]) + 1]]
