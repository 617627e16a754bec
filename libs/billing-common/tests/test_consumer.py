from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from billing_common.consumer import (
    BatchConsumer,
    ConsumedEvent,
    ConsumerHalted,
    ConsumerPolicy,
    DeadLetter,
    InboxConsumer,
    prune_inbox,
    raw_body_decoder,
)
from billing_common.db import Connection, Pool
from billing_common.errors import Conflict, ServiceUnavailable
from billing_common.events import CloudEvent, Topic, new_event
from billing_common.ids import uuid7

pytestmark = pytest.mark.service

NOW = datetime(2026, 2, 1, tzinfo=UTC)
FAST = ConsumerPolicy(max_attempts=3, retry_backoff=0.0, max_consecutive_dead_letters=3)


def payload(topic: Topic[Any], widget_id: str, size: int, event_id: Any = None) -> bytes:
    return new_event(
        topic,
        topic.data_model(widget_id=widget_id, size=size),
        event_id=event_id or uuid7(),
        source="widgets",
        subject="cus_1",
        tenant_id="ten_1",
        time=NOW,
    ).to_bytes()


class Harness:
    """A real PostgreSQL schema and FastStream's in-memory broker around one InboxConsumer."""

    def __init__(self, pool: Pool, topic: Topic[Any], policy: ConsumerPolicy = FAST) -> None:
        self.pool = pool
        self.topic = topic
        self.broker = KafkaBroker()
        self.consumer = InboxConsumer(
            group="billing-widgets", pool=pool, broker=self.broker, policy=policy
        )
        self.failures: list[Exception] = []
        self.dead_letters: list[tuple[bytes, dict[str, str]]] = []
        self.consumer.handle(topic, self.apply)
        self.consumer.register()

        @self.broker.subscriber(topic.dead_letter, decoder=raw_body_decoder)
        async def capture(message: KafkaMessage) -> None:
            headers = {k: v for k, v in message.headers.items() if k.startswith("x-")}
            self.dead_letters.append((message.body, headers))

    async def apply(self, conn: Connection, event: CloudEvent[Any]) -> None:
        if self.failures:
            raise self.failures.pop(0)
        await conn.execute(
            "INSERT INTO widgets (id, size) VALUES ($1, $2)", event.data.widget_id, event.data.size
        )

    async def widgets(self) -> list[tuple[str, int]]:
        rows = await self.pool.fetch("SELECT id, size FROM widgets ORDER BY id")
        return [(r["id"], r["size"]) for r in rows]


