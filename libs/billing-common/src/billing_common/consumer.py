"""Effectively-once consumption on FastStream: inbox, retries, dead letters.

For each message, in order per partition:

1. parse and validate the envelope and its data against the topic's model; a
   message that does not validate can never succeed, so it is dead-lettered;
2. in one database transaction, insert `(consumer, event id)` into the inbox
   and, only if that row is new, run the handler: a redelivered event changes
   nothing;
3. only then does FastStream commit the offset (`AckPolicy.NACK_ON_ERROR` with
   auto-commit off; never `ACK_FIRST`, which commits before processing).

A retryable failure is retried in place with backoff (the partition waits: a
customer's events are never reordered); one that is not, or that exhausts its
attempts, goes to `<topic>.dlq` with the original topic, partition, offset and
the reason in headers, and the DLQ write is acknowledged before the offset is
committed. After `max_consecutive_dead_letters` in a row the consumer halts
and reports unhealthy instead of draining the topic after a bad deploy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from prometheus_client import Counter

from billing_common.db import Connection, Pool
from billing_common.errors import BillingError, InvalidEvent, is_retryable
from billing_common.events import CloudEvent, DataT, Topic, dead_letter_topic
from billing_common.faults import CONSUMER_AFTER_COMMIT, crash_point
from billing_common.telemetry import continue_trace

logger = logging.getLogger(__name__)

EVENTS_CONSUMED = Counter(
    "billing_events_consumed_total",
    "Messages consumed, by outcome (applied, duplicate, dead_lettered)",
    ["consumer", "topic", "outcome"],
)
EVENT_RETRIES = Counter(
    "billing_event_retries_total", "Retries of retryable failures", ["consumer", "topic"]
)

Handler = Callable[[Connection, CloudEvent[Any]], Awaitable[None]]


@dataclass(frozen=True)
class ConsumerPolicy:
    max_attempts: int = 5
    retry_backoff: float = 0.2
    max_consecutive_dead_letters: int = 20


class ConsumerHalted(Exception):
    """Raised for messages that arrive after the consumer decided to stop."""


class _DeadLettering:
    """What both consumers share: a group, its broker, and the halt after dead letters."""

    def __init__(self, *, group: str, broker: KafkaBroker, policy: ConsumerPolicy) -> None:
        self.group = group
        self.broker = broker
        self.policy = policy
        self._consecutive_dead_letters = 0
        self.halted_reason: str | None = None

    async def _dead_letter(
        self,
        topic_name: str,
        partition: int,
        offset: int,
        key: bytes | None,
        payload: bytes,
        reason: str,
    ) -> None:
        await publish_dead_letter(
            self.broker, self.group, topic_name, partition, offset, key, payload, reason
        )
        self._consecutive_dead_letters += 1
        if self._consecutive_dead_letters >= self.policy.max_consecutive_dead_letters:
            self.halted_reason = (
                f"{self._consecutive_dead_letters} messages dead-lettered in a row; last: {reason}"
            )
            logger.critical("consumer %s halted: %s", self.group, self.halted_reason)


class InboxConsumer(_DeadLettering):
    """One consumer group of a service: its topics, their handlers, one FastStream subscriber."""

    def __init__(
        self,
        *,
        group: str,
        pool: Pool,
        broker: KafkaBroker,
        policy: ConsumerPolicy,
        after_commit: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(group=group, broker=broker, policy=policy)
        self.pool = pool
        self.after_commit = after_commit
        self._routes: dict[str, tuple[Topic[Any], Handler]] = {}

    def handle(
        self,
        topic: Topic[DataT],
        handler: Callable[[Connection, CloudEvent[DataT]], Awaitable[None]],
    ) -> None:
        """Route `topic` to `handler`, which runs inside the inbox transaction."""
        if topic.name in self._routes:
            raise ValueError(f"{topic.name} already has a handler in {self.group}")
        self._routes[topic.name] = (topic, handler)

    @property
    def topics(self) -> list[str]:
        return list(self._routes)

    def register(self) -> None:
        """Create the FastStream subscriber; call before the broker starts."""
        if not self._routes:
            return
        subscriber = self.broker.subscriber(
            *self._routes,
            group_id=self.group,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            max_poll_interval_ms=10 * 60 * 1000,
            # Kafka answers a fetch as soon as data arrives; the embedded broker waits
            # out the whole wait, so a short one keeps delivery latency low there.
            fetch_max_wait_ms=50,
            # Our own parsing decides what is poison: FastStream's default decoder would
            # raise on undecodable JSON before `process` runs, and the message would be
            # redelivered forever instead of dead-lettered.
            decoder=raw_body_decoder,
        )

        @subscriber
        async def on_message(message: KafkaMessage) -> None:
            await self.process(
                message.raw_message.topic,  # type: ignore[union-attr]
                message.raw_message.partition,  # type: ignore[union-attr]
                message.raw_message.offset,  # type: ignore[union-attr]
                message.raw_message.key,  # type: ignore[union-attr]
                message.body,
            )

    async def process(
        self, topic_name: str, partition: int, offset: int, key: bytes | None, payload: bytes
    ) -> None:
        """Apply one message effectively once, or dead-letter it. Raising means: redeliver."""
        if self.halted_reason is not None:
            # Leave the message uncommitted; the pause keeps the redelivery loop slow.
            await asyncio.sleep(1.0)
            raise ConsumerHalted(self.halted_reason)
        topic, handler = self._routes[topic_name]
        attempt = 0
        while True:
            attempt += 1
            try:
                event = topic.parse(payload)
                with continue_trace(f"consume {topic_name}", event.traceparent):
                    applied = await self._apply(topic, handler, event, partition, offset)
                crash_point(CONSUMER_AFTER_COMMIT)
                self._consecutive_dead_letters = 0
                EVENTS_CONSUMED.labels(
                    self.group, topic_name, "applied" if applied else "duplicate"
                ).inc()
                if applied:
                    self.after_commit()
                return
            except Exception as exc:
                if is_retryable(exc) and attempt < self.policy.max_attempts:
                    EVENT_RETRIES.labels(self.group, topic_name).inc()
                    logger.warning(
                        "retrying %s[%d]@%d (attempt %d): %s",
                        topic_name,
                        partition,
                        offset,
                        attempt,
                        exc,
                    )
                    await asyncio.sleep(self.policy.retry_backoff * 2 ** (attempt - 1))
                    continue
                reason = _reason(exc, attempt)
                await self._dead_letter(topic_name, partition, offset, key, payload, reason)
                return

    async def _apply(
        self,
        topic: Topic[Any],
        handler: Handler,
        event: CloudEvent[Any],
        partition: int,
        offset: int,
    ) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            fresh = await conn.fetchval(
                "INSERT INTO inbox (consumer, event_id, topic, kafka_partition, kafka_offset) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
                self.group,
                event.id,
                topic.name,
                partition,
                offset,
            )
            if not fresh:
                return False
            await handler(conn, event)
            return True


@dataclass(frozen=True)
class ConsumedEvent(Generic[DataT]):
    """One valid message of a batch: where it came from and its parsed envelope."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    payload: bytes
    event: CloudEvent[DataT]


