"""Usage ingestion benchmark: HTTP batches → gateway → Kafka → metering → ClickHouse → query.

    .venv/bin/python bench/ingest.py [--events N] [--concurrency C] [--paced-rate R] [--profile]

Prints figures; it asserts nothing. It starts its own platform (the embedded stack,
the customers and metering services, and the gateway) in a temporary folder, and
stops all of it at the end, on an error, on Ctrl-C or on SIGTERM. Phases:

0. setup: one `count` meter and the customers, created through the gateway; one
   warm-up event per customer, waited for in a usage query (so metering knows every
   customer and its consumer has joined before any clock starts);
1. throughput: N events in batches of B (1,000) sent by C concurrent HTTP clients,
   timed from the first send to the last 202 (gateway accept rate) and to the usage
   query that first counts all N (end-to-end rate);
2. latency: batches sent on a schedule at R events/s for S seconds, each batch all
   of one "marker" customer that no other batch uses; a poller queries usage every
   `--poll-interval` and a batch is visible at the first poll whose count for its
   marker includes it: latency = that poll's response - the batch's 202;
3. raw aiokafka: the very Kafka messages the gateway made of phase 1's batches
   (same keys, headers and bytes, built with the gateway's own functions) produced
   by one producer configured as the gateway's, all in flight, to a fresh topic;
4. with --profile: phase 1 again (fewer events) with metering and the gateway under
   cProfile, switched on and off by SIGUSR1 through a `sitecustomize` hook on the
   services' PYTHONPATH (no service code changes).

During phase 1 it also reads the CPU time of every process (and of each thread of
metering), and throughout the peak memory of each process. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pstats
import resource
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import httpx
import psutil
from aiokafka import AIOKafkaProducer

from billing_common.ids import uuid7
from billing_common.runtime import ensure_topics
from billing_gateway.usage_events import OutgoingMessage, messages_for, parse_usage_events
from billing_local.platform import Platform, RunningPlatform

MIB = 1024 * 1024
METER_KEY = "bench_api_calls"
EVENT_TYPE = "api.call"
USAGE_CONSUMER = "billing-metering-usage"  # metering's batch consumer group (metric label)
GATEWAY_PRODUCER = {"acks": "all", "linger_ms": 5, "enable_idempotence": False}  # as app.py

#: Installed as `sitecustomize` on the PYTHONPATH of metering (and, with --profile, of the
#: gateway). SIGUSR1 starts, and then stops, timing the usage consumer's stages: wall
#: time of the functions in $BENCH_STAGES_TARGETS, wrapped from outside (no service code
#: changes), written as JSON to $BENCH_STAGES_OUT. SIGUSR2 starts, and then stops, a
#: cProfile of the main thread (the event loop), written to $BENCH_CPROFILE_OUT.
HOOK = """\
import os

if os.environ.get("BENCH_STAGES_OUT") or os.environ.get("BENCH_CPROFILE_OUT"):
    import functools
    import importlib
    import inspect
    import json
    import signal
    import threading
    import time

    _lock = threading.Lock()
    _stages = {}
    _timing = [None]  # start of the window, or None
    _patched = set()

    def _add(name, seconds):
        with _lock:
            total, calls = _stages.get(name, (0.0, 0))
            _stages[name] = (total + seconds, calls + 1)

    def _timed(name, fn):
        if inspect.iscoroutinefunction(fn):
            async def timed(*args, **kwargs):
                started = time.perf_counter()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    if _timing[0] is not None:
                        _add(name, time.perf_counter() - started)
        else:
            def timed(*args, **kwargs):
                started = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    if _timing[0] is not None:
                        _add(name, time.perf_counter() - started)
        return functools.wraps(fn)(timed)

    def _patch():
        for target in os.environ.get("BENCH_STAGES_TARGETS", "").split():
            if target in _patched:
                continue
            module_name, _, path = target.partition(":")
            owner = importlib.import_module(module_name)
            *parents, attribute = path.split(".")
            for parent in parents:
                owner = getattr(owner, parent)
            setattr(owner, attribute, _timed(path, getattr(owner, attribute)))
            _patched.add(target)

    def _toggle_stages(signum, frame):
        out = os.environ["BENCH_STAGES_OUT"]
        if _timing[0] is None:
            _patch()
            with _lock:
                _stages.clear()
            _timing[0] = time.perf_counter()
            return
        window = time.perf_counter() - _timing[0]
        _timing[0] = None
        with _lock:
            stages = {name: list(value) for name, value in _stages.items()}
        with open(out + ".tmp", "w") as file:
            json.dump({"window": window, "stages": stages}, file)
        os.replace(out + ".tmp", out)

    if os.environ.get("BENCH_STAGES_OUT"):
        signal.signal(signal.SIGUSR1, _toggle_stages)

    if os.environ.get("BENCH_CPROFILE_OUT"):
        import cProfile

        _profiler = cProfile.Profile()
        _profiling = [False]

        def _toggle_profile(signum, frame):
            out = os.environ["BENCH_CPROFILE_OUT"]
            if _profiling[0]:
                _profiler.disable()
                _profiler.dump_stats(out + ".tmp")
                os.replace(out + ".tmp", out)
            else:
                _profiler.enable()
            _profiling[0] = not _profiling[0]

        signal.signal(signal.SIGUSR2, _toggle_profile)
