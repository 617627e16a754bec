"""Backbone benchmark: the outbox → Kafka → inbox path, against a raw aiokafka producer.

    .venv/bin/python bench/backbone.py [--events N] [--batch-per-tx K] [--partitions P]

Prints figures; it asserts nothing. Four measurements on one broker and one database:

1. raw producer: aiokafka alone (acks=all, pipelined) sending N envelope-sized messages;
2. writer + relay: OutboxWriter transactions and the OutboxRelay publishing them,
   first BEGIN → last row acknowledged by Kafka and marked published (no consumer);
3. consumer drain: an InboxConsumer applying the events of (2), already in Kafka;
4. full path: writer, relay and consumer together in this process (as in one
   service), with each event's latency from its writer's COMMIT to the commit of
   the consumer's inbox transaction.

Each measurement also reports the CPU time spent per event by this process's event
loop, by Tansu and by PostgreSQL: unlike rates, that barely moves when other work
shares the machine. The servers are an EmbeddedStack in a temporary folder, unless
KAFKA_BOOTSTRAP and DATABASE_URL are set (then those are used; nothing is started).
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import cProfile
import json
import logging
import os
import pstats
import resource
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker

from billing_common.config import ServiceSettings
from billing_common.consumer import ConsumerPolicy, InboxConsumer
from billing_common.db import Connection, Pool, apply_migrations, create_pool, load_migrations
from billing_common.events import CloudEvent, EventData, Topic, new_event
from billing_common.ids import uuid7
from billing_common.outbox import OutboxRelay, OutboxWriter
from billing_common.runtime import ensure_topics, system_clock
from billing_local.stack import (
    DATABASE_URL,
    KAFKA_BOOTSTRAP,
    REDIS_URL,
    STRIPE_API_BASE,
    EmbeddedStack,
)

MIB = 1024 * 1024
CUSTOMERS = 1000  # distinct message keys (subjects), spread over the partitions
WARMUP_EVENTS = 20  # sent untimed first: metadata, connections, the consumer's group join


def service_default(name: str) -> int:
    """The value a service gets for `name` when its environment sets nothing."""
    return int(ServiceSettings.model_fields[name].default)


@dataclass(frozen=True)
class Workload:
    events: int
    per_tx: int
    partitions: int
    rate: float  # events/s the full path's writer is paced at; 0 = as fast as it can
    consumer_wakes_relay: bool  # as ServiceRuntime wires InboxConsumer.after_commit


# ----------------------------------------------------------------------------- the event


class UsageRecorded(EventData):
    """A typical small event: what metering emits for each usage record."""

    meter: str
    quantity: int
    idempotency_key: str


def fresh_tag() -> str:
    return uuid7().hex[-10:]


def fresh_topic() -> Topic[UsageRecorded]:
    """A new topic for each measurement: billing.bench.usage_<tag>."""
    return Topic("bench", f"usage_{fresh_tag()}", UsageRecorded, "benchmark events")


def usage(i: int) -> UsageRecorded:
    return UsageRecorded(meter="api_calls", quantity=i % 97 + 1, idempotency_key=f"req_{i:012d}")


def customer(i: int) -> str:
    return f"cus_{i % CUSTOMERS:06d}"


def sample_envelope(topic: Topic[UsageRecorded]) -> bytes:
    """One envelope as OutboxWriter makes it: the raw baseline sends this payload."""
    return new_event(
        topic,
        usage(123_456),
        event_id=uuid7(),
        source="bench",
        subject=customer(123_456),
        tenant_id="ten_bench",
        time=system_clock(),
    ).to_bytes()


# ------------------------------------------------------------------------- statistics


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an ascending sequence."""
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100), at least 1
    return ordered[int(rank) - 1]


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        ordered = sorted(s * 1000 for s in seconds)
        top = ordered[-1] if ordered else float("nan")
        return cls(percentile(ordered, 50), percentile(ordered, 95), percentile(ordered, 99), top)

    def __str__(self) -> str:
        return (
            f"p50 {self.p50_ms:.1f} ms, p95 {self.p95_ms:.1f} ms, "
            f"p99 {self.p99_ms:.1f} ms, max {self.max_ms:.1f} ms"
        )


# --------------------------------------------------------------- memory and CPU