@dataclass(frozen=True)
class DeadLetter:
    """What a batch handler could not apply: `payload` goes to `<source topic>.dlq`.

    The payload may be narrower than the message (one bad event out of many),
    so the good part of a message is never held back by its bad part.
    """

    source: ConsumedEvent[Any]
    payload: bytes
    reason: str


BatchHandler = Callable[[Sequence[ConsumedEvent[Any]]], Awaitable[Sequence[DeadLetter]]]


class BatchConsumer(_DeadLettering):
    """A consumer group that applies each fetched batch of messages at once.

    For high-volume topics (usage events) one transaction per message costs
    too much. The handler receives every valid message of a fetch, in offset
    order per partition, and owns idempotence itself (the usage store
    deduplicates by event id; its side effects keep per-partition offset
    marks); offsets are committed only after it returns.

    - A message that does not parse is dead-lettered before the handler runs.
    - The handler returns what it could not apply (`DeadLetter`), which is
      dead-lettered; the rest of the batch stands.
    - A retryable failure retries the whole batch with backoff; a failure that
      is not, or that exhausts its attempts, replays the batch one message at a
      time, so only the message that fails on its own is dead-lettered.
    - After `max_consecutive_dead_letters` in a row the consumer halts, as
      `InboxConsumer` does.
    """

    def __init__(
        self,
        *,
        group: str,
        broker: KafkaBroker,
        policy: ConsumerPolicy,
        topics: Sequence[Topic[Any]],
        handler: BatchHandler,
        max_records: int = 500,
        batch_timeout_ms: int = 50,
    ) -> None:
        if not topics:
            raise ValueError("a batch consumer reads at least one topic")
        super().__init__(group=group, broker=broker, policy=policy)
        self.handler = handler
        self.max_records = max_records
        self.batch_timeout_ms = batch_timeout_ms
        self._topics = {topic.name: topic for topic in topics}

    @property
    def topics(self) -> list[str]:
        return list(self._topics)

    def register(self) -> None:
        """Create the FastStream batch subscriber; call before the broker starts."""
        subscriber = self.broker.subscriber(
            *self._topics,
            group_id=self.group,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            max_poll_interval_ms=10 * 60 * 1000,
            fetch_max_wait_ms=50,
            batch=True,
            max_records=self.max_records,
            batch_timeout_ms=self.batch_timeout_ms,
            decoder=raw_body_decoder,
        )

        @subscriber
        async def on_batch(message: KafkaMessage) -> None:
            records = message.raw_message
            # A tuple from Kafka; FastStream's test broker hands over a list.
            batch = records if isinstance(records, tuple | list) else (records,)
            await self.process(
                [
                    (record.topic, record.partition, record.offset, record.key, record.value or b"")
                    for record in batch
                ]
            )

    async def process(self, records: Sequence[tuple[str, int, int, bytes | None, bytes]]) -> None:
        """Apply one fetched batch; raising means: redeliver it from its first offset."""
        if self.halted_reason is not None:
            await asyncio.sleep(1.0)
            raise ConsumerHalted(self.halted_reason)
        valid: list[ConsumedEvent[Any]] = []
        for topic_name, partition, offset, key, payload in records:
            try:
                event = self._topics[topic_name].parse(payload)
            except Exception as exc:
                await self._dead_letter(
                    topic_name, partition, offset, key, payload, _reason(exc, 1)
                )
                continue
            valid.append(ConsumedEvent(topic_name, partition, offset, key, payload, event))
        if valid:
            await self._apply(valid, split_on_failure=True)

    async def _apply(self, batch: Sequence[ConsumedEvent[Any]], *, split_on_failure: bool) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                dead = await self.handler(batch)
                break
            except Exception as exc:
                if is_retryable(exc) and attempt < self.policy.max_attempts:
                    EVENT_RETRIES.labels(self.group, batch[0].topic).inc()
                    logger.warning(
                        "retrying a batch of %d (attempt %d): %s", len(batch), attempt, exc
                    )
                    await asyncio.sleep(self.policy.retry_backoff * 2 ** (attempt - 1))
                    continue
                if split_on_failure and len(batch) > 1:
                    logger.warning("a batch of %d failed (%s); one by one now", len(batch), exc)
                    for message in batch:
                        await self._apply([message], split_on_failure=False)
                    return
                message = batch[0]
                await self._dead_letter(
                    message.topic,
                    message.partition,
                    message.offset,
                    message.key,
                    message.payload,
                    _reason(exc, attempt),
                )
                return
        crash_point(CONSUMER_AFTER_COMMIT)
        for letter in dead:
            source = letter.source
            await self._dead_letter(
                source.topic,
                source.partition,
                source.offset,
                source.key,
                letter.payload,
                letter.reason,
            )
        if len(dead) < len(batch):
            self._consecutive_dead_letters = 0
        for message in batch:
            EVENTS_CONSUMED.labels(self.group, message.topic, "applied").inc()


