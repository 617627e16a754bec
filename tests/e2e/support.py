"""Helpers of the e2e tests: the public API as a client, polling with deadlines, raw Kafka.

Everything here talks to the running platform from the outside: HTTP through the
gateway, Kafka with plain aiokafka clients (to produce poison, read topics and
dead-letter topics, and read a consumer group's committed offsets), and the
supervisor's kill and restart. Nothing is mocked and nothing reaches into a
service's database.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from billing_local.supervisor import ServiceSupervisor

CUSTOMER_CREATED = "billing.customers.customer_created"
CUSTOMER_CREATED_DLQ = CUSTOMER_CREATED + ".dlq"
AUDIT_GROUP = "billing-audit"
PROBLEM_JSON = "application/problem+json"

DEADLINE = 60.0
"""How long a poll waits for the platform to converge before the test fails.

Generous on purpose (a restarted consumer may wait out a group rebalance on a
2-core machine); only a platform that never converges hits it.
"""
POLL_INTERVAL = 0.25

T = TypeVar("T")


# -- polling --------------------------------------------------------------------------------
def eventually(
    check: Callable[[], T], *, timeout: float = DEADLINE, interval: float = POLL_INTERVAL
) -> T:
    """Call `check` until it stops raising AssertionError; return its result.

    At the deadline the last AssertionError propagates, so the failure says what was
    still wrong rather than only that time ran out.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(interval)


# -- the public API -------------------------------------------------------------------------
def new_customer_body(**overrides: Any) -> dict[str, Any]:
    """A valid `POST /v1/customers` body with a unique external id."""
    return {
        "external_id": f"e2e-{uuid.uuid4().hex}",
        "name": "E2E Customer",
        "currency": "EUR",
        **overrides,
    }


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """`response` is an RFC 9457 problem with this status and code; return its body."""
    assert response.status_code == status, (response.status_code, response.text)
    content_type = response.headers.get("content-type", "")
    assert content_type.split(";")[0].strip() == PROBLEM_JSON, (content_type, response.text)
    assert "Traceback" not in response.text
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code, problem
    assert problem["status"] == status, problem
    for member in ("type", "title", "detail"):
        assert isinstance(problem.get(member), str), problem
    return problem


def metric_value(exposition: str, sample: str, labels: Mapping[str, str]) -> float:
    """The value of one sample in Prometheus text (0 when absent: counters start at 0)."""
    for family in text_string_to_metric_families(exposition):
        for found in family.samples:
            if found.name == sample and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0