class TestInboxConsumer:
    async def test_a_redelivered_event_is_applied_once(
        self, plumbed_pool: Pool, widget_topic: Topic[Any]
    ) -> None:
        h = Harness(plumbed_pool, widget_topic)
        event_id = uuid7()
        async with TestKafkaBroker(h.broker) as broker:
            for _ in range(3):
                await broker.publish(
                    payload(widget_topic, "w1", 5, event_id), topic=widget_topic.name
                )
        assert await h.widgets() == [("w1", 5)]
        inbox = await plumbed_pool.fetch("SELECT consumer, event_id FROM inbox")
        assert [(r["consumer"], r["event_id"]) for r in inbox] == [("billing-widgets", event_id)]

    async def test_a_retryable_failure_is_retried_then_applied(
        self, plumbed_pool: Pool, widget_topic: Topic[Any]
    ) -> None:
        h = Harness(plumbed_pool, widget_topic)
        h.failures = [ServiceUnavailable("db blip"), ConnectionResetError("reset")]
        async with TestKafkaBroker(h.broker) as broker:
            await broker.publish(payload(widget_topic, "w1", 5), topic=widget_topic.name)
        assert await h.widgets() == [("w1", 5)]
        assert h.dead_letters == []

    async def test_a_failed_attempt_leaves_no_partial_effect(
        self, plumbed_pool: Pool, widget_topic: Topic[Any]
    ) -> None:
        h = Harness(plumbed_pool, widget_topic)

        async def insert_then_fail(conn: Connection, event: CloudEvent[Any]) -> None:
            await conn.execute("INSERT INTO widgets (id, size) VALUES ('partial', 0)")
            raise Conflict("not allowed")

        h.consumer._routes[widget_topic.name] = (widget_topic, insert_then_fail)
        async with TestKafkaBroker(h.broker) as broker:
            await broker.publish(payload(widget_topic, "w1", 5), topic=widget_topic.name)
        assert await h.widgets() == []
        assert await plumbed_pool.fetchval("SELECT count(*) FROM inbox") == 0
        assert len(h.dead_letters) == 1
        assert h.dead_letters[0][1]["x-dead-letter-reason"] == "conflict: not allowed"

    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            (b"{broken", "message is not JSON"),
            (b'{"specversion": "1.0"}', "not a CloudEvents 1.0 envelope"),
        ],
    )
    async def test_poison_goes_to_the_dead_letter_topic_and_the_next_is_applied(
        self, plumbed_pool: Pool, widget_topic: Topic[Any], body: bytes, reason: str
    ) -> None:
        h = Harness(plumbed_pool, widget_topic)
        async with TestKafkaBroker(h.broker) as broker:
            await broker.publish(body, topic=widget_topic.name, key=b"cus_1")
            await broker.publish(payload(widget_topic, "w2", 7), topic=widget_topic.name)
        assert await h.widgets() == [("w2", 7)]
        [(dead_body, headers)] = h.dead_letters
        assert dead_body == body
        assert headers["x-original-topic"] == widget_topic.name
        assert headers["x-original-partition"] == "0"
        assert "x-original-offset" in headers
        assert reason in headers["x-dead-letter-reason"]
        assert headers["x-consumer-group"] == "billing-widgets"

    @pytest.mark.parametrize(
        "body",
        [b"[" * 5000 + b"]" * 5000, b'{"n": ' + b"1" * 5000 + b"}", b'{"truncated": '],
        ids=["deeply-nested", "int-over-4300-digits", "truncated"],
    )
    async def test_undecodable_json_labelled_json_is_dead_lettered(
        self, plumbed_pool: Pool, widget_topic: Topic[Any], body: bytes
    ) -> None:
        h = Harness(plumbed_pool, widget_topic)
        async with TestKafkaBroker(h.broker) as broker:
            await broker.publish(
                body, topic=widget_topic.name, headers={"content-type": "application/json"}
            )
            await broker.publish(payload(widget_topic, "w2", 7), topic=widget_topic.name)
        assert await h.widgets() == [("w2", 7)]
        [(_, headers)] = h.dead_letters
        assert headers["x-dead-letter-reason"].startswith("message is not JSON")

    async def test_data_that_violates_the_schema_is_dead_lettered(
        self, plumbed_pool: Pool, widget_topic: Topic[Any]
    ) -> None:
        h = Harness(plumbed_pool, widget_topic)
        raw = json.loads(payload(widget_topic, "w1", 1))
        raw["data"]["size"] = "huge"
        async with TestKafkaBroker(h.broker) as broker:
            await broker.publish(json.dumps(raw).encode(), topic=widget_topic.name)
        assert await h.widgets() == []
        assert "data does not match the schema" in h.dead_letters[0][1]["x-dead-letter-reason"]

    async def test_exhausted_retries_dead_letter_with_the_cause(
        self, plumbed_pool: Pool, widget_topic: Topic[Any]
    ) -> None:
        h = Harness(plumbed_pool, widget_topic)
        h.failures = [TimeoutError("slow")] * 3
        async with TestKafkaBroker(h.broker) as broker:
            await broker.publish(payload(widget_topic, "w1", 1), topic=widget_topic.name)
        assert (
            h.dead_letters[0][1]["x-dead-letter-reason"]
            == "gave up after 3 attempts: TimeoutError: slow"
        )

    async def test_too_many_dead_letters_in_a_row_halt_the_consumer(
        self, plumbed_pool: Pool, widget_topic: Topic[Any]
    ) -> None:
        h = Harness(plumbed_pool, widget_topic)
        async with TestKafkaBroker(h.broker) as broker:
            await broker.publish(b"bad-1", topic=widget_topic.name)
            await broker.publish(
                payload(widget_topic, "ok", 1), topic=widget_topic.name
            )  # resets the run
            for i in range(3):
                await broker.publish(f"bad-{i}".encode(), topic=widget_topic.name)
            assert h.consumer.halted_reason is not None
            assert "3 messages dead-lettered in a row" in h.consumer.halted_reason
            assert len(h.dead_letters) == 4
        assert await h.widgets() == [("ok", 1)]


async def test_prune_inbox_forgets_only_old_records(plumbed_pool: Pool) -> None:
    for age_days in (40, 36, 1):
        await plumbed_pool.execute(
            "INSERT INTO inbox (consumer, event_id, topic, kafka_partition, kafka_offset,"
            " processed_at) VALUES ('g', $1, 't', 0, 0, now() - make_interval(days => $2))",
            uuid7(),
            age_days,
        )
    async with plumbed_pool.acquire() as conn:
        assert await prune_inbox(conn, older_than_days=35) == 2
    assert await plumbed_pool.fetchval("SELECT count(*) FROM inbox") == 1


