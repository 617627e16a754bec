"""One service process: database, migrations, broker, outbox relay, consumers, HTTP.

`run_service(definition)` is what every `python -m billing_<name>` calls. The
HTTP server comes up first and answers `/health` with 503 until the process is
ready (database reachable, migrations applied, topics present, broker
connected); startup retries while a backend is still coming up, so services
may start in any order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import uvicorn
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from billing_common.config import ServiceSettings
from billing_common.consumer import (
    BatchConsumer,
    BatchHandler,
    ConsumerPolicy,
    InboxConsumer,
    prune_inbox,
)
from billing_common.db import (
    Connection,
    Pool,
    apply_migrations,
    create_pool,
    load_migrations,
    transaction,
)
from billing_common.errors import ServiceUnavailable
from billing_common.events import Topic
from billing_common.http import exception_handlers
from billing_common.outbox import OutboxRelay, OutboxWriter, prune_outbox
from billing_common.telemetry import (
    TraceContextMiddleware,
    configure_logging,
    configure_tracing,
    route_library_logs_to_json,
)

logger = logging.getLogger(__name__)


def system_clock() -> datetime:
    """The real clock. Domain code never calls it: the service layer passes instants in."""
    return datetime.now(UTC)


RoutesFactory = Callable[["ServiceRuntime"], Sequence[BaseRoute]]
Setup = Callable[["ServiceRuntime"], Awaitable[None]]


async def _no_setup(runtime: ServiceRuntime) -> None:
    return None


@dataclass(frozen=True)
class ServiceDefinition:
    """What makes a service: its name, package (migrations), topics, routes and handlers."""

    name: str
    package: str
    produces: Sequence[Topic[Any]] = ()
    routes: RoutesFactory = lambda runtime: ()
    setup: Setup = _no_setup
    """Registers consumers (`runtime.consumer.handle`) and builds the service objects."""
    has_migrations: bool = True

    @property
    def schema(self) -> str:
        return self.name.replace("-", "_")

    @property
    def consumer_group(self) -> str:
        return f"billing-{self.name}"


class ServiceContext(Protocol):
    """What use cases need of a running service: its pool, one transaction per use case
    (`unit_of_work`), its outbox and its clock. `ServiceRuntime` is one; tests build
    lighter ones."""

    @property
    def outbox(self) -> OutboxWriter: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...

    @property
    def pool(self) -> Pool: ...

    def unit_of_work(self) -> AbstractAsyncContextManager[Connection]: ...


@dataclass
class HealthState:
    ready: bool = False
    startup_error: str | None = None
    checks: dict[str, str] = field(default_factory=dict)


class ServiceRuntime:
    """The running parts of one service process and their lifecycle."""

    def __init__(
        self,
        definition: ServiceDefinition,
        settings: ServiceSettings,
        clock: Callable[[], datetime] = system_clock,
    ) -> None:
        self.definition = definition
        self.settings = settings
        self.clock = clock
        self.health_state = HealthState()
        self._broker: KafkaBroker | None = None
        self.outbox = OutboxWriter(source=definition.name, clock=clock)
        self._pool: Pool | None = None
        self._producer: AIOKafkaProducer | None = None
        self._relay: OutboxRelay | None = None
        self._consumer: InboxConsumer | None = None
        self._batch_consumers: list[BatchConsumer] = []
        self._start_task: asyncio.Task[None] | None = None
        self._background: list[asyncio.Task[None]] = []

    # -- the parts, available once started ------------------------------------------------
    @property
    def pool(self) -> Pool:
        if self._pool is None:
            raise ServiceUnavailable(f"{self.definition.name} is still starting")
        return self._pool

    @property
    def broker(self) -> KafkaBroker:
        if self._broker is None:
            raise ServiceUnavailable(f"{self.definition.name} is still starting")
        return self._broker

    @property
    def consumer(self) -> InboxConsumer:
        if self._consumer is None:
            raise RuntimeError("the consumer exists once the database pool is open")
        return self._consumer

    def add_batch_consumer(
        self,
        name: str,
        topics: Sequence[Topic[Any]],
        handler: BatchHandler,
        *,
        max_records: int = 500,
    ) -> BatchConsumer:
        """A consumer group of its own (`billing-<service>-<name>`) that handles whole fetched
        batches; call from `setup`."""
        consumer = BatchConsumer(
            group=f"{self.definition.consumer_group}-{name}",
            broker=self.broker,
            policy=self._consumer_policy(),
            topics=topics,
            handler=handler,
            max_records=max_records,
        )
        self._batch_consumers.append(consumer)
        return consumer

    def _consumer_policy(self) -> ConsumerPolicy:
        settings = self.settings
        return ConsumerPolicy(
            max_attempts=settings.consumer_max_attempts,
            retry_backoff=settings.consumer_retry_backoff_ms / 1000,
            max_consecutive_dead_letters=settings.consumer_max_consecutive_dead_letters,
        )

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[Connection]:
        """One transaction for one use case; the outbox relay is woken after it commits."""
        if not self.health_state.ready:
            raise ServiceUnavailable(f"{self.definition.name} is still starting")
        async with transaction(self.pool) as conn:
            yield conn
        self.wake_relay()

    def wake_relay(self) -> None:
        """After a commit: publish now if the transaction wrote events (else the poll suffices)."""
        if self._relay is not None and self.outbox.wrote_since_wake:
            self.outbox.wrote_since_wake = False
            self._relay.wake()

    def spawn(self, coro: Awaitable[None], name: str) -> None:
        """Run a background loop for the life of the process."""

        async def runner() -> None:
            await coro

        self._background.append(asyncio.create_task(runner(), name=name))

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Bring every part up, retrying while backends are unreachable."""
        delay = 0.2
        while True:
            try:
                await self._start_once()
                self.health_state.ready = True
                self.health_state.startup_error = None
                logger.info("%s ready", self.definition.name)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.health_state.startup_error = f"{type(exc).__name__}: {exc}"
                logger.warning("startup of %s failed, retrying: %s", self.definition.name, exc)
                await self._close_parts()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _start_once(self) -> None:
        settings, definition = self.settings, self.definition
        # A fresh broker per attempt: subscribers of a failed attempt must not linger.
        self._broker = KafkaBroker(
            settings.kafka_bootstrap,
            client_id=f"billing-{definition.name}",
            logger=logging.getLogger(f"faststream.{definition.name}"),
        )
        self._pool = await create_pool(
            settings.database_url.get_secret_value(),
            definition.schema,
            min_size=settings.database_pool_min,
            max_size=settings.database_pool_max,
        )
        await apply_migrations(
            self._pool,
            definition.schema,
            load_migrations("billing_common"),
            history_table="common_migrations",
        )
        if definition.has_migrations:
            await apply_migrations(
                self._pool, definition.schema, load_migrations(definition.package)
            )
        self._consumer = InboxConsumer(
            group=definition.consumer_group,
            pool=self._pool,
            broker=self.broker,
            policy=self._consumer_policy(),
            after_commit=self.wake_relay,
        )
        self._batch_consumers = []
        await definition.setup(self)
        consumed = self._consumer.topics + [
            name for batch in self._batch_consumers for name in batch.topics
        ]
        await ensure_topics(
            settings.kafka_bootstrap,
            [t.name for t in definition.produces] + consumed + [f"{name}.dlq" for name in consumed],
            partitions=settings.kafka_default_partitions,
        )
        self._consumer.register()
        for batch_consumer in self._batch_consumers:
            batch_consumer.register()
        await self.broker.start()
        route_library_logs_to_json()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            acks="all",
            linger_ms=2,
            enable_idempotence=False,  # unsupported by the embedded broker; the outbox carries it
            client_id=f"billing-{definition.name}-outbox",
        )
        await self._producer.start()
        if settings.outbox_relay_enabled:
            self._relay = OutboxRelay(
                self._pool,
                self._producer,
                batch_size=settings.outbox_batch_size,
                poll_interval=settings.outbox_poll_interval_ms / 1000,
            )
            self._relay.start()
        self.spawn(self._prune_periodically(), name="prune")

    async def _prune_periodically(self) -> None:
        """Keep the outbox and inbox small: published rows and old dedup records go."""
        settings = self.settings
        while True:
            try:
                async with self.pool.acquire() as conn:
                    await prune_outbox(conn, older_than_hours=settings.outbox_retention_hours)
                    await prune_inbox(conn, older_than_days=settings.inbox_retention_days)
            except Exception:
                logger.warning("pruning the outbox and inbox failed", exc_info=True)
            await asyncio.sleep(settings.prune_interval_seconds)

    async def _close_parts(self) -> None:
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(BaseException):
                await task
        self._background.clear()
        if self._relay is not None:
            await self._relay.stop()
            self._relay = None
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None
        if self._broker is not None:
            with contextlib.suppress(Exception):
                await self._broker.stop()
            self._broker = None
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await self._pool.close()
            self._pool = None

    async def stop(self) -> None:
        self.health_state.ready = False
        if self._start_task is not None and not self._start_task.done():
            self._start_task.cancel()
            with contextlib.suppress(BaseException):
                await self._start_task
        await self._close_parts()

    async def health(self) -> tuple[bool, dict[str, str]]:
        """Ready when started, the database answers, the broker answers, no consumer halted."""
        checks: dict[str, str] = {}
        if not self.health_state.ready:
            checks["startup"] = self.health_state.startup_error or "starting"
            return False, checks
        try:
            await asyncio.wait_for(self.pool.fetchval("SELECT 1"), timeout=2)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"{type(exc).__name__}: {exc}"
        try:
            alive = await self.broker.ping(timeout=2)
            checks["broker"] = "ok" if alive else "unreachable"
        except Exception as exc:
            checks["broker"] = f"{type(exc).__name__}: {exc}"
        checks["migrations"] = "ok"
        if self._consumer is not None and self._consumer.halted_reason:
            checks["consumer"] = f"halted: {self._consumer.halted_reason}"
        for batch_consumer in self._batch_consumers:
            if batch_consumer.halted_reason:
                checks[batch_consumer.group] = f"halted: {batch_consumer.halted_reason}"
        if self._relay is not None and self._relay.last_error:
            checks["outbox_relay"] = self._relay.last_error
        return all(v == "ok" for v in checks.values()), checks

    # -- HTTP -----------------------------------------------------------------------------
    def build_app(self) -> Starlette:
        async def health(request: Request) -> Response:
            ok, checks = await self.health()
            body = {"service": self.definition.name, "status": "ok" if ok else "unavailable"}
            return JSONResponse({**body, "checks": checks}, status_code=200 if ok else 503)

        async def metrics(request: Request) -> Response:
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            self._start_task = asyncio.create_task(self.start(), name="service-start")
            try:
                yield
            finally:
                await self.stop()

        routes: list[BaseRoute] = [
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            *self.definition.routes(self),
        ]
        app = Starlette(
            routes=routes,
            lifespan=lifespan,
            exception_handlers=exception_handlers(),
            middleware=[Middleware(TraceContextMiddleware)],
        )
        app.state.runtime = self
        return app


async def ensure_topics(bootstrap: str, topics: Sequence[str], *, partitions: int) -> None:
    """Create the topics that do not exist yet (each consumer ensures its own and the DLQs)."""
    wanted = sorted(set(topics))
    if not wanted:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="billing-topic-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if missing:
            with contextlib.suppress(Exception):  # a concurrent creator won the race
                await admin.create_topics(
                    [
                        NewTopic(name, num_partitions=partitions, replication_factor=1)
                        for name in missing
                    ]
                )
            still_missing = set(missing) - set(await admin.list_topics())
            if still_missing:
                raise RuntimeError(f"could not create topics {sorted(still_missing)}")
    finally:
        await admin.close()


def run_service(definition: ServiceDefinition) -> None:
    """The body of `python -m billing_<name>`."""
    settings = ServiceSettings()
    configure_logging(definition.name, settings.log_level)
    configure_tracing(definition.name)
    runtime = ServiceRuntime(definition, settings)
    uvicorn.run(
        runtime.build_app(),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