def peak_rss_of_this_process_mib() -> float:
    """The high-water mark of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def process_tree(pid: int) -> list[psutil.Process]:
    leader = psutil.Process(pid)
    return [leader, *leader.children(recursive=True)]


@dataclass
class ServerMemory:
    peak_pss_sum: int = 0  # bytes, summed over the process tree, sampled
    peak_rss_sum: int = 0  # bytes, summed over the process tree, sampled
    max_processes: int = 0
    leader_hwm: int = 0  # bytes: VmHWM of the leader, tracked by the kernel (exact)


class ServerMemorySampler:
    """Samples the process trees of the stack's servers from a thread.

    PSS splits shared pages (PostgreSQL's shared buffers) among the processes that
    map them, so its sum is what the server really costs; the RSS sum counts them
    once per backend. Only the leader has an exact kernel high-water mark.
    """

    def __init__(self, servers: dict[str, int], interval: float = 0.25) -> None:
        self.servers = servers
        self.interval = interval
        self.peaks = {name: ServerMemory() for name in servers}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def __enter__(self) -> ServerMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        for name, pid in self.servers.items():
            with contextlib.suppress(psutil.Error):
                rss = pss = count = 0
                for proc in process_tree(pid):
                    with contextlib.suppress(psutil.Error):
                        info = proc.memory_full_info()
                        rss += info.rss
                        pss += getattr(info, "pss", info.rss)
                        count += 1
                peak = self.peaks[name]
                peak.peak_pss_sum = max(peak.peak_pss_sum, pss)
                peak.peak_rss_sum = max(peak.peak_rss_sum, rss)
                peak.max_processes = max(peak.max_processes, count)
                peak.leader_hwm = max(peak.leader_hwm, _vm_hwm(pid))


def _vm_hwm(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


class CpuMeter:
    """CPU seconds used so far by the event loop's thread and by each server's tree.

    A server's exited processes count through its leader's children_* times. The
    bench's own figure excludes the memory sampler's thread.
    """

    def __init__(self, servers: dict[str, int]) -> None:
        self.servers = servers

    def snapshot(self) -> dict[str, float]:
        used = {"bench": time.thread_time()}
        for name, pid in self.servers.items():
            with contextlib.suppress(psutil.Error):
                total = 0.0
                for proc in process_tree(pid):
                    with contextlib.suppress(psutil.Error):
                        times = proc.cpu_times()
                        total += times.user + times.system
                        if proc.pid == pid:
                            total += times.children_user + times.children_system
                used[name] = total
        return used


@contextlib.contextmanager
def cpu_per_event(meter: CpuMeter, events: int) -> Iterator[None]:
    """Print the CPU each process spent per event over the block, and the load average."""
    load_before = os.getloadavg()[0]
    before = meter.snapshot()
    yield
    after = meter.snapshot()
    parts = [
        f"{name} {(used - before.get(name, used)) / events * 1e6:,.0f} µs"
        for name, used in after.items()
    ]
    print(
        f"   CPU per event: {', '.join(parts)} "
        f"(load average {load_before:.1f} → {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs)"
    )


@dataclass(frozen=True)
class LoopSample:
    """The calling thread's scheduler counters (/proc/thread-self/schedstat, in seconds)."""

    wall: float
    on_cpu: float
    waiting: float  # runnable, but waiting for a CPU (other processes had them)

    @classmethod
    def now(cls) -> LoopSample:
        wall = time.perf_counter()
        try:
            on_cpu, waiting, _ = Path("/proc/thread-self/schedstat").read_text().split()
        except (OSError, ValueError):  # not Linux: no run-queue figure
            return cls(wall, time.thread_time(), float("nan"))
        return cls(wall, int(on_cpu) / 1e9, int(waiting) / 1e9)


@dataclass(frozen=True)
class LoopShare:
    """How the event loop's thread spent a window: on a CPU, waiting for one, or idle."""

    on_cpu: float
    waiting: float

    @classmethod
    def between(cls, start: LoopSample, end: LoopSample) -> LoopShare:
        wall = max(end.wall - start.wall, 1e-9)
        return cls((end.on_cpu - start.on_cpu) / wall, (end.waiting - start.waiting) / wall)

    def __str__(self) -> str:
        idle = max(0.0, 1 - self.on_cpu - self.waiting)
        return (
            f"event loop thread {self.on_cpu:.0%} on a CPU, {self.waiting:.0%} runnable but "
            f"waiting for a CPU, {idle:.0%} idle (awaiting I/O)"
        )


# --------------------------------------------------------------------------- backends


@dataclass(frozen=True)
class Backends:
    kafka_bootstrap: str
    database_url: str
    server_pids: dict[str, int]  # the servers this run started (none when reused)


@contextlib.contextmanager
def backends() -> Iterator[Backends]:
    """KAFKA_BOOTSTRAP and DATABASE_URL from the environment, or an EmbeddedStack.

    Valkey and localstripe are not needed: their URL variables get a placeholder in
    the env handed to the stack, which then does not start them (a server whose
    URL variable is set is not started).
    """
    kafka, database = os.environ.get(KAFKA_BOOTSTRAP), os.environ.get(DATABASE_URL)
    if kafka and database:
        yield Backends(kafka, database, {})
        return
    env = {**os.environ, REDIS_URL: "unused://", STRIPE_API_BASE: "unused://"}
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as data_dir:
        stack = EmbeddedStack(Path(data_dir), env=env)
        try:
            urls = stack.start()
            yield Backends(urls.kafka_bootstrap, urls.database_url, _stack_pids(Path(data_dir)))
        finally:
            stack.stop()


def _stack_pids(data_dir: Path) -> dict[str, int]:
    """The servers' pids, from the children.json the stack keeps for its reaper."""
    try:
        records: list[dict[str, Any]] = json.loads((data_dir / "children.json").read_text())
    except (OSError, ValueError):
        return {}
    return {str(r["name"]): int(r["pid"]) for r in records}


@contextlib.asynccontextmanager
async def plumbed_schema(database_url: str) -> AsyncIterator[Pool]:
    """A pool on a fresh schema with the billing_common migrations and an effect table.

    Sized like a service's pool; the schema is dropped afterwards.
    """
    schema = f"bench_{fresh_tag()}"
    pool = await create_pool(
        database_url,
        schema,
        min_size=service_default("database_pool_min"),
        max_size=service_default("database_pool_max"),
    )
    try:
        await apply_migrations(
            pool, schema, load_migrations("billing_common"), history_table="common_migrations"
        )
        await pool.execute(
            "CREATE TABLE usage_effect ("
            " event_id UUID PRIMARY KEY,"
            " committed_at TIMESTAMPTZ NOT NULL,"  # when the writer's transaction committed
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())"
        )
        yield pool
    finally:
        with contextlib.suppress(Exception):
            await pool.execute(f"DROP SCHEMA {schema} CASCADE")
        await pool.close()


