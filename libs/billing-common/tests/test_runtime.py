from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr

from billing_common.config import ServiceSettings
from billing_common.db import Connection
from billing_common.errors import ServiceUnavailable
from billing_common.events import CloudEvent, Topic
from billing_common.runtime import ServiceDefinition, ServiceRuntime, ensure_topics
from billing_local.stack import StackUrls

pytestmark = pytest.mark.service

NOW = datetime(2026, 5, 1, tzinfo=UTC)


def settings_for(stack: StackUrls, **overrides: Any) -> ServiceSettings:
    values: dict[str, Any] = {
        "kafka_bootstrap": stack.kafka_bootstrap,
        "database_url": SecretStr(stack.database_url),
        "redis_url": SecretStr(stack.redis_url),
        "outbox_poll_interval_ms": 20,
    }
    values.update(overrides)
    return ServiceSettings(**values)


async def wait_until(predicate: Any, within_seconds: float = 30) -> None:
    """Poll `predicate` (another process's effect: nothing to await) until true or time out."""
    async with asyncio.timeout(within_seconds):
        while not await predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_not_ready_until_started_then_healthy(
    stack_urls: StackUrls, fresh_schema: str, widget_topic: Topic[Any]
) -> None:
    applied: list[CloudEvent[Any]] = []

    async def on_widget(conn: Connection, event: CloudEvent[Any]) -> None:
        applied.append(event)

    async def setup(runtime: ServiceRuntime) -> None:
        runtime.consumer.handle(widget_topic, on_widget)

    definition = ServiceDefinition(
        name=fresh_schema,
        package="billing_common",
        produces=(widget_topic,),
        setup=setup,
        has_migrations=False,
    )
    runtime = ServiceRuntime(definition, settings_for(stack_urls), clock=lambda: NOW)
    ok, checks = await runtime.health()
    assert not ok
    assert checks == {"startup": "starting"}
    with pytest.raises(ServiceUnavailable):
        async with runtime.unit_of_work():
            pass
    try:
        await asyncio.wait_for(runtime.start(), timeout=60)
        ok, checks = await runtime.health()
        assert ok, checks
        assert checks == {"database": "ok", "broker": "ok", "migrations": "ok"}

        # A use case's events leave through the outbox and come back through the consumer.
        async with runtime.unit_of_work() as conn:
            await runtime.outbox.add(
                conn,
                widget_topic,
                widget_topic.data_model(widget_id="w1", size=3),
                subject="cus_1",
                tenant_id="ten_1",
            )

        async def consumed() -> bool:
            return len(applied) == 1

        await wait_until(consumed)
        assert applied[0].data.widget_id == "w1"
        assert applied[0].time == NOW
        pending = await runtime.pool.fetchval(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        )
        assert pending == 0

        # The HTTP face: /health and /metrics.
        transport = httpx.ASGITransport(app=runtime.build_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            health = await client.get("/health")
            metrics = await client.get("/metrics")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        assert "billing_outbox_published_total" in metrics.text
    finally:
        await runtime.stop()
    ok, _ = await runtime.health()
    assert not ok


async def test_startup_keeps_retrying_while_the_database_is_unreachable(
    stack_urls: StackUrls, fresh_schema: str
) -> None:
    definition = ServiceDefinition(
        name=fresh_schema, package="billing_common", has_migrations=False
    )
    settings = settings_for(
        stack_urls, database_url=SecretStr("postgresql://postgres@127.0.0.1:1/billing")
    )
    runtime = ServiceRuntime(definition, settings)
    task = asyncio.create_task(runtime.start())
    try:

        async def failed_once() -> bool:
            return runtime.health_state.startup_error is not None

        await wait_until(failed_once, within_seconds=20)
        ok, checks = await runtime.health()
        assert not ok
        assert "startup" in checks
        assert not task.done()  # still retrying, not crashed
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await runtime.stop()


async def test_ensure_topics_creates_what_is_missing_once(
    stack_urls: StackUrls, fresh_schema: str
) -> None:
    names = [f"billing.{fresh_schema}.a", f"billing.{fresh_schema}.b"]
    await ensure_topics(stack_urls.kafka_bootstrap, names, partitions=2)
    await ensure_topics(stack_urls.kafka_bootstrap, names, partitions=2)  # idempotent
    admin = AIOKafkaAdminClient(bootstrap_servers=stack_urls.kafka_bootstrap)
    await admin.start()
    try:
        assert set(names) <= set(await admin.list_topics())
    finally:
        await admin.close()
