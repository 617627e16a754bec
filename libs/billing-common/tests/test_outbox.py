from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError

from billing_common.db import Pool, transaction
from billing_common.events import Topic
from billing_common.outbox import OutboxRelay, OutboxWriter, prune_outbox
from billing_common.runtime import ensure_topics
from billing_local.stack import StackUrls

NOW = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)

pytestmark = pytest.mark.service


def writer() -> OutboxWriter:
    return OutboxWriter(source="widgets", clock=lambda: NOW)


async def unpublished(pool: Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    return count


class TestOutboxWriter:
    async def test_events_exist_only_if_the_transaction_commits(
        self, plumbed_pool: Pool, widget_topic: Topic[Any]
    ) -> None:
        model = widget_topic.data_model

        async def add_then_abort() -> None:
            async with transaction(plumbed_pool) as conn:
                await writer().add(
                    conn,
                    widget_topic,
                    model(widget_id="w0", size=1),
                    subject="cus_a",
                    tenant_id="ten_1",
                )
                raise RuntimeError("abort")

        with pytest.raises(RuntimeError, match="abort"):
            await add_then_abort()
        assert await unpublished(plumbed_pool) == 0

        async with transaction(plumbed_pool) as conn:
            event = await writer().add(
                conn,
                widget_topic,
                model(widget_id="w1", size=2),
                subject="cus_a",
                tenant_id="ten_1",
            )
        row = await plumbed_pool.fetchrow("SELECT * FROM outbox")
        assert row is not None
        assert (row["topic"], row["key"]) == ("billing.widgets.widget_made", "cus_a")
        assert row["event_id"] == event.id
        stored = widget_topic.parse(bytes(row["payload"]))
        assert stored.data == model(widget_id="w1", size=2)
        assert (stored.time, stored.source, stored.tenantid) == (NOW, "widgets", "ten_1")
        assert json.loads(row["headers"])["ce_type"] == "billing.widgets.widget_made"


class TestOutboxRelay:
    async def test_publishes_in_order_and_marks_sent(
        self, plumbed_pool: Pool, widget_topic: Topic[Any], stack_urls: StackUrls, fresh_schema: str
    ) -> None:
        # A topic of its own so the test reads only its own messages.
        topic = Topic(fresh_schema, "widget_made", widget_topic.data_model, "test")
        await ensure_topics(stack_urls.kafka_bootstrap, [topic.name], partitions=3)
        for i in range(30):
            async with transaction(plumbed_pool) as conn:
                await writer().add(
                    conn,
                    topic,
                    topic.data_model(widget_id=f"w{i}", size=i),
                    subject=f"cus_{i % 3}",
                    tenant_id="ten_1",
                )
        producer = AIOKafkaProducer(bootstrap_servers=stack_urls.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            relay = OutboxRelay(plumbed_pool, producer, batch_size=7)
            sent = [await relay.publish_batch() for _ in range(6)]
        finally:
            await producer.stop()
        assert sent == [7, 7, 7, 7, 2, 0]
        assert await unpublished(plumbed_pool) == 0

        consumer = AIOKafkaConsumer(
            topic.name,
            bootstrap_servers=stack_urls.kafka_bootstrap,
            auto_offset_reset="earliest",
            group_id=f"probe-{fresh_schema}",
        )
        await consumer.start()
        received: list[tuple[str, int]] = []
        try:
            async with asyncio.timeout(20):
                while len(received) < 30:
                    for records in (await consumer.getmany(timeout_ms=500)).values():
                        for record in records:
                            event = topic.parse(record.value)
                            assert record.key == event.subject.encode()
                            received.append((event.subject, event.data.size))
        finally:
            await consumer.stop()
        # Per key (customer), events arrive in the order they were committed.
        for customer in ("cus_0", "cus_1", "cus_2"):
            sizes = [size for subject, size in received if subject == customer]
            assert sizes == sorted(sizes)
            assert len(sizes) == 10

    async def test_a_failed_publish_leaves_rows_for_the_next_attempt(
        self, plumbed_pool: Pool, widget_topic: Topic[Any], stack_urls: StackUrls
    ) -> None:
        async with transaction(plumbed_pool) as conn:
            await writer().add(
                conn,
                widget_topic,
                widget_topic.data_model(widget_id="w", size=1),
                subject="cus_a",
                tenant_id="ten_1",
            )
        # The producer refuses the message (too large for it): the batch must stay unpublished.
        producer = AIOKafkaProducer(
            bootstrap_servers=stack_urls.kafka_bootstrap, max_request_size=64
        )
        await producer.start()
        try:
            relay = OutboxRelay(plumbed_pool, producer)
            with pytest.raises(MessageSizeTooLargeError):
                await relay.publish_batch()
        finally:
            await producer.stop()
        assert await unpublished(plumbed_pool) == 1

    async def test_prune_deletes_only_old_published_rows(
        self, plumbed_pool: Pool, widget_topic: Topic[Any]
    ) -> None:
        async with transaction(plumbed_pool) as conn:
            for i in range(3):
                await writer().add(
                    conn,
                    widget_topic,
                    widget_topic.data_model(widget_id=str(i), size=i),
                    subject="cus_a",
                    tenant_id="ten_1",
                )
        await plumbed_pool.execute(
            "UPDATE outbox SET published_at = now() - interval '2 days' "
            "WHERE seq = (SELECT min(seq) FROM outbox)"
        )
        await plumbed_pool.execute(
            "UPDATE outbox SET published_at = now() "
            "WHERE published_at IS NULL AND seq = (SELECT max(seq) FROM outbox)"
        )
        async with plumbed_pool.acquire() as conn:
            assert await prune_outbox(conn, older_than_hours=24) == 1
        assert await plumbed_pool.fetchval("SELECT count(*) FROM outbox") == 2