@contextlib.asynccontextmanager
async def started_producer(bootstrap: str, name: str) -> AsyncIterator[AIOKafkaProducer]:
    """A producer configured as ServiceRuntime configures the relay's; stopped after."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=2,
        enable_idempotence=False,
        client_id=f"bench-{name}",
    )
    try:
        await producer.start()
        yield producer
    finally:
        await producer.stop()


# ------------------------------------------------------- the real pieces, instrumented


class CountingRelay(OutboxRelay):
    """The real OutboxRelay (service defaults), counting what it publishes and when."""

    def __init__(self, pool: Pool, producer: AIOKafkaProducer) -> None:
        super().__init__(
            pool,
            producer,
            batch_size=service_default("outbox_batch_size"),
            poll_interval=service_default("outbox_poll_interval_ms") / 1000,
        )
        self.published = 0
        self.batches = 0
        self.empty_polls = 0
        self.target = 0
        self.reached_target_at = 0.0
        self.reached_sample = LoopSample.now()
        self.reached = asyncio.Event()
        self._marks: list[tuple[int, float]] = []  # (rows published so far, when)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[CountingRelay]:
        self.start()
        try:
            yield self
        finally:
            await self.stop()

    def expect(self, total: int) -> None:
        """Set `reached` once `total` rows (counted from the start) are published."""
        self.target = total
        self.reached.clear()

    async def publish_batch(self) -> int:
        count = await super().publish_batch()
        if count == 0:
            self.empty_polls += 1
            return 0
        self.published += count
        self.batches += 1
        self._marks.append((self.published, time.perf_counter()))
        if self.published >= self.target and not self.reached.is_set():
            self.reached_sample = LoopSample.now()
            self.reached_target_at = self.reached_sample.wall
            self.reached.set()
        return count

    def published_at(self, first: int, count: int) -> list[float]:
        """When rows first+1 … first+count (in seq order) were acknowledged and marked."""
        totals = [total for total, _ in self._marks]
        return [self._marks[bisect.bisect_left(totals, first + k + 1)][1] for k in range(count)]


def publish_times(relay: CountingRelay, first: int, ids: list[uuid.UUID]) -> dict[uuid.UUID, float]:
    """When each of `ids` was published. One sequential writer: seq order = commit order.

    `ids` are in commit order and `first` rows were published before them.
    """
    return dict(zip(ids, relay.published_at(first, len(ids)), strict=True))


@dataclass
class WriterResult:
    transactions: int = 0
    started: float = 0.0
    first_commit: float = 0.0
    last_commit: float = 0.0

    @property
    def elapsed(self) -> float:
        return self.last_commit - self.started

    @property
    def commit_rate(self) -> float:
        """Writer transactions per second, from the first BEGIN to the last COMMIT."""
        return self.transactions / max(self.elapsed, 1e-9)


async def write_events(
    pool: Pool,
    relay: OutboxRelay,
    topic: Topic[UsageRecorded],
    committed: dict[uuid.UUID, float],
    *,
    first: int,
    count: int,
    per_tx: int,
    rate: float = 0.0,
) -> WriterResult:
    """One sequential writer: `per_tx` outbox events per transaction, relay woken after each.

    Each event's commit time is taken as soon as its COMMIT returned, before the
    connection goes back to the pool. With `rate`, transactions start on schedule.
    """
    writer = OutboxWriter(source="bench", clock=system_clock)
    result = WriterResult(started=time.perf_counter())
    for start in range(first, first + count, per_tx):
        if rate:
            await asyncio.sleep(result.started + (start - first) / rate - time.perf_counter())
        async with pool.acquire() as conn:
            async with conn.transaction():
                ids = [
                    (
                        await writer.add(
                            conn, topic, usage(i), subject=customer(i), tenant_id="ten_bench"
                        )
                    ).id
                    for i in range(start, min(start + per_tx, first + count))
                ]
            now = time.perf_counter()
            committed.update(dict.fromkeys(ids, now))
        relay.wake()  # as ServiceRuntime.unit_of_work does, once the connection is back
        result.transactions += 1
        result.last_commit = now
        if result.transactions == 1:
            result.first_commit = now
    return result


class EffectRecorder:
    """The consumer's handler and after-commit hook: one effect row per event, timed.

    InboxConsumer processes one message at a time (FastStream's default
    max_workers=1), so the event the handler saw last is the one whose inbox
    transaction `after_commit` reports as committed.
    """

    def __init__(self, committed: dict[uuid.UUID, float]) -> None:
        self.committed = committed
        self.applied: dict[uuid.UUID, float] = {}
        self.epoch = time.time() - time.perf_counter()  # wall clock at perf_counter() == 0
        self.also_after_commit: list[Callable[[], None]] = []
        self.expected = 0
        self.all_applied = asyncio.Event()
        self.first_sample = self.last_sample = LoopSample.now()
        self._current: uuid.UUID | None = None

    def expect(self, total: int) -> None:
        self.expected = total
        self.all_applied.clear()

    async def apply(self, conn: Connection, event: CloudEvent[UsageRecorded]) -> None:
        committed = self.committed.get(event.id, time.perf_counter())
        await conn.execute(
            "INSERT INTO usage_effect (event_id, committed_at) VALUES ($1, $2)",
            event.id,
            datetime.fromtimestamp(self.epoch + committed, UTC),
        )
        self._current = event.id

    def after_commit(self) -> None:
        if self._current is not None:
            self.applied[self._current] = time.perf_counter()
            self._current = None
            if len(self.applied) == 1:
                self.first_sample = LoopSample.now()
        for hook in self.also_after_commit:
            hook()
        if len(self.applied) >= self.expected and not self.all_applied.is_set():
            self.last_sample = LoopSample.now()
            self.all_applied.set()


class TimedInboxConsumer(InboxConsumer):
    """The real InboxConsumer, also timing each `process` call and the gaps between.

    Inside `process`: parsing, the inbox transaction and the handler. Between two
    calls: FastStream's per-message work, which includes the offset commit (one
    Kafka round trip per message under AckPolicy.NACK_ON_ERROR) and the fetch.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inside: list[float] = []
        self.between: list[float] = []
        self._last_end = 0.0

    async def process(
        self, topic_name: str, partition: int, offset: int, key: bytes | None, payload: bytes
    ) -> None:
        started = time.perf_counter()
        if self._last_end:
            self.between.append(started - self._last_end)
        try:
            await super().process(topic_name, partition, offset, key, payload)
        finally:
            self._last_end = time.perf_counter()
            self.inside.append(self._last_end - started)


