from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis
import stripe
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

import billing_local.stack as stack_module
from billing_local import EmbeddedStack, StackStartError, StackUrls
from billing_local._proc import Reaper, spawn, write_records
from billing_local._proc import free_port as real_free_port

NewProcesses = Callable[..., list[psutil.Process]]
AssertGone = Callable[[list[psutil.Process]], None]

# Values for the servers a test does not need: set, so that they are not started.
NOT_NEEDED = {
    "KAFKA_BOOTSTRAP": "127.0.0.1:1",
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "STRIPE_API_BASE": "http://127.0.0.1:1",
}
NO_URLS = {k: v for k, v in os.environ.items() if k not in NOT_NEEDED}


def _only(*keys: str) -> dict[str, str]:
    """An environment in which only the servers named by `keys` get started."""
    return {**NO_URLS, **{k: v for k, v in NOT_NEEDED.items() if k not in keys}}


async def _kafka_roundtrip(bootstrap: str) -> bytes:
    topic = f"t-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello tansu", key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        message = await asyncio.wait_for(consumer.getone(), timeout=20)
        assert message.value is not None
        return bytes(message.value)
    finally:
        await consumer.stop()


async def _postgres_roundtrip(url: str) -> list[tuple[int, str]]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS probe (id INT PRIMARY KEY, name TEXT)")
        await conn.execute(
            "INSERT INTO probe VALUES ($1, $2) ON CONFLICT DO NOTHING", 1, "hello pg"
        )
        rows = await conn.fetch("SELECT id, name FROM probe ORDER BY id")
        assert await conn.fetchval("SELECT current_database()") == "billing"
        return [(row["id"], row["name"]) for row in rows]
    finally:
        await conn.close()


def _stripe_roundtrip(base: str) -> str:
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": base})
    created = client.v1.customers.create(params={"email": "probe@example.com"})
    fetched = client.v1.customers.retrieve(created.id)
    return str(fetched.email)


def test_full_stack_answers_every_protocol_and_stops(
    tmp_path: Path, new_processes: NewProcesses, assert_gone: AssertGone
) -> None:
    data = tmp_path / "data"
    started = time.monotonic()
    with EmbeddedStack(data, env=NO_URLS) as stack:
        urls = stack.start()
        elapsed = time.monotonic() - started
        print(f"full stack started in {elapsed:.2f}s: {urls}")
        assert stack.start() is urls  # idempotent

        assert asyncio.run(_kafka_roundtrip(urls.kafka_bootstrap)) == b"hello tansu"
        assert asyncio.run(_postgres_roundtrip(urls.database_url)) == [(1, "hello pg")]
        cache = redis.Redis.from_url(urls.redis_url)
        try:
            assert cache.set("probe", "hello valkey")
            assert cache.get("probe") == b"hello valkey"
        finally:
            cache.close()
        assert _stripe_roundtrip(urls.stripe_api_base) == "probe@example.com"

        assert urls.as_env() == {
            "KAFKA_BOOTSTRAP": urls.kafka_bootstrap,
            "DATABASE_URL": urls.database_url,
            "REDIS_URL": urls.redis_url,
            "STRIPE_API_BASE": urls.stripe_api_base,
        }
        assert urls.database_url.startswith("postgresql://postgres@127.0.0.1:")
        for name in ("tansu", "postgres", "valkey", "localstripe"):
            assert (data / "logs" / f"{name}.log").stat().st_size > 0
        assert (data / "children.json").exists()
        procs = new_processes()
        names = " ".join(" ".join(p.cmdline()) for p in procs)
        for needle in ("tansu", "bin/postgres", "valkey-server", "_localstripe"):
            assert needle in names
        if os.geteuid() == 0:
            owners = {p.username() for p in procs if "postgres" in p.name()}
            assert owners == {stack_module.PG_SYSTEM_USER}
    stack.stop()  # idempotent
    assert_gone(procs)
    assert not (data / "children.json").exists()


def test_a_url_in_the_environment_is_reused(
    tmp_path: Path, new_processes: NewProcesses, assert_gone: AssertGone
) -> None:
    with EmbeddedStack(tmp_path / "first", env=_only("DATABASE_URL")) as first:
        database_url = first.start().database_url
        before = {p.pid for p in new_processes()}
        env = {**NO_URLS, "DATABASE_URL": database_url}
        with EmbeddedStack(tmp_path / "second", env=env) as second:
            urls = second.start()
            assert urls.database_url == database_url
            added = [p for p in new_processes() if p.pid not in before]
            assert added  # tansu, valkey and localstripe
            assert not any("postgres" in p.name() for p in added)
            assert not (tmp_path / "second" / "logs" / "postgres.log").exists()
            assert not (tmp_path / "second" / "postgres").exists()
            assert asyncio.run(_postgres_roundtrip(urls.database_url)) == [(1, "hello pg")]
        assert_gone(added)
        # The first stack's PostgreSQL still serves.
        assert asyncio.run(_postgres_roundtrip(database_url)) == [(1, "hello pg")]