"""

#: What the hook times in metering: the batch, and each step of `UsageConsumer.handle`.
STAGES = (
    ("billing_common.consumer:BatchConsumer.process", "whole batch (parse + handle)"),
    ("billing_metering.usage:UsageConsumer._current_meters", "1. meters (PostgreSQL)"),
    ("billing_metering.usage:UsageConsumer._resolve", "1. customers (PostgreSQL)"),
    ("billing_metering.usage:plan_batch", "2. meter the events (Python)"),
    ("billing_metering.store:UsageStore.record", "3. ClickHouse: repeat check + insert"),
    ("billing_metering.accumulators:UsageAccumulators.apply", "4. Redis accumulators"),
    ("billing_metering.repository:applied_offsets", "5. tx: lock offset marks"),
    ("billing_metering.repository:park_events", "5. tx: park unknown customers' events"),
    ("billing_metering.usage:usage_summaries", "5. tx: usage summaries (Python)"),
    ("billing_metering.usage:UsageConsumer._usage_recorded", "5. tx: usage_recorded to outbox"),
    ("billing_metering.repository:mark_applied", "5. tx: move offset marks"),
    ("billing_metering.store:UsageStore.usage", "(the bench's usage queries, concurrent)"),
)


@dataclass(frozen=True)
class Workload:
    events: int
    batch_size: int
    concurrency: int
    customers: int  # the pool phase 1 draws from
    customers_per_batch: int  # distinct customers in one batch = Kafka messages per batch
    paced_rate: float
    paced_seconds: float
    poll_interval: float
    profile_events: int  # 0: no profile phase

    @property
    def paced_batches(self) -> int:
        return max(1, round(self.paced_rate * self.paced_seconds / self.batch_size))


# ----------------------------------------------------------------------------- statistics


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an ascending sequence."""
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def spread_ms(seconds: Sequence[float]) -> str:
    """p50 / p99 / max of durations, in ms."""
    ordered = sorted(s * 1000 for s in seconds)
    if not ordered:
        return "no samples"
    return (
        f"p50 {percentile(ordered, 50):,.0f} ms, p99 {percentile(ordered, 99):,.0f} ms, "
        f"max {ordered[-1]:,.0f} ms (n={len(ordered)})"
    )


# ------------------------------------------------------------------------- the workload


def event_body(phase: str, batch: int, customers: Sequence[str], size: int) -> bytes:
    """A `POST /v1/events` body: `size` native events spread evenly over `customers`.

    Timestamps are left out: the gateway stamps the time it received them.
    """
    events = [
        {
            "id": f"{phase}-{batch:06d}-{i:05d}",
            "customer": customers[i % len(customers)],
            "type": EVENT_TYPE,
            "properties": {"tokens": 1 + (batch * size + i) % 997, "model": "small"},
        }
        for i in range(size)
    ]
    return json.dumps(events, separators=(",", ":")).encode()


def batch_customers(batch: int, pool: Sequence[str], per_batch: int) -> list[str]:
    return [pool[(batch * per_batch + k) % len(pool)] for k in range(per_batch)]


def gateway_messages(body: bytes) -> list[OutgoingMessage]:
    """The Kafka records the gateway makes of `body`, with its own functions."""
    now = datetime.now(UTC)
    batch = parse_usage_events(body, "application/json", now)
    return messages_for(batch.accepted, tenant_id="ten_bench", received_at=now, traceparent=None)


# ---------------------------------------------------------------- processes: CPU, memory