class BatchHarness:
    """FastStream's in-memory broker around one BatchConsumer whose handler records batches."""

    def __init__(self, topic: Topic[Any], policy: ConsumerPolicy = FAST) -> None:
        self.topic = topic
        self.broker = KafkaBroker()
        self.batches: list[list[tuple[int, str]]] = []
        self.failures: list[Exception] = []
        self.poison_sizes: set[int] = set()
        self.dead_letters: list[tuple[bytes, dict[str, str]]] = []
        self.consumer = BatchConsumer(
            group="billing-widgets-batch",
            broker=self.broker,
            policy=policy,
            topics=[topic],
            handler=self.apply,
        )
        self.consumer.register()

        @self.broker.subscriber(topic.dead_letter, decoder=raw_body_decoder)
        async def capture(message: KafkaMessage) -> None:
            headers = {k: v for k, v in message.headers.items() if k.startswith("x-")}
            self.dead_letters.append((message.body, headers))

    async def apply(self, batch: Sequence[ConsumedEvent[Any]]) -> list[DeadLetter]:
        if self.failures:
            raise self.failures.pop(0)
        if any(m.event.data.size in self.poison_sizes for m in batch) and len(batch) > 1:
            raise Conflict("a poisoned message in the batch")
        if len(batch) == 1 and batch[0].event.data.size in self.poison_sizes:
            raise Conflict(f"size {batch[0].event.data.size} is poison")
        dead = [DeadLetter(m, b"narrowed", "negative size") for m in batch if m.event.data.size < 0]
        self.batches.append([(m.offset, m.event.data.widget_id) for m in batch])
        return dead

    def records(
        self, *payloads: bytes, partition: int = 0, first_offset: int = 0
    ) -> list[tuple[str, int, int, bytes | None, bytes]]:
        return [
            (self.topic.name, partition, first_offset + i, b"cus_1", body)
            for i, body in enumerate(payloads)
        ]


class TestBatchConsumer:
    async def test_a_fetched_batch_reaches_the_handler_at_once_in_order(
        self, widget_topic: Topic[Any]
    ) -> None:
        h = BatchHarness(widget_topic)
        async with TestKafkaBroker(h.broker):
            await h.consumer.process(
                h.records(*(payload(widget_topic, f"w{i}", i) for i in range(4)))
            )
        assert h.batches == [[(0, "w0"), (1, "w1"), (2, "w2"), (3, "w3")]]
        assert h.dead_letters == []

    async def test_through_the_broker_messages_arrive_as_batches(
        self, widget_topic: Topic[Any]
    ) -> None:
        h = BatchHarness(widget_topic)
        async with TestKafkaBroker(h.broker) as broker:
            await broker.publish_batch(
                payload(widget_topic, "a", 1),
                payload(widget_topic, "b", 2),
                topic=widget_topic.name,
            )
        assert [widget for batch in h.batches for _, widget in batch] == ["a", "b"]

    async def test_unparseable_messages_are_dead_lettered_and_the_rest_applied(
        self, widget_topic: Topic[Any]
    ) -> None:
        h = BatchHarness(widget_topic)
        async with TestKafkaBroker(h.broker):
            await h.consumer.process(
                h.records(
                    payload(widget_topic, "w0", 0), b"{broken", payload(widget_topic, "w2", 2)
                )
            )
        assert h.batches == [[(0, "w0"), (2, "w2")]]
        [(body, headers)] = h.dead_letters
        assert body == b"{broken"
        assert headers["x-original-offset"] == "1"
        assert headers["x-consumer-group"] == "billing-widgets-batch"
        assert headers["x-dead-letter-reason"].startswith("message is not JSON")

    async def test_what_the_handler_returns_as_dead_is_dead_lettered_narrowed(
        self, widget_topic: Topic[Any]
    ) -> None:
        h = BatchHarness(widget_topic)
        async with TestKafkaBroker(h.broker):
            await h.consumer.process(
                h.records(payload(widget_topic, "ok", 1), payload(widget_topic, "neg", -1))
            )
        [(body, headers)] = h.dead_letters
        assert body == b"narrowed"
        assert headers["x-original-offset"] == "1"
        assert headers["x-dead-letter-reason"] == "negative size"

    async def test_a_retryable_failure_retries_the_whole_batch(
        self, widget_topic: Topic[Any]
    ) -> None:
        h = BatchHarness(widget_topic)
        h.failures = [ServiceUnavailable("clickhouse blip")]
        async with TestKafkaBroker(h.broker):
            await h.consumer.process(
                h.records(payload(widget_topic, "a", 1), payload(widget_topic, "b", 2))
            )
        assert h.batches == [[(0, "a"), (1, "b")]]
        assert h.dead_letters == []

    async def test_a_permanent_failure_isolates_the_poisoned_message(
        self, widget_topic: Topic[Any]
    ) -> None:
        h = BatchHarness(widget_topic)
        h.poison_sizes = {13}
        async with TestKafkaBroker(h.broker):
            await h.consumer.process(
                h.records(
                    payload(widget_topic, "a", 1),
                    payload(widget_topic, "bad", 13),
                    payload(widget_topic, "c", 3),
                )
            )
        assert h.batches == [[(0, "a")], [(2, "c")]]
        [(_, headers)] = h.dead_letters
        assert headers["x-original-offset"] == "1"
        assert headers["x-dead-letter-reason"] == "conflict: size 13 is poison"

    async def test_too_many_dead_letters_in_a_row_halt_it(self, widget_topic: Topic[Any]) -> None:
        h = BatchHarness(widget_topic)
        async with TestKafkaBroker(h.broker):
            await h.consumer.process(h.records(b"bad-0", b"bad-1", b"bad-2"))
            assert h.consumer.halted_reason is not None
            assert "3 messages dead-lettered in a row" in h.consumer.halted_reason
            with pytest.raises(ConsumerHalted):
                await h.consumer.process(h.records(payload(widget_topic, "late", 1)))
        assert h.batches == []
