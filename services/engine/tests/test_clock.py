"""The billing clock's loop and the service's wiring."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from faststream.kafka import KafkaBroker

from billing_common.consumer import ConsumerPolicy, InboxConsumer
from billing_common.db import Pool
from billing_engine import handlers
from billing_engine.app import definition
from billing_engine.clock import BillingClock
from billing_engine.events import CONSUMES, PRODUCES
from billing_engine.settings import EngineSettings

from .conftest import SETTINGS, DatabaseOnlyRuntime, Feed, new_customer, new_subscription

pytestmark = pytest.mark.service


async def wait_for_sagas(pool: Pool, count: int) -> None:
    async with asyncio.timeout(5):
        while True:
            if await pool.fetchval("SELECT count(*) FROM sagas") >= count:
                return
            await asyncio.sleep(0.01)


async def test_the_loop_starts_due_work_as_it_appears(
    engine_pool: Pool, runtime: DatabaseOnlyRuntime, feed: Feed
) -> None:
    billing_clock = BillingClock(SETTINGS.model_copy(update={"scan_interval_ms": 60_000}))
    task = asyncio.create_task(billing_clock.run(runtime))
    try:
        await asyncio.sleep(0.05)
        await feed.subscription(new_subscription(), new_customer())
        billing_clock.wake()  # the interval is a minute: only the wake can start it
        await wait_for_sagas(engine_pool, 1)
        assert await engine_pool.fetchval("SELECT count(*) FROM outbox") == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_loop_survives_a_failed_pass(
    engine_pool: Pool, runtime: DatabaseOnlyRuntime, feed: Feed
) -> None:
    billing_clock = BillingClock(SETTINGS)
    await engine_pool.execute("ALTER TABLE sagas RENAME TO sagas_away")
    task = asyncio.create_task(billing_clock.run(runtime))
    try:
        await feed.subscription(new_subscription(), new_customer())
        await asyncio.sleep(0.1)  # passes fail: no saga table
        assert not task.done()
        await engine_pool.execute("ALTER TABLE sagas_away RENAME TO sagas")
        await wait_for_sagas(engine_pool, 1)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_every_consumed_topic_has_a_handler(runtime: DatabaseOnlyRuntime) -> None:
    consumer = InboxConsumer(
        group="billing-engine",
        pool=runtime.pool,
        broker=KafkaBroker("127.0.0.1:1"),
        policy=ConsumerPolicy(),
    )
    runtime._consumer = consumer
    handlers.register(runtime)
    assert consumer.topics == [topic.name for topic in CONSUMES]
    assert [topic.name for topic in definition.produces] == [topic.name for topic in PRODUCES]
    assert {topic.name for topic in PRODUCES} == {
        "billing.engine.period_closing",
        "billing.subscriptions.trial_end_requested",
        "billing.engine.test_clock_customer_attached",
        "billing.engine.test_clock_advanced",
    }


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGINE_SAGA_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("ENGINE_SAGA_MAX_ATTEMPTS", "7")
    settings = EngineSettings()
    assert settings.retry_policy.timeout.total_seconds() == 2.5
    assert settings.retry_policy.max_attempts == 7
    assert settings.scan_interval_ms == 500