class Api:
    """The gateway's public API with the session's API key."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def create_customer(
        self, body: Mapping[str, Any] | None = None, *, idempotency_key: str | None = None
    ) -> httpx.Response:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else {}
        return self.client.post(
            "/v1/customers",
            json=dict(body) if body is not None else new_customer_body(),
            headers=headers,
        )

    def created_customer(self, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Create a customer (must answer 201) and return it."""
        response = self.create_customer(body)
        assert response.status_code == 201, response.text
        customer: dict[str, Any] = response.json()
        return customer

    def customer_by_external_id(self, external_id: str) -> dict[str, Any] | None:
        response = self.client.get("/v1/customers", params={"external_id": external_id})
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["data"]
        assert len(found) <= 1, found
        return found[0] if found else None

    def list_pages(self, path: str, params: Mapping[str, str | int]) -> list[dict[str, Any]]:
        """Every page of a cursor-paginated list, checking the cursor contract on the way."""
        pages: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = dict(params) if cursor is None else {**params, "starting_after": cursor}
            response = self.client.get(path, params=query)
            assert response.status_code == 200, response.text
            page: dict[str, Any] = response.json()
            assert page["object"] == "list", page
            pages.append(page)
            if not page["has_more"]:
                assert page["next_cursor"] is None, page
                return pages
            assert page["next_cursor"] == page["data"][-1]["id"], page
            cursor = page["next_cursor"]
            assert len(pages) < 10_000, "pagination does not end"

    def audit_entries(self, subject: str) -> list[dict[str, Any]]:
        """All audit entries of `subject`, oldest first."""
        pages = self.list_pages("/v1/audit_events", {"subject": subject, "limit": 200})
        return [entry for page in pages for entry in page["data"]]

    def audit_counts(self, event_type: str = CUSTOMER_CREATED) -> Counter[str]:
        """How many audit entries of `event_type` each subject has."""
        pages = self.list_pages("/v1/audit_events", {"type": event_type, "limit": 200})
        return Counter(entry["subject"] for page in pages for entry in page["data"])

    def wait_audited_once(self, subjects: Iterable[str]) -> None:
        """Poll until each subject has exactly one customer_created entry; two fail at once."""
        wanted = set(subjects)

        def check() -> None:
            counts = self.audit_counts()
            twice = {s: counts[s] for s in wanted if counts[s] > 1}
            if twice:  # an entry is never removed: this cannot get better, fail now
                pytest.fail(f"audited more than once: {twice}")
            missing = sorted(s for s in wanted if counts[s] == 0)
            assert not missing, f"{len(missing)} of {len(wanted)} not audited yet: {missing[:5]}"

        eventually(check)

    def assert_audited_once(self, subjects: Iterable[str]) -> None:
        counts = self.audit_counts()
        wrong = {s: counts[s] for s in set(subjects) if counts[s] != 1}
        assert not wrong, f"subjects without exactly one audit entry: {wrong}"


# -- services -------------------------------------------------------------------------------
class Services:
    """Kill and restart services, remembering which ones must be restored afterwards."""

    def __init__(self, supervisor: ServiceSupervisor) -> None:
        self.supervisor = supervisor
        self._dirty: set[str] = set()

    def restart(self, name: str, **env: str) -> None:
        """Restart `name` with exactly `env` as its extra environment; wait until healthy."""
        self._dirty.add(name)
        self.supervisor.restart(name, extra_env=env)
        if not env:
            self._dirty.discard(name)

    def kill(self, name: str) -> None:
        self._dirty.add(name)
        self.supervisor.kill(name, signal.SIGKILL)
        assert not self.supervisor.is_running(name)

    def wait_dead(self, name: str) -> None:
        """Wait until `name` has died by itself (at its crash point)."""

        def dead() -> None:
            assert not self.supervisor.is_running(name), f"{name} is still running"

        eventually(dead)

    def restore(self) -> None:
        """Restart, with ordinary settings, what a test left crashed or reconfigured."""
        for name in sorted(self._dirty):
            self.supervisor.restart(name, extra_env={})
        self._dirty.clear()


# -- Kafka ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    await consumer.topics()  # fetches the cluster metadata
    partitions = consumer.partitions_for_topic(topic)
    assert partitions, f"topic {topic} does not exist"
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def _fetch_to_high_watermark(
    consumer: AIOKafkaConsumer, start: Mapping[TopicPartition, int]
) -> tuple[list[Record], dict[TopicPartition, int]]:
    """Fetch each partition from `start` up to its high watermark; return the records
    and the high watermarks.

    The end of a partition is taken from the high watermark of Fetch responses, not
    from ListOffsets (`end_offsets`): the embedded broker (Tansu) answers ListOffsets
    LATEST with a stale offset after multi-record batches, so `end_offsets` may stop
    short of records that exist.
    """
    tps = list(start)
    consumer.assign(tps)
    for tp, offset in start.items():
        consumer.seek(tp, offset)
    records: list[Record] = []
    deadline = time.monotonic() + DEADLINE
    while True:
        batches = await consumer.getmany(*tps, timeout_ms=200)
        for batch in batches.values():
            records.extend(
                Record(
                    topic=rec.topic,
                    partition=rec.partition,
                    offset=rec.offset,
                    key=rec.key,
                    value=rec.value,
                    headers={k: bytes(v) for k, v in rec.headers},
                )
                for rec in batch
            )
        high = {tp: consumer.highwater(tp) for tp in tps}
        if all(h is not None for h in high.values()):
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= high[tp] for tp in tps):
                return records, {tp: int(h) for tp, h in high.items()}
        assert time.monotonic() < deadline, f"could not fetch {tps} to their high watermarks"