def process_tree(pid: int) -> list[psutil.Process]:
    leader = psutil.Process(pid)
    return [leader, *leader.children(recursive=True)]


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process tree (exited children through the leader's children_*)."""
    total = 0.0
    with contextlib.suppress(psutil.Error):
        for proc in process_tree(pid):
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
                if proc.pid == pid:
                    total += times.children_user + times.children_system
    return total


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds of each thread of one process, with the thread's name (comm)."""
    threads: dict[int, tuple[str, float]] = {}
    with contextlib.suppress(psutil.Error):
        for thread in psutil.Process(pid).threads():
            try:
                comm = Path(f"/proc/{pid}/task/{thread.id}/comm").read_text().strip()
            except OSError:
                continue
            threads[thread.id] = (comm, thread.user_time + thread.system_time)
    return threads


def thread_groups(
    pid: int, before: Mapping[int, tuple[str, float]], after: Mapping[int, tuple[str, float]]
) -> list[tuple[str, float]]:
    """CPU seconds used between two `thread_cpu` snapshots, per kind of thread.

    The main thread runs the event loop; other threads named like it are Python
    threads (asyncio.to_thread workers: the chdb calls); the rest are named by the
    native code that started them (ClickHouse's pools inside chdb).
    """
    main_comm = after.get(pid, ("", 0.0))[0]
    groups: dict[str, float] = {}
    for tid, (comm, used) in after.items():
        delta = used - before.get(tid, (comm, 0.0))[1]
        if tid == pid:
            kind = "main thread (event loop)"
        elif comm == main_comm:
            kind = "other Python threads (to_thread: chdb calls)"
        else:
            kind = f"native: {comm}"
        groups[kind] = groups.get(kind, 0.0) + delta
    return sorted(groups.items(), key=lambda item: -item[1])


def vm_hwm(pid: int) -> int:
    """The kernel's exact RSS high-water mark of one process, in bytes."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass
class PeakMemory:
    rss_sum: int = 0  # bytes, sampled, summed over the tree
    pss_sum: int = 0
    processes: int = 0
    leader_hwm: int = 0  # exact


class MemorySampler:
    """Samples each process tree from a thread: peak summed RSS and PSS, leader's VmHWM.

    PSS matters for PostgreSQL: summed RSS counts its shared buffers once per backend.
    """

    def __init__(self, pids: Mapping[str, int], interval: float = 0.25) -> None:
        self.pids = dict(pids)
        self.interval = interval
        self.peaks = {name: PeakMemory() for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return

    def sample(self) -> None:
        for name, pid in self.pids.items():
            rss = pss = count = 0
            with contextlib.suppress(psutil.Error):
                for proc in process_tree(pid):
                    with contextlib.suppress(psutil.Error):
                        info = proc.memory_full_info()
                        rss += info.rss
                        pss += getattr(info, "pss", info.rss)
                        count += 1
            peak = self.peaks[name]
            peak.rss_sum = max(peak.rss_sum, rss)
            peak.pss_sum = max(peak.pss_sum, pss)
            peak.processes = max(peak.processes, count)
            peak.leader_hwm = max(peak.leader_hwm, vm_hwm(pid))


def platform_pids(platform: Platform) -> dict[str, int]:
    """The servers' pids (from the stack's children.json) and the services' pids."""
    pids: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError):
        records = json.loads((platform.data_dir / "stack" / "children.json").read_text())
        pids.update({str(r["name"]): int(r["pid"]) for r in records})
    if platform.supervisor is not None:
        for name in (*platform.services, "gateway"):
            pids[name] = platform.supervisor.pid(name)
    return pids


# --------------------------------------------------------------------- the HTTP client


@dataclass
class Tenant:
    """The running platform as the bench uses it."""

    running: RunningPlatform
    client: httpx.AsyncClient
    metering_url: str
    external_to_id: dict[str, str] = field(default_factory=dict)
    retries: int = 0  # 429/503 answers to POST /v1/events, resent

    def usage_params(self) -> dict[str, str]:
        """A range of whole minutes around now (the rollup's grain), read from the store."""
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        return {
            "from": (now - timedelta(hours=1)).isoformat(),
            "to": (now + timedelta(hours=1)).isoformat(),
            "source": "store",
        }

    async def usage_by_customer(self) -> dict[str, int]:
        """`GET /v1/meters/{key}/usage` for all customers at once: count per customer id."""
        response = await self.client.get(
            f"/v1/meters/{METER_KEY}/usage", params=self.usage_params()
        )
        response.raise_for_status()
        return {
            str(point["customer_id"]): int(Decimal(point["value"]))
            for point in response.json()["data"]
        }

    async def consumed_messages(self) -> int:
        """Messages metering's usage consumer has applied (its Prometheus counter)."""
        response = await self.client.get(f"{self.metering_url}/metrics")
        total = 0.0
        for line in response.text.splitlines():
            if (
                line.startswith("billing_events_consumed_total{")
                and f'consumer="{USAGE_CONSUMER}"' in line
                and 'outcome="applied"' in line
            ):
                total += float(line.rsplit(" ", 1)[1])
        return int(total)

    async def post_events(self, body: bytes) -> float:
        """POST one batch; resend on 429/503; the time the 202 arrived."""
        for attempt in range(20):
            response = await self.client.post(
                "/v1/events", content=body, headers={"content-type": "application/json"}
            )
            if response.status_code == 202:
                return time.perf_counter()
            if response.status_code not in (429, 503):
                raise RuntimeError(f"POST /v1/events: {response.status_code} {response.text[:300]}")
            self.retries += 1
            await asyncio.sleep(0.05 * (attempt + 1))
        raise RuntimeError("POST /v1/events: still refused after 20 attempts")


async def create_meter_and_customers(tenant: Tenant, names: Sequence[str]) -> None:
    response = await tenant.client.post(
        "/v1/meters",
        json={
            "key": METER_KEY,
            "name": "Bench API calls",
            "event_types": [EVENT_TYPE],
            "aggregation": "count",
        },
    )
    response.raise_for_status()
    gate = asyncio.Semaphore(8)

    async def create(name: str) -> None:
        async with gate:
            created = await tenant.client.post(
                "/v1/customers", json={"external_id": name, "name": name, "currency": "USD"}
            )
            created.raise_for_status()
            tenant.external_to_id[name] = str(created.json()["id"])

    await asyncio.gather(*(create(name) for name in names))