@contextlib.asynccontextmanager
async def running_consumer(
    bootstrap: str,
    pool: Pool,
    topic: Topic[UsageRecorded],
    recorder: EffectRecorder,
    *,
    group: str,
    partitions: int,
) -> AsyncIterator[TimedInboxConsumer]:
    """An InboxConsumer on a FastStream KafkaBroker, wired as ServiceRuntime wires it."""
    broker = KafkaBroker(
        bootstrap, client_id=f"bench-{group}", logger=logging.getLogger("faststream.bench")
    )
    consumer = TimedInboxConsumer(
        group=group,
        pool=pool,
        broker=broker,
        policy=ConsumerPolicy(),
        after_commit=recorder.after_commit,
    )
    consumer.handle(topic, recorder.apply)
    await ensure_topics(bootstrap, [topic.name, topic.dead_letter], partitions=partitions)
    consumer.register()
    try:
        await broker.start()
        yield consumer
    finally:
        await broker.stop()


# ------------------------------------------------------------------ 1. raw producer


@dataclass(frozen=True)
class RawResult:
    messages: int
    size: int
    elapsed: float
    loop: LoopShare

    @property
    def rate(self) -> float:
        return self.messages / self.elapsed


async def measure_raw_producer_rate(bootstrap: str, work: Workload) -> RawResult:
    """aiokafka alone: N envelope-sized messages, acks=all, all in flight, then awaited."""
    topic = fresh_topic()
    await ensure_topics(bootstrap, [topic.name], partitions=work.partitions)
    payload = sample_envelope(topic)
    headers = [("ce_type", topic.name.encode()), ("content-type", b"application/cloudevents+json")]
    async with started_producer(bootstrap, "raw") as producer:

        async def send_all(count: int) -> None:
            deliveries = [
                await producer.send(
                    topic.name, value=payload, key=customer(i).encode(), headers=headers
                )
                for i in range(count)
            ]
            await asyncio.gather(*deliveries)

        await send_all(WARMUP_EVENTS)
        started = LoopSample.now()
        await send_all(work.events)
        ended = LoopSample.now()
    return RawResult(
        work.events, len(payload), ended.wall - started.wall, LoopShare.between(started, ended)
    )


