"""Poison on a real topic: dead-lettered with its provenance, and consumption goes on."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from billing_local.platform import RunningPlatform
from tests.e2e.support import (
    AUDIT_GROUP,
    CUSTOMER_CREATED,
    CUSTOMER_CREATED_DLQ,
    Api,
    Record,
    Services,
    eventually,
    metric_value,
    produce,
    read_topic,
)

pytestmark = pytest.mark.e2e

DEAD_LETTERED = {"consumer": AUDIT_GROUP, "topic": CUSTOMER_CREATED, "outcome": "dead_lettered"}


def envelope(marker: str, **overrides: Any) -> dict[str, Any]:
    """A CloudEvents envelope for the customer_created topic, valid unless overridden."""
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "type": CUSTOMER_CREATED,
        "source": "e2e-poison",
        "time": datetime.now(UTC).isoformat(),
        "subject": f"cus_poison_{marker}",
        "tenantid": "e2e",
        "datacontenttype": "application/json",
        **overrides,
    }


def poison(marker: str) -> dict[str, tuple[bytes, str]]:
    """Kind of poison → (payload, what the dead-letter reason must mention)."""
    wrong_data = {"customer_id": 42, "name": marker}
    return {
        "not_json": (f"\x00this is not JSON {marker}".encode(), "not JSON"),
        "not_an_object": (json.dumps([marker]).encode(), "not a JSON object"),
        "not_an_envelope": (json.dumps({"hello": marker}).encode(), "CloudEvents"),
        "wrong_data_schema": (
            json.dumps(envelope(marker, data=wrong_data)).encode(),
            "does not match the schema",
        ),
        "wrong_type": (
            json.dumps(envelope(marker, type="billing.customers.other", data={})).encode(),
            "does not belong on topic",
        ),
    }


def audit_dead_letters(kafka: str, payloads: set[bytes]) -> list[Record]:
    """The audit consumer's dead letters of `payloads` (every consumer of customer_created
    dead-letters poison into the same topic, each naming its group)."""
    return [
        r
        for r in read_topic(kafka, CUSTOMER_CREATED_DLQ)
        if r.value in payloads and r.headers["x-consumer-group"] == AUDIT_GROUP.encode()
    ]


def dead_letters_of(kafka: str, payloads: set[bytes]) -> dict[bytes, Record]:
    return {r.value: r for r in audit_dead_letters(kafka, payloads)}


def audit_metrics(running: RunningPlatform) -> str:
    response = httpx.get(running.service_urls["audit"] + "/metrics", trust_env=False, timeout=10)
    assert response.status_code == 200
    return response.text


def audit_health(running: RunningPlatform) -> httpx.Response:
    return httpx.get(running.service_urls["audit"] + "/health", trust_env=False, timeout=10)


def test_poison_is_dead_lettered_with_provenance_and_consumption_goes_on(
    api: Api, kafka: str, running: RunningPlatform
) -> None:
    marker = uuid.uuid4().hex
    cases = poison(marker)
    before = metric_value(audit_metrics(running), "billing_events_consumed_total", DEAD_LETTERED)
    keys = {kind: f"poison-{kind}-{marker}".encode() for kind in cases}
    placed = produce(
        kafka, CUSTOMER_CREATED, [(keys[kind], payload) for kind, (payload, _) in cases.items()]
    )
    where = dict(zip(cases, placed, strict=True))
    payloads = {payload for payload, _ in cases.values()}

    def all_dead_lettered() -> dict[bytes, Record]:
        found = dead_letters_of(kafka, payloads)
        missing = [kind for kind, (payload, _) in cases.items() if payload not in found]
        assert not missing, f"not dead-lettered yet: {missing}"
        return found

    dead = eventually(all_dead_lettered)
    for kind, (payload, why) in cases.items():
        record = dead[payload]
        partition, offset = where[kind]
        assert record.key == keys[kind], kind
        headers = record.headers
        assert headers["x-original-topic"] == CUSTOMER_CREATED.encode(), kind
        assert headers["x-original-partition"] == str(partition).encode(), kind
        assert headers["x-original-offset"] == str(offset).encode(), kind
        assert headers["x-consumer-group"] == AUDIT_GROUP.encode(), kind
        reason = headers["x-dead-letter-reason"].decode()
        assert why.lower() in reason.lower(), (kind, reason)
    # Each poison message was dead-lettered once, not once per redelivery.
    assert len(audit_dead_letters(kafka, payloads)) == len(cases)
    after = metric_value(audit_metrics(running), "billing_events_consumed_total", DEAD_LETTERED)
    assert after - before == len(cases)

    # The consumer went on: a customer created now is audited, and audit is healthy.
    customer = api.created_customer()
    api.wait_audited_once([customer["id"]])
    health = audit_health(running)
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok"
    assert api.audit_entries(f"cus_poison_{marker}") == []


def test_a_dead_letter_streak_halts_the_consumer_instead_of_draining_the_topic(
    api: Api, kafka: str, running: RunningPlatform, services: Services
) -> None:
    services.restart("audit", CONSUMER_MAX_CONSECUTIVE_DEAD_LETTERS="3")
    marker = uuid.uuid4().hex
    streak = [
        (f"streak-{i}-{marker}".encode(), f"not JSON {i} {marker}".encode()) for i in range(3)
    ]
    produce(kafka, CUSTOMER_CREATED, streak)

    def halted() -> dict[str, Any]:
        response = audit_health(running)
        assert response.status_code == 503, response.text
        body: dict[str, Any] = response.json()
        return body

    body = eventually(halted)
    assert body["status"] == "unavailable"
    assert "halted" in body["checks"]["consumer"], body
    payloads = {value for _, value in streak}
    assert len(dead_letters_of(kafka, payloads)) == 3

    # Halted, it applies nothing more; restarted, it resumes where it stopped.
    customer = api.created_customer()
    assert api.audit_entries(customer["id"]) == []
    services.restart("audit")
    api.wait_audited_once([customer["id"]])
    assert len(dead_letters_of(kafka, payloads)) == 3


UNDECODABLE = [  # MARKER is replaced by a unique token, keeping the payload's structure
    pytest.param(b"[" * 5000 + b'"MARKER"' + b"]" * 5000, (), id="deeply-nested-json"),
    pytest.param(b'{"m": "MARKER", "n": ' + b"1" * 5000 + b"}", (), id="int-over-4300-digits"),
    pytest.param(
        b'{"m": "MARKER", "truncated": ',
        [("content-type", b"application/json")],
        id="bad-json-labelled-json",
    ),
]


@pytest.mark.parametrize(("payload", "headers"), UNDECODABLE)
def test_undecodable_poison_is_dead_lettered(
    api: Api, kafka: str, payload: bytes, headers: list[tuple[str, bytes]]
) -> None:
    marker = uuid.uuid4().hex.encode()
    value = payload.replace(b"MARKER", marker)
    produce(kafka, CUSTOMER_CREATED, [(b"undecodable-" + marker, value)], headers)

    def dead_lettered() -> None:
        assert len(dead_letters_of(kafka, {value})) == 1

    eventually(dead_lettered)
    customer = api.created_customer()
    api.wait_audited_once([customer["id"]])