def test_nothing_is_started_when_every_url_is_set(
    tmp_path: Path, new_processes: NewProcesses
) -> None:
    env = {**NO_URLS, **NOT_NEEDED}
    with EmbeddedStack(tmp_path / "data", env=env) as stack:
        assert stack.start() == StackUrls(
            kafka_bootstrap=NOT_NEEDED["KAFKA_BOOTSTRAP"],
            database_url=NOT_NEEDED["DATABASE_URL"],
            redis_url=NOT_NEEDED["REDIS_URL"],
            stripe_api_base=NOT_NEEDED["STRIPE_API_BASE"],
        )
        assert new_processes() == []


def test_postgres_data_survives_a_restart_on_the_same_folder(
    tmp_path: Path, new_processes: NewProcesses
) -> None:
    data = tmp_path / "data"
    with EmbeddedStack(data, env=_only("DATABASE_URL")) as stack:
        assert asyncio.run(_postgres_roundtrip(stack.start().database_url)) == [(1, "hello pg")]
    with EmbeddedStack(data, env=_only("DATABASE_URL")) as stack:
        url = stack.start().database_url

        async def count() -> int:
            conn = await asyncpg.connect(url)
            try:
                return int(await conn.fetchval("SELECT count(*) FROM probe"))
            finally:
                await conn.close()

        assert asyncio.run(count()) == 1


def test_one_folder_serves_one_stack_at_a_time(tmp_path: Path, new_processes: NewProcesses) -> None:
    with EmbeddedStack(tmp_path / "data", env=_only("REDIS_URL")):
        other = EmbeddedStack(tmp_path / "data", env=_only("REDIS_URL"))
        with pytest.raises(StackStartError, match="another EmbeddedStack"):
            other.start()


def _script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def test_a_failing_server_stops_what_was_started(
    tmp_path: Path, new_processes: NewProcesses, assert_gone: AssertGone
) -> None:
    # A "Tansu" that fails after the others have had time to start.
    bogus = _script(tmp_path / "tansu", "echo 'tansu: boom' >&2\nsleep 1.5\nexit 3\n")
    data = tmp_path / "data"
    stack = EmbeddedStack(data, env={**NO_URLS, "CALF_TANSU_BIN": bogus})
    seen: dict[int, psutil.Process] = {}
    names: set[str] = set()
    done = threading.Event()

    def watch() -> None:  # what runs while start() is under way
        while not done.wait(0.05):
            for proc in new_processes():
                with contextlib.suppress(psutil.Error):
                    names.add(proc.name())
                    seen[proc.pid] = proc

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with pytest.raises(StackStartError) as failure:
            stack.start()
    finally:
        done.set()
        watcher.join()
    message = str(failure.value)
    assert "tansu exited with code 3" in message
    assert "tansu: boom" in message  # the log tail
    for name in ("valkey", "localstripe"):  # they did start in the meantime
        assert (data / "logs" / f"{name}.log").exists()
    assert {"valkey-server", "tansu"} <= names  # Tansu is a script named so
    assert_gone(list(seen.values()))
    assert_gone(new_processes())
    assert not (data / "children.json").exists()
    # The folder is free again and the half-started cluster is usable.
    with EmbeddedStack(data, env=_only("DATABASE_URL")) as again:
        assert asyncio.run(_postgres_roundtrip(again.start().database_url)) == [(1, "hello pg")]


def test_a_server_that_never_answers_times_out_with_its_log(
    tmp_path: Path, new_processes: NewProcesses, assert_gone: AssertGone
) -> None:
    # Its own child (sleep) must die too: the whole process group is killed.
    bogus = _script(tmp_path / "tansu", "echo 'tansu: stuck'\nsleep 600 &\nwait\n")
    env = {**_only("KAFKA_BOOTSTRAP"), "CALF_TANSU_BIN": bogus}
    stack = EmbeddedStack(tmp_path / "data", env=env, start_timeout=1.5)
    with pytest.raises(StackStartError, match=r"(?s)did not answer.*within 1.5s.*tansu: stuck"):
        stack.start()
    assert_gone(new_processes())