# ------------------------------------------------------------ 2. writer + relay


@dataclass(frozen=True)
class RelayResult:
    events: int
    writer: WriterResult
    all_published_at: float
    batches: int
    empty_polls: int
    topic: Topic[UsageRecorded]
    loop: LoopShare
    latency: Latency  # commit → published

    @property
    def elapsed(self) -> float:
        return self.all_published_at - self.writer.started

    @property
    def rate(self) -> float:
        return self.events / self.elapsed


async def measure_writer_and_relay(backends: Backends, work: Workload) -> RelayResult:
    """Writer + relay, no consumer: first BEGIN → last row acknowledged and marked."""
    topic = fresh_topic()
    await ensure_topics(backends.kafka_bootstrap, [topic.name], partitions=work.partitions)
    async with (
        plumbed_schema(backends.database_url) as pool,
        started_producer(backends.kafka_bootstrap, "relay") as producer,
        CountingRelay(pool, producer).running() as relay,
    ):
        committed: dict[uuid.UUID, float] = {}
        relay.expect(WARMUP_EVENTS)
        await write_events(pool, relay, topic, committed, first=0, count=WARMUP_EVENTS, per_tx=1)
        await relay.reached.wait()
        batches_before, empty_before = relay.batches, relay.empty_polls
        relay.expect(WARMUP_EVENTS + work.events)
        started = LoopSample.now()
        writer = await write_events(
            pool,
            relay,
            topic,
            committed,
            first=WARMUP_EVENTS,
            count=work.events,
            per_tx=work.per_tx,
        )
        await relay.reached.wait()
    timed = list(committed)[WARMUP_EVENTS:]
    published = publish_times(relay, WARMUP_EVENTS, timed)
    return RelayResult(
        work.events,
        writer,
        relay.reached_target_at,
        relay.batches - batches_before,
        relay.empty_polls - empty_before,
        topic,
        LoopShare.between(started, relay.reached_sample),
        Latency.of([published[i] - committed[i] for i in timed]),
    )


# ----------------------------------------------------------- 3. consumer drain