async def warm_up(tenant: Tenant, names: Sequence[str], poll_interval: float) -> float:
    """One event per customer, until every one is counted: seconds it took."""
    started = time.perf_counter()
    for first in range(0, len(names), 1000):
        chunk = names[first : first + 1000]
        await tenant.post_events(event_body("warm", first, chunk, len(chunk)))
    wanted = {tenant.external_to_id[name] for name in names}
    while True:
        counts = await tenant.usage_by_customer()
        if all(counts.get(customer, 0) >= 1 for customer in wanted):
            return time.perf_counter() - started
        await asyncio.sleep(poll_interval)


# ------------------------------------------------------------------------- 1. throughput


@dataclass(frozen=True)
class Poll:
    sent: float  # perf_counter when the query went out
    answered: float  # ... and when its answer was in
    visible: int  # events counted, beyond the baseline
    consumed: int  # messages applied by metering's consumer, beyond the baseline


@dataclass
class ThroughputResult:
    events: int
    messages: int
    started: float = 0.0
    first_ack: float = 0.0
    last_ack: float = 0.0
    polls: list[Poll] = field(default_factory=list)
    request_times: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process
    metering_threads: list[tuple[str, float]] = field(default_factory=list)
    load: tuple[float, float] = (0.0, 0.0)

    @property
    def all_visible(self) -> Poll:
        return next(p for p in self.polls if p.visible >= self.events)

    @property
    def accept_elapsed(self) -> float:
        return self.last_ack - self.started

    @property
    def end_to_end_elapsed(self) -> float:
        return self.all_visible.answered - self.started

    def consumed_all_at(self) -> float | None:
        done = [p for p in self.polls if p.consumed >= self.messages]
        return done[0].answered if done else None

    def visible_at(self, moment: float) -> int:
        """Events visible by the last poll answered at or before `moment`."""
        seen = [p.visible for p in self.polls if p.answered <= moment]
        return seen[-1] if seen else 0