async def _read_topic(bootstrap: str, topic: str) -> list[Record]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, client_id="e2e-reader"
    )
    await consumer.start()
    try:
        tps = await _partitions(consumer, topic)
        records, _ = await _fetch_to_high_watermark(consumer, await consumer.beginning_offsets(tps))
        return records
    finally:
        await consumer.stop()


def read_topic(bootstrap: str, topic: str) -> list[Record]:
    """Every record on `topic` now, from the beginning of each partition."""
    records: list[Record] = _run(_read_topic(bootstrap, topic))
    return records


def customer_events(bootstrap: str, *, external_id: str) -> list[dict[str, Any]]:
    """The envelopes on the customer_created topic of the customer with `external_id`.

    Records that are not such envelopes (poison from the dead-letter tests) are skipped.
    """
    found = []
    for record in read_topic(bootstrap, CUSTOMER_CREATED):
        try:
            envelope = json.loads(record.value)
            matches = envelope["data"]["external_id"] == external_id
        except (ValueError, RecursionError, TypeError, KeyError):
            continue
        if matches:
            found.append(envelope)
    return found


async def _produce(
    bootstrap: str,
    topic: str,
    messages: Sequence[tuple[bytes, bytes]],
    headers: Sequence[tuple[str, bytes]],
) -> list[tuple[int, int]]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", client_id="e2e-producer")
    await producer.start()
    try:
        placed = []
        for key, value in messages:
            metadata = await producer.send_and_wait(
                topic, value=value, key=key, headers=list(headers) or None
            )
            placed.append((metadata.partition, metadata.offset))
        return placed
    finally:
        await producer.stop()


def produce(
    bootstrap: str,
    topic: str,
    messages: Sequence[tuple[bytes, bytes]],
    headers: Sequence[tuple[str, bytes]] = (),
) -> list[tuple[int, int]]:
    """Produce (key, value) messages in order, each with `headers`; return the
    (partition, offset) of each."""
    placed: list[tuple[int, int]] = _run(_produce(bootstrap, topic, messages, headers))
    return placed


async def _lag(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, client_id="e2e-lag"
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="e2e-lag")
    await consumer.start()
    try:
        await admin.start()
        try:
            tps = await _partitions(consumer, topic)
            committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        finally:
            await admin.close()
        beginning = await consumer.beginning_offsets(tps)
        position = {}
        for tp in tps:
            meta = committed.get(tp)
            position[tp] = meta.offset if meta is not None and meta.offset >= 0 else beginning[tp]
        _, high = await _fetch_to_high_watermark(consumer, position)
    finally:
        await consumer.stop()
    return {tp.partition: high[tp] - position[tp] for tp in tps}


def consumer_lag(
    bootstrap: str, group: str = AUDIT_GROUP, topic: str = CUSTOMER_CREATED
) -> dict[int, int]:
    """Per partition of `topic`: messages past the offset `group` committed."""
    lag: dict[int, int] = _run(_lag(bootstrap, group, topic))
    return lag


def wait_caught_up(bootstrap: str, group: str = AUDIT_GROUP, topic: str = CUSTOMER_CREATED) -> None:
    """Poll until `group` has committed every message on `topic`.

    A barrier: afterwards every message published so far, redeliveries and duplicates
    included, has been processed, so an audit count cannot grow from them any more.
    """

    def check() -> None:
        lag = consumer_lag(bootstrap, group, topic)
        assert all(n == 0 for n in lag.values()), f"{group} lags on {topic}: {lag}"

    eventually(check)