@dataclass(frozen=True)
class DrainResult:
    events: int
    elapsed: float
    inside: list[float]
    between: list[float]
    loop: LoopShare
    profile: str

    @property
    def rate(self) -> float:
        return (self.events - 1) / self.elapsed


async def measure_consumer_drain(
    backends: Backends, topic: Topic[UsageRecorded], total: int, work: Workload, profile: bool
) -> DrainResult:
    """The InboxConsumer alone, on a topic already holding `total` events.

    The rate runs from its first to its last applied event: the group join is not in it.
    """
    async with plumbed_schema(backends.database_url) as pool:
        recorder = EffectRecorder({})
        recorder.expect(total)
        profiler = cProfile.Profile() if profile else None
        async with running_consumer(
            backends.kafka_bootstrap,
            pool,
            topic,
            recorder,
            group=f"bench-drain-{fresh_tag()}",
            partitions=work.partitions,
        ) as consumer:
            if profiler is not None:
                profiler.enable()
            await recorder.all_applied.wait()
            if profiler is not None:
                profiler.disable()
    times = sorted(recorder.applied.values())
    report = profile_report(profiler) if profiler is not None else ""
    loop = LoopShare.between(recorder.first_sample, recorder.last_sample)
    return DrainResult(
        len(times), times[-1] - times[0], consumer.inside, consumer.between, loop, report
    )


def profile_report(profiler: cProfile.Profile, limit: int = 25) -> str:
    """The top functions by own time, then the plumbing's entry points by cumulative time.

    cProfile times a coroutine per resumption: cumulative times leave out the
    awaits (time spent waiting for PostgreSQL or Kafka), so they measure CPU work.
    """
    out = StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(limit)
    plumbing = (
        r"billing_common/(consumer|events|telemetry)\.py|group_coordinator\.py.*commit"
        r"|fast_depends/core/model\.py.*asolve|anyio/to_thread|asyncpg/pool\.py.*release"
        r"|asyncpg/transaction\.py|acknowledgement/middleware\.py.*__aexit__|usecase\.py"
    )
    stats.sort_stats("cumulative").print_stats(plumbing, limit)
    return out.getvalue()


# --------------------------------------------------------------- 4. full path


@dataclass(frozen=True)
class FullPathResult:
    events: int
    writer: WriterResult
    last_effect: float
    latency: Latency
    to_published: Latency
    published_to_effect: Latency
    relay_batches: int
    relay_empty_polls: int
    inside: Latency
    between: Latency
    loop: LoopShare

    @property
    def elapsed(self) -> float:
        return self.last_effect - self.writer.first_commit

    @property
    def rate(self) -> float:
        return self.events / self.elapsed


async def measure_full_path(backends: Backends, work: Workload) -> FullPathResult:
    """Writer → outbox → relay → Kafka → InboxConsumer → effect, all in this process.

    As in a service, one pool serves the writer, the relay and the consumer, and
    (unless --no-consumer-wake) the consumer's after-commit hook wakes the relay.
    """
    topic = fresh_topic()
    bootstrap = backends.kafka_bootstrap
    committed: dict[uuid.UUID, float] = {}
    recorder = EffectRecorder(committed)
    async with (
        plumbed_schema(backends.database_url) as pool,
        started_producer(bootstrap, "relay-full") as producer,
        running_consumer(
            bootstrap, pool, topic, recorder, group="bench", partitions=work.partitions
        ) as consumer,
        CountingRelay(pool, producer).running() as relay,
    ):
        if work.consumer_wakes_relay:
            recorder.also_after_commit.append(relay.wake)
        recorder.expect(WARMUP_EVENTS)  # the group is joined once these are applied
        await write_events(pool, relay, topic, committed, first=0, count=WARMUP_EVENTS, per_tx=1)
        await recorder.all_applied.wait()
        batches_before, empty_before = relay.batches, relay.empty_polls
        skip = len(consumer.inside)
        recorder.expect(WARMUP_EVENTS + work.events)
        started = LoopSample.now()
        writer = await write_events(
            pool,
            relay,
            topic,
            committed,
            first=WARMUP_EVENTS,
            count=work.events,
            per_tx=work.per_tx,
            rate=work.rate,
        )
        await recorder.all_applied.wait()
        rows = await pool.fetchval("SELECT count(*) FROM usage_effect")
        if rows != WARMUP_EVENTS + work.events:
            print(f"   ! {rows} effect rows for {WARMUP_EVENTS + work.events} events")
    timed = list(committed)[WARMUP_EVENTS:]  # in commit order
    applied = recorder.applied
    published = publish_times(relay, WARMUP_EVENTS, timed)
    return FullPathResult(
        len(timed),
        writer,
        max(applied[i] for i in timed),
        Latency.of([applied[i] - committed[i] for i in timed]),
        Latency.of([published[i] - committed[i] for i in timed]),
        Latency.of([applied[i] - published[i] for i in timed]),
        relay.batches - batches_before,
        relay.empty_polls - empty_before,
        Latency.of(consumer.inside[skip:]),
        Latency.of(consumer.between[skip:]),
        LoopShare.between(started, recorder.last_sample),
    )


