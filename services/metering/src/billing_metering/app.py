"""Wiring of the metering service: meters API, usage queries, the usage consumer (batches),
and the customer projection that releases parked events.

The usage store is ClickHouse: `CLICKHOUSE_URL` (`http(s)://...` for a server,
`chdb:///path` for the engine in this process); unset, chdb under
`./.metering-chdb`. The accumulators are the Redis at `REDIS_URL`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from starlette.routing import BaseRoute

from billing_common.cycle import PERIOD_CLOSING, PeriodClosing
from billing_common.errors import ServiceUnavailable
from billing_common.events import CloudEvent
from billing_common.runtime import ServiceDefinition, ServiceRuntime
from billing_customers.events import (
    CUSTOMER_CREATED,
    CUSTOMER_UPDATED,
    CustomerCreated,
    CustomerUpdated,
)
from billing_metering import api, cycle, projections
from billing_metering.accumulators import UsageAccumulators
from billing_metering.events import PLAN_PUBLISHED_METERS, PRODUCES
from billing_metering.store import UsageStore
from billing_metering.usage import USAGE_TOPICS, UsageConsumer

#: How often parked events are checked against the customers known by now.
PARKED_SWEEP_SECONDS = 2.0


class _Backends:
    """The usage store and accumulators of this process, opened once at the first start."""

    def __init__(self) -> None:
        self.store: UsageStore | None = None
        self.accumulators: UsageAccumulators | None = None

    def __call__(self) -> tuple[UsageStore, UsageAccumulators]:
        if self.store is None or self.accumulators is None:
            raise ServiceUnavailable("metering is still starting")
        return self.store, self.accumulators


_backends = _Backends()


def _store_url(runtime: ServiceRuntime) -> str:
    return runtime.settings.clickhouse_url or f"chdb://{Path('.metering-chdb').resolve()}"


async def setup(runtime: ServiceRuntime) -> None:
    if _backends.store is None:
        # chdb holds one data directory per process: open it once, keep it across restarts
        # of the other parts.
        store = UsageStore.connect(_store_url(runtime))
        await asyncio.to_thread(store.migrate)
        _backends.store = store
    redis: Redis = Redis.from_url(runtime.settings.redis_url.get_secret_value())
    group = f"{runtime.definition.consumer_group}-usage"
    _backends.accumulators = UsageAccumulators(redis, consumer=group)

    async def on_customer_created(conn: Any, event: CloudEvent[CustomerCreated]) -> None:
        await projections.customer_known(runtime, conn, event)

    async def on_customer_updated(conn: Any, event: CloudEvent[CustomerUpdated]) -> None:
        await projections.customer_known(runtime, conn, event)

    runtime.consumer.handle(CUSTOMER_CREATED, on_customer_created)
    runtime.consumer.handle(CUSTOMER_UPDATED, on_customer_updated)
    runtime.consumer.handle(PLAN_PUBLISHED_METERS, projections.plan_published)
    store = _backends.store

    async def on_period_closing(conn: Any, event: CloudEvent[PeriodClosing]) -> None:
        await cycle.period_closing(runtime, store, conn, event)

    runtime.consumer.handle(PERIOD_CLOSING, on_period_closing)
    consumer = UsageConsumer(runtime, _backends.store, _backends.accumulators, group=group)
    runtime.add_batch_consumer("usage", USAGE_TOPICS, consumer.handle)
    runtime.spawn(
        projections.sweep_parked_events(runtime, PARKED_SWEEP_SECONDS), name="parked-sweep"
    )


def routes(runtime: ServiceRuntime) -> Sequence[BaseRoute]:
    return api.routes(runtime, _backends)


definition = ServiceDefinition(
    name="metering",
    package="billing_metering",
    produces=PRODUCES,
    routes=routes,
    setup=setup,
)