async def measure_throughput(
    tenant: Tenant,
    work: Workload,
    pids: Mapping[str, int],
    *,
    phase: str,
    events: int,
    timed: Sequence[int] = (),
) -> ThroughputResult:
    """C clients send the batches as fast as 202s come back; a poller waits for all.

    `timed`: processes whose hook times stages over the window (SIGUSR1 at both ends).
    """
    pool = [name for name in tenant.external_to_id if name.startswith("bench-c")]
    batches = -(-events // work.batch_size)
    bodies: list[bytes] = []
    messages = 0
    for b in range(batches):
        size = min(work.batch_size, events - b * work.batch_size)
        customers = batch_customers(b, pool, work.customers_per_batch)
        bodies.append(event_body(phase, b, customers, size))
        messages += len(set(customers[: min(size, len(customers))]))
    result = ThroughputResult(events, messages)
    base_visible = sum((await tenant.usage_by_customer()).values())
    base_consumed = await tenant.consumed_messages()
    next_batch = iter(range(batches))
    metering_pid = pids["metering"]

    async def sender() -> None:
        for b in next_batch:
            sent = time.perf_counter()
            acked = await tenant.post_events(bodies[b])
            result.request_times.append(acked - sent)
            result.first_ack = result.first_ack or acked
            result.last_ack = max(result.last_ack, acked)

    async def poller() -> None:
        while True:
            sent = time.perf_counter()
            counts, consumed = await asyncio.gather(
                tenant.usage_by_customer(), tenant.consumed_messages()
            )
            poll = Poll(
                sent,
                time.perf_counter(),
                sum(counts.values()) - base_visible,
                consumed - base_consumed,
            )
            result.polls.append(poll)
            if poll.visible >= events:
                return
            await asyncio.sleep(work.poll_interval)

    load_before = os.getloadavg()[0]
    cpu_before = {name: tree_cpu(pid) for name, pid in pids.items()}
    cpu_before["bench"] = time.process_time()
    threads_before = thread_cpu(metering_pid)
    signal_all(timed, signal.SIGUSR1)
    result.started = time.perf_counter()
    polling = asyncio.create_task(poller())
    await asyncio.gather(*(sender() for _ in range(work.concurrency)))
    await polling
    signal_all(timed, signal.SIGUSR1)
    result.cpu = {name: tree_cpu(pid) - cpu_before[name] for name, pid in pids.items()}
    result.cpu["bench"] = time.process_time() - cpu_before["bench"]
    result.metering_threads = thread_groups(metering_pid, threads_before, thread_cpu(metering_pid))
    result.load = (load_before, os.getloadavg()[0])
    return result


# ---------------------------------------------------------------------------- 2. latency


@dataclass
class LatencyResult:
    batches: int
    batch_size: int
    rate: float
    send_elapsed: float = 0.0
    acked: dict[int, float] = field(default_factory=dict)  # batch → 202 arrived
    sent: dict[int, float] = field(default_factory=dict)
    seen: dict[int, tuple[float, float]] = field(default_factory=dict)  # (prev poll out, answer)
    poll_times: list[float] = field(default_factory=list)

    def upper(self) -> list[float]:
        """202 → answer of the first poll that counted the batch (an upper bound)."""
        return [self.seen[b][1] - self.acked[b] for b in self.seen]

    def lower(self) -> list[float]:
        """202 → the moment the last poll that did not count it went out (a lower bound)."""
        return [self.seen[b][0] - self.acked[b] for b in self.seen]


async def measure_latency(tenant: Tenant, work: Workload) -> LatencyResult:
    """Batches on a schedule, each of its own marker customer; a poller marks each visible.

    A marker's count reaching its baseline + the batch size means the batch is in:
    one customer's events are one Kafka message (one key, one partition) and metering
    inserts a fetched batch into ClickHouse at once.
    """
    markers = [name for name in tenant.external_to_id if name.startswith("bench-m")]
    result = LatencyResult(work.paced_batches, work.batch_size, work.paced_rate)
    bodies = [event_body("paced", b, [markers[b]], work.batch_size) for b in range(result.batches)]
    marker_id = [tenant.external_to_id[markers[b]] for b in range(result.batches)]
    baseline = await tenant.usage_by_customer()
    interval = work.batch_size / work.paced_rate
    done = asyncio.Event()

    async def send(b: int) -> None:
        result.sent[b] = time.perf_counter()
        result.acked[b] = await tenant.post_events(bodies[b])

    async def poller() -> None:
        previous_sent = time.perf_counter()
        while len(result.seen) < result.batches:
            sent = time.perf_counter()
            counts = await tenant.usage_by_customer()
            answered = time.perf_counter()
            result.poll_times.append(answered - sent)
            for b in range(result.batches):
                if b in result.seen or b not in result.acked:
                    continue
                if counts.get(marker_id[b], 0) >= baseline.get(marker_id[b], 0) + work.batch_size:
                    result.seen[b] = (previous_sent, answered)
            previous_sent = sent
            await asyncio.sleep(work.poll_interval)
        done.set()

    polling = asyncio.create_task(poller())
    started = time.perf_counter()
    sends = []
    for b in range(result.batches):
        await asyncio.sleep(max(0.0, started + b * interval - time.perf_counter()))
        sends.append(asyncio.create_task(send(b)))
    await asyncio.gather(*sends)
    result.send_elapsed = time.perf_counter() - started
    await polling
    return result


# ----------------------------------------------------------------------- 3. raw aiokafka


@dataclass(frozen=True)
class RawResult:
    messages: int
    events: int
    bytes: int
    elapsed: float

    @property
    def message_rate(self) -> float:
        return self.messages / self.elapsed

    @property
    def event_rate(self) -> float:
        return self.events / self.elapsed


async def measure_raw_producer(
    bootstrap: str, work: Workload, pool: Sequence[str], events: int
) -> RawResult:
    """The gateway's messages of phase 1's batches, by one producer, all in flight."""
    outgoing: list[OutgoingMessage] = []
    for b in range(-(-events // work.batch_size)):
        size = min(work.batch_size, events - b * work.batch_size)
        customers = batch_customers(b, pool, work.customers_per_batch)
        outgoing.extend(gateway_messages(event_body("raw", b, customers, size)))
    topic = f"billing.bench.raw_usage_{uuid7().hex[-10:]}"
    await ensure_topics(bootstrap, [topic], partitions=3)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, client_id="bench-raw", **GATEWAY_PRODUCER
    )
    await producer.start()
    try:

        async def send_all(messages: Sequence[OutgoingMessage]) -> None:
            acks = [
                await producer.send(topic, value=m.value, key=m.key, headers=m.headers)
                for m in messages
            ]
            await asyncio.gather(*acks)

        await send_all(outgoing[:10])  # metadata, connections
        started = time.perf_counter()
        await send_all(outgoing)
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    return RawResult(len(outgoing), events, sum(len(m.value) for m in outgoing), elapsed)


# ---------------------------------------------------------------------------- 4. profile


@dataclass(frozen=True)
class Hooks:
    """Where the `sitecustomize` hook of each service writes (see `HOOK`)."""

    folder: Path
    stages: Path | None  # metering's stage timings
    profiles: dict[str, Path]  # service → its cProfile stats

    def env(self) -> dict[str, dict[str, str]]:
        path = os.pathsep.join(p for p in (str(self.folder), os.environ.get("PYTHONPATH")) if p)
        env: dict[str, dict[str, str]] = {}
        if self.stages is not None:
            env["metering"] = {
                "PYTHONPATH": path,
                "BENCH_STAGES_OUT": str(self.stages),
                "BENCH_STAGES_TARGETS": " ".join(target for target, _ in STAGES),
            }
        for name, out in self.profiles.items():
            env.setdefault(name, {"PYTHONPATH": path})["BENCH_CPROFILE_OUT"] = str(out)
        return env


def signal_all(pids: Sequence[int], signum: int) -> None:
    for pid in pids:
        os.kill(pid, signum)


async def written(path: Path, wait: float = 30.0) -> bool:
    """Whether a service has written `path` (waiting up to `wait` seconds)."""
    deadline = time.monotonic() + wait
    while not await asyncio.to_thread(path.exists):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


def print_stages(path: Path, result: ThroughputResult) -> None:
    """Wall time of each step of metering's batches over phase 1 (the hook's JSON)."""
    report = json.loads(path.read_text())
    window: float = report["window"]
    stages: dict[str, list[float]] = report["stages"]
    print(
        f"   metering's usage consumer, wall time per step over the window ({window:.2f} s; "
        "the hook times the functions from outside):"
    )
    for target, label in STAGES:
        total, calls = stages.get(target.partition(":")[2], [0.0, 0])
        if calls:
            print(
                f"     {total:6.2f} s {total / window:4.0%}  {int(calls):5} calls, "
                f"{1000 * total / calls:7.1f} ms each  {label}"
            )
    whole = stages.get("BatchConsumer.process", [0.0, 0])
    if whole[1]:
        print(
            f"     {window - whole[0]:6.2f} s {(window - whole[0]) / window:4.0%}  outside a "
            f"batch: fetch, offset commit, FastStream, idle ({result.messages / whole[1]:.1f} "
            f"messages = {result.events / whole[1]:.0f} events per batch on average)"
        )


def profile_report(stats: pstats.Stats, limit: int) -> str:
    """Top functions by own time, then the platform's and its clients' by cumulative time."""
    out = StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(limit)
    ours = (
        r"billing_(common|gateway|metering)/|aiokafka/(producer|consumer)/[a-z_]+\.py"
        r"|clickhouse_connect/driver/[a-z_]+\.py.*(insert|query)|asyncpg/pool\.py.*acquire"
        r"|starlette/routing\.py.*handle|redis/asyncio/client\.py.*execute"
    )
    stats.sort_stats("cumulative").print_stats(ours, limit)
    return "\n".join(
        line.replace(str(Path(sys.prefix)), "<venv>").rstrip()
        for line in out.getvalue().splitlines()
    )


# ------------------------------------------------------------------------------ report


def print_throughput(result: ThroughputResult, work: Workload) -> None:
    accept = result.events / result.accept_elapsed
    end_to_end = result.events / result.end_to_end_elapsed
    last = result.all_visible
    print(
        f"1. throughput: {result.events:,} events in batches of {work.batch_size}, "
        f"{work.customers_per_batch} customers per batch ({result.messages:,} Kafka messages, "
        f"{result.events / result.messages:.0f} events each), {work.concurrency} HTTP clients"
    )
    print(
        f"   gateway accept (first send → last 202): {result.accept_elapsed:.2f} s = "
        f"{accept:,.0f} events/s; POST {spread_ms(result.request_times)}"
    )
    print(
        f"   end to end (first send → usage query counting all): {result.end_to_end_elapsed:.2f} s"
        f" = {end_to_end:,.0f} events/s (resolution: poll every {work.poll_interval:g} s; "
        f"last poll took {1000 * (last.answered - last.sent):.0f} ms)"
    )
    behind = result.visible_at(result.last_ack)
    print(
        f"   at the last 202, {behind:,} events ({behind / result.events:.0%}) were queryable; "
        f"the rest took {last.answered - result.last_ack:.2f} s more"
    )
    consumed = result.consumed_all_at()
    if consumed is not None:
        print(
            f"   metering's consumer had applied all {result.messages:,} messages "
            f"{consumed - result.started:.2f} s after the first send (its metrics counter)"
        )
    print("   stages, from outside (each from the first send):")
    marks = [(0.25, "25%"), (0.5, "50%"), (0.75, "75%"), (1.0, "100%")]
    for share, label in marks:
        polls = [p for p in result.polls if p.visible >= share * result.events]
        if polls:
            print(f"     {label:>4} queryable at {polls[0].answered - result.started:6.2f} s")
    elapsed = result.end_to_end_elapsed
    total_cpu = sum(result.cpu.values())
    print(
        f"   CPU over the end-to-end window ({elapsed:.1f} s x {os.cpu_count()} CPUs = "
        f"{elapsed * (os.cpu_count() or 1):.1f} CPU-s available; used {total_cpu:.1f} CPU-s, "
        f"load average {result.load[0]:.1f} → {result.load[1]:.1f}):"
    )
    for name, used in sorted(result.cpu.items(), key=lambda item: -item[1]):
        print(
            f"     {name:<12} {used:6.2f} CPU-s = {used / elapsed:4.0%} of one CPU, "
            f"{used / result.events * 1e6:6.1f} µs/event"
        )
    print("   metering's threads (CPU-s over the window):")
    for name, used in result.metering_threads[:6]:
        print(f"     {used:6.2f}  {name}")


def print_latency(result: LatencyResult, work: Workload, tenant: Tenant) -> None:
    print(
        f"2. latency at {result.rate:,.0f} events/s: {result.batches} batches of "
        f"{result.batch_size} (one marker customer each, one Kafka message each) over "
        f"{result.send_elapsed:.1f} s"
    )
    print(f"   202 → visible in a usage query (upper bound): {spread_ms(result.upper())}")
    print(f"   202 → visible (lower bound, previous poll's start): {spread_ms(result.lower())}")
    print(
        f"   poll every {work.poll_interval:g} s; each poll (gateway → metering → chdb) took "
        f"{spread_ms(result.poll_times)}; the true instant is within one poll cycle"
    )
    if len(result.seen) < result.batches:
        print(f"   ! only {len(result.seen)} of {result.batches} batches seen")
    if tenant.retries:
        print(f"   ({tenant.retries} POSTs were answered 429/503 and resent, all phases)")


def print_raw(raw: RawResult, throughput: ThroughputResult) -> None:
    end_to_end = throughput.events / throughput.end_to_end_elapsed
    accept = throughput.events / throughput.accept_elapsed
    print(
        f"3. raw aiokafka, one producer as the gateway's (acks=all, linger 5 ms), the gateway's "
        f"messages of phase 1 ({raw.messages:,} x {raw.bytes / raw.messages:,.0f} bytes mean)"
    )
    print(
        f"   {raw.elapsed:.2f} s: {raw.message_rate:,.0f} messages/s = {raw.event_rate:,.0f} "
        f"events/s, {raw.bytes / raw.elapsed / MIB:.1f} MiB/s"
    )
    print(
        f"   end to end / raw = {end_to_end / raw.event_rate:.1%} per event "
        f"(the same as per message: same messages); gateway accept / raw = "
        f"{accept / raw.event_rate:.1%}"
    )


def print_memory(sampler: MemorySampler) -> None:
    print("peak memory (sampled every 0.25 s; VmHWM is the kernel's exact peak of the leader)")
    for name, peak in sampler.peaks.items():
        extra = (
            f", {peak.pss_sum / MIB:.0f} MiB PSS summed over up to {peak.processes} processes"
            if peak.processes > 1
            else ""
        )
        print(
            f"   {name:<12} VmHWM {peak.leader_hwm / MIB:5.0f} MiB; "
            f"RSS sum {peak.rss_sum / MIB:.0f} MiB{extra}"
        )
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"   {'bench':<12} VmHWM {own:5.0f} MiB")


def print_log_tails(data_dir: Path, lines: int = 15) -> None:
    for name in ("gateway", "metering"):
        log = data_dir / "logs" / f"{name}.log"
        with contextlib.suppress(OSError):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            print(f"--- last lines of {name}.log ---")
            print("\n".join(tail))


# -------------------------------------------------------------------------------- main


class Phase:
    name = "start"


async def run_all(
    running: RunningPlatform, work: Workload, pids: Mapping[str, int], hooks: Hooks
) -> None:
    async with httpx.AsyncClient(
        base_url=running.gateway_url,
        headers={"authorization": f"Bearer {running.api_key}"},
        timeout=120,
        trust_env=False,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
    ) as client:
        tenant = Tenant(running, client, running.service_urls["metering"])
        Phase.name = "setup"
        pool = [f"bench-c{i:05d}" for i in range(work.customers)]
        markers = [f"bench-m{i:05d}" for i in range(work.paced_batches)]
        started = time.perf_counter()
        await create_meter_and_customers(tenant, pool + markers)
        created = time.perf_counter() - started
        took = await warm_up(tenant, pool + markers, work.poll_interval)
        print(
            f"0. setup: 1 meter and {len(pool) + len(markers)} customers in {created:.1f} s; "
            f"warm-up (1 event per customer, all queryable) {took:.1f} s"
        )
        Phase.name = "throughput"
        timed = [pids["metering"]] if hooks.stages is not None else []
        throughput = await measure_throughput(
            tenant, work, pids, phase="main", events=work.events, timed=timed
        )
        print_throughput(throughput, work)
        if hooks.stages is not None and await written(hooks.stages):
            print_stages(hooks.stages, throughput)
        Phase.name = "latency"
        latency = await measure_latency(tenant, work)
        print_latency(latency, work, tenant)
        Phase.name = "raw aiokafka"
        raw = await measure_raw_producer(running.stack.kafka_bootstrap, work, pool, work.events)
        print_raw(raw, throughput)
        if hooks.profiles:
            Phase.name = "profile"
            profiled = [pids[name] for name in hooks.profiles]
            signal_all(profiled, signal.SIGUSR2)
            result = await measure_throughput(
                tenant, work, pids, phase="prof", events=work.profile_events
            )
            signal_all(profiled, signal.SIGUSR2)
            print(
                f"4. profile: {work.profile_events:,} events as in 1 with cProfile on in "
                f"{', '.join(hooks.profiles)} (main thread only; cProfile slows Python code): "
                f"{work.profile_events / result.end_to_end_elapsed:,.0f} events/s end to end"
            )
            for name, path in hooks.profiles.items():
                if not await written(path):
                    print(f"   {name}: no profile written to {path}")
                    continue
                print(f"--- cProfile of {name} ---")
                print(profile_report(pstats.Stats(str(path)), 22))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Usage ingestion benchmark: HTTP → gateway → Kafka → metering → query."
    )
    parser.add_argument("--events", type=int, default=100_000, help="events of phase 1")
    parser.add_argument("--batch-size", type=int, default=1000, help="events per POST")
    parser.add_argument("--concurrency", type=int, default=4, help="HTTP clients of phase 1")
    parser.add_argument("--customers", type=int, default=100, help="customers phase 1 uses")
    parser.add_argument(
        "--customers-per-batch",
        type=int,
        default=10,
        help="distinct customers in a batch: the gateway makes one Kafka message of each",
    )
    parser.add_argument("--paced-rate", type=float, default=10_000, help="events/s of phase 2")
    parser.add_argument("--paced-seconds", type=float, default=10, help="length of phase 2")
    parser.add_argument("--poll-interval", type=float, default=0.1, help="seconds between polls")
    parser.add_argument(
        "--profile", action="store_true", help="phase 4: cProfile metering and the gateway"
    )
    parser.add_argument("--profile-events", type=int, default=30_000, help="events of phase 4")
    parser.add_argument(
        "--no-stage-timing",
        action="store_true",
        help="leave metering without the hook that times its consumer's steps in phase 1",
    )
    parser.add_argument("--deadline", type=float, default=900, help="abort after this many s")
    args = parser.parse_args(argv)
    if min(args.events, args.batch_size, args.concurrency, args.customers) < 1:
        parser.error("--events, --batch-size, --concurrency and --customers must be ≥ 1")
    if not 1 <= args.customers_per_batch <= min(args.batch_size, args.customers):
        parser.error("--customers-per-batch must be between 1 and --batch-size, --customers")
    if args.batch_size > 1000 or args.paced_rate <= 0 or args.poll_interval <= 0:
        parser.error("--batch-size ≤ 1000 (the gateway's limit); --paced-rate, --poll-interval > 0")
    return args