# ------------------------------------------------------------------------ report


def print_raw(raw: RawResult) -> None:
    print(f"1. raw aiokafka producer (acks=all, linger 2 ms, pipelined, {raw.size}-byte messages)")
    print(f"   {raw.messages} messages in {raw.elapsed:.2f} s: {raw.rate:,.0f} msg/s")
    print(f"   {raw.loop}")


def print_relay(relay: RelayResult, raw: RawResult, per_tx: int) -> None:
    w = relay.writer
    print(f"2. writer + relay, no consumer ({per_tx} event(s) per transaction)")
    print(
        f"   {relay.events} events committed and published in {relay.elapsed:.2f} s: "
        f"{relay.rate:,.0f} events/s ({relay.rate / raw.rate:.1%} of raw aiokafka)"
    )
    print(
        f"   writer: {w.transactions} transactions in {w.elapsed:.2f} s: "
        f"{w.commit_rate:,.0f} tx/s = {w.commit_rate * per_tx:,.0f} events/s"
    )
    print(
        f"   relay: {relay.batches} batches (mean {relay.events / max(relay.batches, 1):.1f} "
        f"rows), {relay.empty_polls} empty polls; all published "
        f"{relay.all_published_at - w.last_commit:.2f} s after the last commit"
    )
    print(f"   latency commit → published (acknowledged and marked): {relay.latency}")
    print(f"   {relay.loop}")


def print_drain(drain: DrainResult) -> None:
    inside, between = sum(drain.inside), sum(drain.between)
    print("3. consumer drain (InboxConsumer alone, events already in Kafka)")
    print(f"   {drain.events} events in {drain.elapsed:.2f} s: {drain.rate:,.0f} events/s")
    print(f"   inside process() (parse, inbox transaction, handler): {Latency.of(drain.inside)}")
    print(
        "   between process() calls (FastStream, offset commit, fetch): "
        f"{Latency.of(drain.between)}"
    )
    print(
        f"   consumer wall time: {inside / (inside + between):.0%} inside, "
        f"{between / (inside + between):.0%} between"
    )
    print(f"   {drain.loop}")


def print_full(full: FullPathResult, raw: RawResult, work: Workload) -> None:
    w = full.writer
    pace = f", writer paced at {work.rate:g} events/s" if work.rate else ""
    wakes = "" if work.consumer_wakes_relay else ", consumer does not wake the relay"
    print(
        "4. full path: writer → outbox → relay → Kafka → InboxConsumer "
        f"({work.per_tx}/tx{pace}{wakes})"
    )
    print(f"   events: {full.events}, elapsed (first commit → last effect): {full.elapsed:.2f} s")
    print(
        f"   end-to-end throughput: {full.rate:,.0f} events/s "
        f"(outbox path / raw aiokafka = {full.rate / raw.rate:.1%})"
    )
    print(f"   latency commit → effect committed: {full.latency}")
    print(f"     of which commit → published: {full.to_published}")
    print(f"     and published → effect committed: {full.published_to_effect}")
    print(
        f"   writer commit rate: {w.commit_rate:,.0f} tx/s "
        f"({w.transactions} transactions in {w.elapsed:.2f} s)"
    )
    print(
        f"   relay: {full.relay_batches} batches "
        f"(mean {full.events / max(full.relay_batches, 1):.1f} rows), "
        f"{full.relay_empty_polls} empty polls"
    )
    print(f"   consumer inside process(): {full.inside}")
    print(f"   consumer between process() calls: {full.between}")
    print(f"   {full.loop}")


