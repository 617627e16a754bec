"""`POST /v1/events` through the gateway app: a real Valkey, and a real Kafka (the embedded
stack's) whose messages are read back with aiokafka."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from starlette.applications import Starlette

from billing_common.events import CloudEvent
from billing_common.http import PROBLEM_JSON, exception_handlers
from billing_common.ids import TenantId, uuid7
from billing_common.runtime import ensure_topics
from billing_common.telemetry import configure_tracing
from billing_gateway.app import Gateway, ProducerFactory
from billing_gateway.auth import ApiKeyRecord, api_key_record, generate_api_key
from billing_gateway.events import USAGE_EVENTS_RECEIVED, UsageEventsReceived
from billing_gateway.settings import GatewaySettings
from billing_gateway.usage_events import CLOUDEVENT, CLOUDEVENT_BATCH
from billing_local.stack import StackUrls

NOW = datetime(2025, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


class KeyStore:
    def __init__(self) -> None:
        self.records: dict[str, ApiKeyRecord] = {}

    def issue(self, tenant_id: str) -> str:
        key = generate_api_key()
        record = api_key_record(key, tenant_id=tenant_id, name="test", created_at=NOW)
        self.records[record.key_hash] = record
        return key

    async def find(self, key_hash: str) -> ApiKeyRecord | None:
        return self.records.get(key_hash)


@dataclass
class Client:
    http: httpx.AsyncClient
    gateway: Gateway
    tenant: str
    auth: dict[str, str]

    async def send(
        self, payload: bytes, content_type: str = "application/json", **headers: str
    ) -> httpx.Response:
        return await self.http.post(
            "/v1/events",
            content=payload,
            headers={**self.auth, "content-type": content_type, **headers},
        )


@asynccontextmanager
async def running_gateway(
    redis: Redis,
    *,
    kafka_bootstrap: str | None = None,
    producer_factory: ProducerFactory | None = None,
    **settings: Any,
) -> AsyncIterator[Client]:
    store = KeyStore()
    tenant = TenantId.new()
    gateway = Gateway(
        GatewaySettings(**settings),
        store=store,
        redis=redis,
        clock=lambda: NOW,
        kafka_bootstrap=kafka_bootstrap,
        producer_factory=producer_factory,
    )
    app = Starlette(routes=gateway.routes(), exception_handlers=exception_handlers())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        try:
            yield Client(http, gateway, tenant, {"authorization": f"Bearer {store.issue(tenant)}"})
        finally:
            await gateway.publisher.aclose()
            await gateway.upstreams.aclose()


@pytest.fixture
async def kafka(stack_urls: StackUrls) -> str:
    """The embedded Kafka, with the usage topic created as the runtime does at startup."""
    await ensure_topics(stack_urls.kafka_bootstrap, [USAGE_EVENTS_RECEIVED.name], partitions=3)
    return stack_urls.kafka_bootstrap


@pytest.fixture
async def client(redis: Redis, kafka: str) -> AsyncIterator[Client]:
    async with running_gateway(redis, kafka_bootstrap=kafka) as client:
        yield client


@dataclass
class Received:
    key: bytes
    value: bytes
    headers: dict[str, bytes]
    envelope: CloudEvent[UsageEventsReceived]


async def received(bootstrap: str, tenant: str, count: int, settle: float = 1.0) -> list[Received]:
    """The usage messages of `tenant` on the topic: at least `count`, plus any more that
    arrive within `settle` seconds after them."""
    consumer = AIOKafkaConsumer(
        USAGE_EVENTS_RECEIVED.name,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=f"probe-{uuid7().hex}",
    )
    await consumer.start()
    found: list[Received] = []

    async def poll() -> None:
        for records in (await consumer.getmany(timeout_ms=300)).values():
            for record in records:
                if json.loads(record.value).get("tenantid") != tenant:
                    continue  # another test's
                found.append(
                    Received(
                        record.key,
                        record.value,
                        dict(record.headers),
                        USAGE_EVENTS_RECEIVED.parse(record.value),
                    )
                )

    try:
        async with asyncio.timeout(30):
            while len(found) < count:
                await poll()
        deadline = asyncio.get_running_loop().time() + settle
        while asyncio.get_running_loop().time() < deadline:
            await poll()
    finally:
        await consumer.stop()
    return found


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"]) == (status, code)
    return body


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


BATCH = b"""[
  {"id": "e1", "customer": "cus_a", "type": "api.call",
   "properties": {"tokens": 123456789012345678.123456789012, "share": 0.1, "n": 1E+2}},
  {"id": "e2", "customer": "acme-external", "type": "api.call",
   "timestamp": "2025-03-01T11:00:00Z", "properties": {"region": "eu"}},
  {"id": "e3", "customer": "cus_a", "type": "storage.gb_hours",
   "timestamp": "2025-03-01T12:59:59.999+01:00", "properties": {"gb": 0.000001}},
  {"id": "e4", "customer": "cus_a", "type": "bad type"}
]"""


@pytest.mark.service
class TestPublishing:
    async def test_a_batch_is_one_message_per_customer_with_exact_numbers(
        self, client: Client, kafka: str
    ) -> None:
        configure_tracing("gateway-tests")
        accepted_before = metric("gateway_usage_events_accepted_total")
        rejected_before = metric("gateway_usage_events_rejected_total", code="invalid_field")
        incoming = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
        response = await client.send(BATCH, traceparent=incoming)

        assert response.status_code == 202, response.text
        assert response.headers["content-type"] == "application/json"
        answer = response.json()
        assert answer["accepted"] == 3
        assert [(r["index"], r["code"]) for r in answer["rejected"]] == [(3, "invalid_field")]
        assert metric("gateway_usage_events_accepted_total") == accepted_before + 3
        assert (
            metric("gateway_usage_events_rejected_total", code="invalid_field")
            == rejected_before + 1
        )

        messages = await received(kafka, client.tenant, count=2)
        assert sorted(m.key for m in messages) == [b"acme-external", b"cus_a"]
        by_key = {m.key: m for m in messages}
        for message in messages:
            envelope = message.envelope
            assert envelope.subject.encode() == message.key
            assert envelope.type == USAGE_EVENTS_RECEIVED.name
            assert (envelope.source, envelope.tenantid) == ("gateway", client.tenant)
            assert envelope.time == NOW
            assert envelope.data.received_at == NOW
            assert envelope.traceparent is not None
            assert envelope.traceparent.split("-")[1] == TRACE_ID
            assert message.headers["ce_type"] == USAGE_EVENTS_RECEIVED.name.encode()
            assert message.headers["traceparent"] == envelope.traceparent.encode()

        own = by_key[b"cus_a"]
        assert [e.id for e in own.envelope.data.events] == ["e1", "e3"]
        first, third = own.envelope.data.events
        # The defaulted timestamp is the time received, written out (ms precision).
        assert first.timestamp == NOW
        assert b'"timestamp":"2025-03-01T12:00:00.500000+00:00"' in own.value
        assert third.timestamp == datetime(2025, 3, 1, 11, 59, 59, 999000, tzinfo=UTC)
        # Numbers keep their digits on the wire and when read back.
        assert b'"tokens":123456789012345678.123456789012' in own.value
        assert b'"share":0.1' in own.value
        assert b'"n":1E+2' in own.value
        assert b'"gb":0.000001' in own.value
        tokens = first.properties["tokens"]
        assert isinstance(tokens, Decimal)
        assert tokens.as_tuple() == Decimal("123456789012345678.123456789012").as_tuple()
        assert first.properties["share"].as_tuple() == Decimal("0.1").as_tuple()
        assert first.properties["n"].as_tuple() == Decimal("1E+2").as_tuple()

        (other,) = by_key[b"acme-external"].envelope.data.events
        assert (other.id, other.customer, other.properties) == (
            "e2",
            "acme-external",
            {"region": "eu"},
        )

    async def test_cloudevents_are_published_like_native_events(
        self, client: Client, kafka: str
    ) -> None:
        one = {
            "specversion": "1.0",
            "id": "ce-1",
            "source": "/apps/edge",
            "type": "api.call",
            "subject": "cus_ce",
            "time": "2025-03-01T11:30:00Z",
            "datacontenttype": "application/json",
            "data": {"calls": 2},
        }
        response = await client.send(json.dumps(one).encode(), CLOUDEVENT)
        assert response.json() == {"accepted": 1, "rejected": []}
        batch = [{**one, "id": "ce-2"}, {**one, "id": "ce-3", "specversion": "0.3"}]
        response = await client.send(json.dumps(batch).encode(), CLOUDEVENT_BATCH)
        assert response.status_code == 202
        assert response.json()["rejected"][0]["code"] == "invalid_specversion"

        messages = await received(kafka, client.tenant, count=2)
        events = [e for m in messages for e in m.envelope.data.events]
        assert sorted(e.id for e in events) == ["ce-1", "ce-2"]
        assert {m.key for m in messages} == {b"cus_ce"}
        for event in events:
            assert event.customer == "cus_ce"
            assert event.timestamp == datetime(2025, 3, 1, 11, 30, tzinfo=UTC)
            assert event.properties == {"calls": 2}

    async def test_a_request_whose_events_are_all_rejected_publishes_nothing(
        self, client: Client, kafka: str
    ) -> None:
        bad = [
            {"id": "x1", "customer": "cus_z", "type": "t", "timestamp": "2020-01-01T00:00:00Z"},
            {"id": "x2", "customer": "cus_z"},
        ]
        response = await client.send(json.dumps(bad).encode())
        body = problem(response, 422, "events_rejected")
        assert body["rejected"] == [
            {"index": 0, "code": "timestamp_too_old", "message": body["rejected"][0]["message"]},
            {"index": 1, "code": "missing_field", "message": "missing required field type"},
        ]
        assert "35 days" in body["rejected"][0]["message"]
        good = {"id": "ok", "customer": "cus_z", "type": "t"}
        assert (await client.send(json.dumps(good).encode())).status_code == 202
        messages = await received(kafka, client.tenant, count=1)
        assert [[e.id for e in m.envelope.data.events] for m in messages] == [["ok"]]

    async def test_an_idempotency_key_replays_the_first_answer(
        self, client: Client, kafka: str
    ) -> None:
        payload = json.dumps({"id": "k1", "customer": "cus_k", "type": "t"}).encode()
        first = await client.send(payload, **{"idempotency-key": "batch-1"})
        second = await client.send(payload, **{"idempotency-key": "batch-1"})
        assert first.status_code == second.status_code == 202
        assert second.content == first.content
        assert second.headers["idempotent-replayed"] == "true"
        messages = await received(kafka, client.tenant, count=1)
        assert len(messages) == 1

    async def test_without_a_key_a_resend_is_published_again(
        self, client: Client, kafka: str
    ) -> None:
        payload = json.dumps({"id": "r1", "customer": "cus_r", "type": "t"}).encode()
        for _ in range(2):
            assert (await client.send(payload)).status_code == 202
        messages = await received(kafka, client.tenant, count=2)
        # Both carry the same event (customer, id): metering counts it once.
        assert [[(e.customer, e.id) for e in m.envelope.data.events] for m in messages] == [
            [("cus_r", "r1")],
            [("cus_r", "r1")],
        ]
        assert messages[0].envelope.id != messages[1].envelope.id

    async def test_a_closed_producer_is_started_again_on_the_next_request(
        self, client: Client, kafka: str
    ) -> None:
        payload = json.dumps({"id": "c1", "customer": "cus_c", "type": "t"}).encode()
        assert (await client.send(payload)).status_code == 202
        await client.gateway.publisher.aclose()
        assert (await client.send(payload)).status_code == 202
        assert len(await received(kafka, client.tenant, count=2)) == 2


@pytest.mark.service
class TestKafkaFailures:
    async def test_a_message_kafka_refuses_is_503_and_the_key_is_released(
        self, redis: Redis, kafka: str
    ) -> None:
        def tiny_producer() -> AIOKafkaProducer:
            return AIOKafkaProducer(bootstrap_servers=kafka, acks="all", max_request_size=64)

        async with running_gateway(redis, producer_factory=tiny_producer) as client:
            payload = json.dumps({"id": "f1", "customer": "cus_f", "type": "t"}).encode()
            for _ in range(2):  # the failed attempt did not keep the Idempotency-Key
                response = await client.send(payload, **{"idempotency-key": "retry-me"})
                body = problem(response, 503, "service_unavailable")
                assert "retry" in body["detail"]
                assert response.headers["retry-after"] == "1"


class TestKafkaUnreachable:
    async def test_kafka_down_is_503_retryable(self, redis: Redis, closed_port: int) -> None:
        failures_before = metric("gateway_usage_events_publish_failures_total")
        async with running_gateway(
            redis,
            kafka_bootstrap=f"127.0.0.1:{closed_port}",
            gateway_publish_timeout_seconds=2,
        ) as client:
            payload = json.dumps({"id": "d1", "customer": "cus_d", "type": "t"}).encode()
            started = asyncio.get_running_loop().time()
            response = await client.send(payload)
            assert asyncio.get_running_loop().time() - started < 10
            problem(response, 503, "service_unavailable")
            assert response.headers["retry-after"] == "1"
        assert metric("gateway_usage_events_publish_failures_total") == failures_before + 1

    async def test_without_kafka_configured_is_503(self, redis: Redis) -> None:
        async with running_gateway(redis) as client:
            payload = json.dumps({"id": "d1", "customer": "cus_d", "type": "t"}).encode()
            body = problem(await client.send(payload), 503, "service_unavailable")
            assert "not configured" in body["detail"]


class TestRequestErrors:
    """Whole-request problems, answered before Kafka is needed (none is configured)."""

    async def test_authentication_comes_first(self, redis: Redis) -> None:
        async with running_gateway(redis) as client:
            response = await client.http.post("/v1/events", json={"id": "a"})
            problem(response, 401, "unauthenticated")

    async def test_body_errors(self, redis: Redis) -> None:
        async with running_gateway(redis, gateway_max_events_body_bytes=256) as client:
            problem(await client.send(b'{"id": ', "application/json"), 400, "malformed_body")
            problem(await client.send(b"", "application/json"), 400, "malformed_body")
            problem(await client.send(b"id=1", "text/plain"), 415, "unsupported_media_type")
            problem(await client.send(b"[]"), 422, "empty_batch")
            problem(await client.send(b"[]", CLOUDEVENT), 422, "invalid_batch")
            problem(await client.send(b" " * 300), 413, "payload_too_large")
            response = await client.send(b"{}", **{"idempotency-key": "k" * 256})
            problem(response, 400, "invalid_idempotency_key")

    async def test_more_than_1000_events_is_413(self, redis: Redis) -> None:
        async with running_gateway(redis) as client:
            events = [{"id": str(i), "customer": "c", "type": "t"} for i in range(1001)]
            body = problem(await client.send(json.dumps(events).encode()), 413, "too_many_events")
            assert body["max_events"] == 1000

    async def test_the_request_id_and_metrics_cover_the_route(self, redis: Redis) -> None:
        async with running_gateway(redis) as client:
            before = metric(
                "gateway_requests_total", method="POST", route="/v1/events", status="415"
            )
            response = await client.send(b"x", "text/plain", **{"x-request-id": "req-7"})
            assert response.headers["x-request-id"] == "req-7"
            after = metric(
                "gateway_requests_total", method="POST", route="/v1/events", status="415"
            )
            assert after == before + 1

    async def test_a_timestamp_is_checked_against_the_gateway_clock(self, redis: Redis) -> None:
        async with running_gateway(redis) as client:
            late = (NOW + timedelta(minutes=6)).isoformat()
            event = {"id": "a", "customer": "c", "type": "t", "timestamp": late}
            body = problem(await client.send(json.dumps(event).encode()), 422, "events_rejected")
            assert body["rejected"][0]["code"] == "timestamp_in_future"