async def publish_dead_letter(
    broker: KafkaBroker,
    group: str,
    topic_name: str,
    partition: int,
    offset: int,
    key: bytes | None,
    payload: bytes,
    reason: str,
) -> None:
    """Write `payload` to `<topic>.dlq` with where it came from and why, and wait for the ack."""
    await broker.publish(
        payload,
        topic=dead_letter_topic(topic_name),
        key=key,
        headers={
            "x-original-topic": topic_name,
            "x-original-partition": str(partition),
            "x-original-offset": str(offset),
            "x-dead-letter-reason": reason,
            "x-consumer-group": group,
        },
    )
    EVENTS_CONSUMED.labels(group, topic_name, "dead_lettered").inc()
    logger.error("dead-lettered %s[%d]@%d: %s", topic_name, partition, offset, reason)


async def raw_body_decoder(message: StreamMessage[Any]) -> bytes:
    """A FastStream decoder that leaves the body as bytes for our own parsing."""
    return message.body


def _reason(exc: Exception, attempts: int) -> str:
    if isinstance(exc, InvalidEvent):
        return exc.detail
    if isinstance(exc, BillingError):
        return f"{exc.code}: {exc.detail}"
    return f"gave up after {attempts} attempts: {type(exc).__name__}: {exc}"


async def prune_inbox(conn: Connection, *, older_than_days: int) -> int:
    """Forget dedup records older than the window in which a redelivery can happen.

    The window must exceed the topics' retention: an event redelivered after its
    inbox row is gone would be applied again.
    """
    result: str = await conn.execute(
        "DELETE FROM inbox WHERE processed_at < now() - make_interval(days => $1)",
        older_than_days,
    )
    return int(result.split()[-1])