def print_memory(sampler: ServerMemorySampler | None) -> None:
    print("memory")
    print(f"   this process, all phases: peak RSS {peak_rss_of_this_process_mib():.0f} MiB")
    if sampler is None:
        print("   servers: not started by this run (KAFKA_BOOTSTRAP/DATABASE_URL given): skipped")
        return
    for name, peak in sampler.peaks.items():
        print(
            f"   {name}: peak {peak.peak_pss_sum / MIB:.0f} MiB PSS "
            f"({peak.peak_rss_sum / MIB:.0f} MiB RSS) summed over up to {peak.max_processes} "
            f"process(es), sampled every {sampler.interval:g} s; "
            f"leader's VmHWM {peak.leader_hwm / MIB:.0f} MiB"
        )


# ------------------------------------------------------------------------- main


class Phase:
    """What runs now, for the deadline message."""

    name = "start"


async def run_all(args: argparse.Namespace, backends: Backends) -> None:
    work = Workload(
        events=args.events,
        per_tx=args.batch_per_tx,
        partitions=args.partitions,
        rate=args.rate,
        consumer_wakes_relay=not args.no_consumer_wake,
    )
    meter = CpuMeter(backends.server_pids)
    Phase.name = "raw producer"
    with cpu_per_event(meter, work.events):
        raw = await measure_raw_producer_rate(backends.kafka_bootstrap, work)
        print_raw(raw)
    Phase.name = "writer + relay"
    with cpu_per_event(meter, work.events):
        relay = await measure_writer_and_relay(backends, work)
        print_relay(relay, raw, work.per_tx)
    Phase.name = "consumer drain"
    with cpu_per_event(meter, work.events):
        total = WARMUP_EVENTS + work.events
        drain = await measure_consumer_drain(backends, relay.topic, total, work, args.profile)
        print_drain(drain)
    Phase.name = "full path"
    with cpu_per_event(meter, work.events):
        full = await measure_full_path(backends, work)
        print_full(full, raw, work)
    if drain.profile:
        print("cProfile of the consumer drain:")
        print(drain.profile)


def configure_faststream_logging(log_messages: bool) -> None:
    """FastStream logs "Received" and "Processed" at INFO for every message.

    Services run at INFO, so they pay for it; the bench silences it by default so
    that the figures are the plumbing's. --log-messages keeps it (to /dev/null).
    """
    bench_logger = logging.getLogger("faststream.bench")
    if not log_messages:
        bench_logger.setLevel(logging.WARNING)
        return
    bench_logger.setLevel(logging.INFO)
    bench_logger.propagate = False
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 (lives with the process)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)8s - %(message)s"))
    bench_logger.addHandler(handler)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Outbox → Kafka → inbox backbone benchmark.")
    parser.add_argument("--events", type=int, default=20_000, help="events per measurement")
    parser.add_argument("--batch-per-tx", type=int, default=1, help="events per writer transaction")
    parser.add_argument(
        "--partitions",
        type=int,
        default=service_default("kafka_default_partitions"),
        help="partitions of each topic (default: what a service creates)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="pace the full path's writer at this many events/s (default: flat out)",
    )
    parser.add_argument(
        "--no-consumer-wake",
        action="store_true",
        help="full path: the consumer's after_commit does not wake the relay (services do)",
    )
    parser.add_argument(
        "--log-messages",
        action="store_true",
        help="keep FastStream's two INFO log lines per message (to /dev/null), as services do",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the consumer drain and print the top functions",
    )
    parser.add_argument("--deadline", type=float, default=600.0, help="abort after this many s")
    args = parser.parse_args(argv)
    if min(args.events, args.batch_per_tx, args.partitions) < 1 or args.rate < 0:
        parser.error("--events, --batch-per-tx and --partitions must be ≥ 1, --rate ≥ 0")
    return args


def stop_on_sigterm() -> None:
    """SIGTERM (`timeout`, a CI cancel) unwinds like Ctrl-C: the servers stop, the folder goes."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    print(
        f"backbone: {args.events} events, {args.batch_per_tx}/tx, {args.partitions} partitions; "
        f"{os.uname().machine}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    configure_faststream_logging(args.log_messages)
    started = time.monotonic()
    with backends() as found:
        sampler = ServerMemorySampler(found.server_pids) if found.server_pids else None
        with sampler or contextlib.nullcontext():
            try:
                asyncio.run(asyncio.wait_for(run_all(args, found), timeout=args.deadline))
            except TimeoutError:
                print(f"aborted: the {args.deadline:g} s deadline passed during {Phase.name}")
                return 2
        print_memory(sampler)
    print(f"total, with the servers' start and stop: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
