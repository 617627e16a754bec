"""The transactional outbox: events are written with the state they describe.

A use case adds its events to the `outbox` table in the same transaction as its
state change (`OutboxWriter.add`). The `OutboxRelay` publishes unpublished rows
in `seq` order and marks them published. Publishing happens before marking, so
a crash between the two re-sends those rows on restart: delivery is
at-least-once and consumers dedupe on the event id (see `consumer.py`).

Ordering: rows are read `FOR UPDATE` in `seq` order, so two relay replicas of
one service never publish the same batch concurrently nor reorder it. Two
transactions that touch the same customer serialize on its rows, so their
outbox rows are numbered in commit order, which keeps each customer's events in
order on its partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from prometheus_client import Counter, Gauge

from billing_common.db import Connection, Pool
from billing_common.events import CloudEvent, DataT, Topic, new_event
from billing_common.faults import OUTBOX_AFTER_PUBLISH, crash_point
from billing_common.ids import uuid7
from billing_common.telemetry import current_traceparent

logger = logging.getLogger(__name__)

OUTBOX_PUBLISHED = Counter(
    "billing_outbox_published_total", "Events published by the outbox relay", ["topic"]
)
OUTBOX_PENDING = Gauge("billing_outbox_pending", "Outbox rows not yet published")

Clock = Callable[[], datetime]


class OutboxWriter:
    """Adds events to the outbox inside the caller's transaction."""

    def __init__(self, source: str, clock: Clock) -> None:
        self.source = source
        self.clock = clock
        self.wrote_since_wake = False
        """Set by `add`; the runtime wakes the relay after a commit only when it is set."""

    async def add(
        self,
        conn: Connection,
        topic: Topic[DataT],
        data: DataT,
        *,
        subject: str,
        tenant_id: str,
    ) -> CloudEvent[DataT]:
        """Write one event; it is published only if the transaction commits."""
        event = new_event(
            topic,
            data,
            event_id=uuid7(),
            source=self.source,
            subject=subject,
            tenant_id=tenant_id,
            time=self.clock(),
            traceparent=current_traceparent(),
        )
        await self.add_encoded(
            conn,
            topic,
            event.to_bytes(),
            event_id=event.id,
            subject=subject,
            traceparent=event.traceparent,
        )
        return event

    async def add_encoded(
        self,
        conn: Connection,
        topic: Topic[Any],
        payload: bytes,
        *,
        event_id: uuid.UUID,
        subject: str,
        traceparent: str | None,
    ) -> None:
        """Write an envelope the caller encoded itself (usage events, whose numbers only
        `usage_events.encode_usage_events` writes exactly)."""
        headers = {"ce_type": topic.name, "content-type": "application/cloudevents+json"}
        if traceparent:
            headers["traceparent"] = traceparent
        self.wrote_since_wake = True
        await conn.execute(
            "INSERT INTO outbox (event_id, topic, key, payload, headers)"
            " VALUES ($1, $2, $3, $4, $5)",
            event_id,
            topic.name,
            subject,
            payload,
            json.dumps(headers),
        )


class OutboxRelay:
    """Publishes the outbox to Kafka in order; one task per service process."""

    def __init__(
        self,
        pool: Pool,
        producer: AIOKafkaProducer,
        *,
        batch_size: int = 500,
        poll_interval: float = 0.1,
    ) -> None:
        self.pool = pool
        self.producer = producer
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    def wake(self) -> None:
        """Called after a transaction that wrote to the outbox commits: publish now."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            # Cleared before reading, so a wake() during the batch triggers another pass.
            self._wake.clear()
            try:
                published = await self.publish_batch()
                self.last_error = None
            except Exception as exc:  # the broker or database is down: keep trying
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("outbox relay failed, retrying", exc_info=True)
                published = 0
                await asyncio.sleep(1.0)
            if published < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)

    async def publish_batch(self) -> int:
        """Publish up to `batch_size` unpublished rows; return how many."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT seq, topic, key, payload, headers FROM outbox "
                "WHERE published_at IS NULL ORDER BY seq LIMIT $1 FOR UPDATE",
                self.batch_size,
            )
            if not rows:
                OUTBOX_PENDING.set(0)
                return 0
            deliveries = []
            for row in rows:
                headers = [(k, v.encode()) for k, v in json.loads(row["headers"]).items()]
                deliveries.append(
                    await self.producer.send(
                        row["topic"],
                        value=bytes(row["payload"]),
                        key=row["key"].encode(),
                        headers=headers,
                    )
                )
            await asyncio.gather(*deliveries)
            crash_point(OUTBOX_AFTER_PUBLISH)
            await conn.execute(
                "UPDATE outbox SET published_at = now() WHERE seq = ANY($1::BIGINT[])",
                [row["seq"] for row in rows],
            )
        for row in rows:
            OUTBOX_PUBLISHED.labels(row["topic"]).inc()
        return len(rows)


async def prune_outbox(conn: Connection, *, older_than_hours: int) -> int:
    """Delete rows published long ago (they are kept a while for inspection); return how many."""
    result: str = await conn.execute(
        "DELETE FROM outbox WHERE published_at < now() - make_interval(hours => $1)",
        older_than_hours,
    )
    return int(result.split()[-1])