def workload(args: argparse.Namespace) -> Workload:
    return Workload(
        events=args.events,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        customers=args.customers,
        customers_per_batch=args.customers_per_batch,
        paced_rate=args.paced_rate,
        paced_seconds=args.paced_seconds,
        poll_interval=args.poll_interval,
        profile_events=args.profile_events if args.profile else 0,
    )


def stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C: every process stops, the folder goes."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def running_platform(
    data_dir: Path, service_env: Mapping[str, Mapping[str, str]]
) -> Iterator[tuple[Platform, RunningPlatform]]:
    platform = Platform(data_dir, services=("customers", "metering"), service_env=service_env)
    try:
        yield platform, platform.start()
    finally:
        platform.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    work = workload(args)
    stop_on_sigterm()
    print(
        f"ingest: {work.events:,} events, batches of {work.batch_size}, "
        f"{work.concurrency} clients; paced {work.paced_rate:,.0f} events/s for "
        f"{work.paced_seconds:g} s; {os.uname().machine}, {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        flush=True,
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
        data_dir = Path(folder)
        # The default limit (100 requests/s, burst 200, per key) would cap phase 1 at
        # 100,000 events/s with the polls counted in: the bench measures the pipeline.
        gateway_env = {
            "GATEWAY_RATE_LIMIT_PER_SECOND": "1000000",
            "GATEWAY_RATE_LIMIT_BURST": "1000000",
        }
        hooks = Hooks(
            data_dir / "hook",
            None if args.no_stage_timing else data_dir / "metering-stages.json",
            {name: data_dir / f"{name}.prof" for name in ("metering", "gateway")}
            if args.profile
            else {},
        )
        hooks.folder.mkdir()
        (hooks.folder / "sitecustomize.py").write_text(HOOK)
        service_env = hooks.env()
        service_env.setdefault("gateway", {}).update(gateway_env)
        with running_platform(data_dir, service_env) as (platform, running):
            print(f"platform up in {time.monotonic() - started:.0f} s", flush=True)
            with MemorySampler(platform_pids(platform)) as sampler:
                try:
                    asyncio.run(
                        asyncio.wait_for(
                            run_all(running, work, sampler.pids, hooks), timeout=args.deadline
                        )
                    )
                except TimeoutError:
                    print(f"aborted: the {args.deadline:g} s deadline passed in {Phase.name}")
                    print_log_tails(data_dir)
                    return 2
                except Exception:
                    print(f"failed in {Phase.name}")
                    print_log_tails(data_dir)
                    raise
            print_memory(sampler)
    print(f"total, with the platform's start and stop: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