def test_a_port_race_is_retried_once(
    tmp_path: Path, new_processes: NewProcesses, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1]])
        monkeypatch.setattr(
            "billing_local.stack.free_port", lambda: next(ports, None) or real_free_port()
        )
        with EmbeddedStack(tmp_path / "data", env=_only("REDIS_URL")) as stack:
            url = stack.start().redis_url
            cache = redis.Redis.from_url(url)
            try:
                assert cache.ping()
            finally:
                cache.close()
    log = (tmp_path / "data" / "logs" / "valkey.log").read_text()
    assert "Address already in use" in log


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    env = {**_only("REDIS_URL"), "PYTHONPATH": str(Path(stack_module.__file__).parent.parent)}
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "billing_local"),
            *("--data-dir", str(tmp_path / "data"), "--env-file", str(tmp_path / "stack.env")),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def test_cli_prints_exports_and_stops_on_sigterm(
    tmp_path: Path, cli: subprocess.Popen[str], assert_gone: AssertGone
) -> None:
    assert cli.stdout is not None
    lines = [cli.stdout.readline().strip() for _ in range(4)]
    assert lines[2].startswith("export REDIS_URL=redis://127.0.0.1:")
    assert lines[0] == f"export KAFKA_BOOTSTRAP={NOT_NEEDED['KAFKA_BOOTSTRAP']}"
    assert (tmp_path / "stack.env").read_text().splitlines() == lines
    children = psutil.Process(cli.pid).children(recursive=True)
    assert sorted(p.name() for p in children) == ["python", "valkey-server"]  # + the reaper
    cli.send_signal(signal.SIGTERM)
    assert cli.wait(timeout=20) == 0
    assert_gone(children)
    assert not (tmp_path / "stack.env").exists()


def test_servers_die_with_a_killed_launcher(
    tmp_path: Path, cli: subprocess.Popen[str], assert_gone: AssertGone
) -> None:
    assert cli.stdout is not None
    for _ in range(4):
        cli.stdout.readline()
    children = psutil.Process(cli.pid).children(recursive=True)
    valkey = [p for p in children if p.name() == "valkey-server"]
    assert len(valkey) == 1
    cli.kill()  # no chance to clean up: the reaper does it
    cli.wait(timeout=10)
    assert_gone(children)
    assert "stopped valkey" in (tmp_path / "data" / "logs" / "reaper.log").read_text()
    assert not (tmp_path / "data" / "children.json").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user")
def test_postgres_retries_once_when_its_folder_was_not_traversable(
    tmp_path: Path, new_processes: NewProcesses, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As when another pytest session chmods /tmp/pytest-of-root back to 0700 between
    # our chmod o+x and initdb: the first grant is skipped, the second one works.
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    calls: list[Path] = []
    real = stack_module._make_traversable

    def flaky(path: Path) -> None:
        calls.append(path)
        if len(calls) > 2:
            real(path)

    monkeypatch.setattr("billing_local.stack._make_traversable", flaky)
    with EmbeddedStack(locked / "data", env=_only("DATABASE_URL")) as stack:
        assert asyncio.run(_postgres_roundtrip(stack.start().database_url)) == [(1, "hello pg")]
    assert len(calls) >= 4  # twice (bin dir, data dir), then the socket dir
    assert "Permission denied" in (locked / "data" / "logs" / "postgres.log").read_text()


def test_a_terminated_reaper_stops_the_servers_it_watches(
    tmp_path: Path, new_processes: NewProcesses, assert_gone: AssertGone
) -> None:
    sleeper = spawn("sleeper", ["sleep", "60"], log_path=tmp_path / "sleeper.log")
    state = tmp_path / "children.json"
    write_records(state, [sleeper])
    reaper = Reaper(state, tmp_path / "reaper.log")
    try:
        watched = [p for p in new_processes() if p.pid == sleeper.pid]
        assert len(watched) == 1
        deadline = time.monotonic() + 10
        while "reaper: watching" not in (tmp_path / "reaper.log").read_text():
            assert time.monotonic() < deadline, "the reaper never started watching"
            time.sleep(0.05)
        watchdog = psutil.Process(reaper.pid)
        os.kill(reaper.pid, signal.SIGTERM)  # as a `pkill` sweeping the owner's tree would
        assert_gone(watched)
        watchdog.wait(timeout=10)
        assert "stopped sleeper" in (tmp_path / "reaper.log").read_text()
    finally:
        reaper.close()
        sleeper.finish()
