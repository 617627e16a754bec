"""ServiceSupervisor: the platform's own services as child processes.

Used by `make dev` and by e2e tests (crash tests kill and restart services). Each
service runs as `[sys.executable, "-m", module]` in its own process group, with
HTTP_PORT set, appending stdout and stderr to `<log_dir>/<name>.log`; it counts as
started once GET http://127.0.0.1:<port>/health answers 200.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from billing_local._proc import Child, Reaper, spawn, stop_children, write_records

_POLL_INTERVAL = 0.1


class ServiceStartError(RuntimeError):
    """A service exited or did not become healthy; the message has its log tail."""


@dataclass(frozen=True)
class ServiceSpec:
    """One service: `python -m <module>`, healthy when /health on `port` answers 200."""

    name: str
    module: str
    port: int
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class _Running:
    spec: ServiceSpec
    extra_env: Mapping[str, str]
    child: Child


class ServiceSupervisor:
    """Start, kill, restart and stop services; a context manager (stop_all on exit).

    A child's environment is os.environ (unless inherit_env=False), then base_env,
    then spec.env, then extra_env, then HTTP_PORT=<spec.port> and, unless given,
    PYTHONUNBUFFERED=1 (so that log tails are current).
    """

    def __init__(
        self,
        base_env: Mapping[str, str],
        log_dir: Path,
        *,
        health_timeout: float = 60.0,
        inherit_env: bool = True,
    ) -> None:
        self._base_env = dict(base_env)
        self._log_dir = Path(log_dir)
        self._health_timeout = health_timeout
        self._inherit_env = inherit_env
        self._services: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._reaper: Reaper | None = None

    # ------------------------------------------------------------------ public

    def start(
        self,
        spec: ServiceSpec,
        *,
        wait: bool = True,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        """Start `spec`; with wait, block until healthy (killing it if it never is)."""
        running = self._spawn(spec, extra_env or {})
        if wait:
            try:
                self._wait_healthy([running], self._health_timeout)
            except BaseException:
                self._terminate(running)
                raise

    def start_all(self, specs: Sequence[ServiceSpec], timeout: float = 120) -> None:
        """Start every spec at once, then wait until all are healthy.

        If one fails, the services this call started are stopped before raising.
        """
        started: list[_Running] = []
        try:
            for spec in specs:
                started.append(self._spawn(spec, {}))
            self._wait_healthy(started, timeout)
        except BaseException:
            stop_children([r.child for r in started])
            raise

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the service's process group and wait for the process to exit.

        The service stays known (restart() starts it again). Whatever of its group is
        still alive once the leader has exited is SIGKILLed.
        """
        running = self._get(name)
        child = running.child
        if child.alive():
            child.signal_group(sig)
            if not child.wait_exit(30 if sig == signal.SIGKILL else self._health_timeout):
                child.signal_group(signal.SIGKILL)
                child.wait_exit(None)
        child.finish()
        with self._lock:
            self._record()

    def restart(self, name: str, extra_env: Mapping[str, str] | None = None) -> None:
        """Stop the service if it runs (SIGTERM, then SIGKILL), start it, wait healthy.

        extra_env replaces the previous start's extra_env; None keeps it.
        """
        running = self._get(name)
        self._terminate(running)
        env = running.extra_env if extra_env is None else extra_env
        self.start(running.spec, wait=True, extra_env=env)

    def pid(self, name: str) -> int:
        """Pid of the service's current process (its process group id as well)."""
        return self._get(name).child.pid

    def is_running(self, name: str) -> bool:
        return self._get(name).child.alive()

    def stop_all(self) -> None:
        """SIGTERM every service's group, wait up to 10 s, then SIGKILL. Idempotent."""
        with self._lock:
            children = [r.child for r in self._services.values()]
        stop_children(children, timeout=10.0)
        with self._lock:
            if self._reaper is not None:
                self._reaper.close()
                self._reaper = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()

    # --------------------------------------------------------------- internals

    def _get(self, name: str) -> _Running:
        with self._lock:
            try:
                return self._services[name]
            except KeyError:
                raise KeyError(f"no service named {name!r} was started") from None

    def _spawn(self, spec: ServiceSpec, extra_env: Mapping[str, str]) -> _Running:
        with self._lock:
            previous = self._services.get(spec.name)
            if previous is not None and previous.child.alive():
                raise ServiceStartError(
                    f"service {spec.name!r} is already running (pid {previous.child.pid})"
                )
        env: dict[str, str] = {}
        if self._inherit_env:
            env.update(os.environ)
        env.update(self._base_env)
        env.update(spec.env)
        env.update(extra_env)
        env["HTTP_PORT"] = str(spec.port)
        env.setdefault("PYTHONUNBUFFERED", "1")
        with self._lock:
            if self._reaper is None:
                self._log_dir.mkdir(parents=True, exist_ok=True)
                state = self._log_dir / f".supervisor-{os.getpid()}-{id(self):x}.json"
                self._reaper = Reaper(state, self._log_dir / "reaper.log")
            child = spawn(
                spec.name,
                [sys.executable, "-m", spec.module],
                log_path=self._log_dir / f"{spec.name}.log",
                env=env,
            )
            running = _Running(spec, dict(extra_env), child)
            self._services[spec.name] = running
            self._record()
        return running

    def _record(self) -> None:
        """Tell the reaper which services run (call with the lock held)."""
        if self._reaper is not None:
            children = [r.child for r in self._services.values() if r.child.alive()]
            write_records(self._reaper.state_file, children)

    def _terminate(self, running: _Running) -> None:
        stop_children([running.child], timeout=10.0)

    def _wait_healthy(self, services: Sequence[_Running], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(services)
        # trust_env=False: never through an HTTP proxy from the environment.
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while pending:
                for running in list(pending):
                    child = running.child
                    if not child.alive():
                        raise ServiceStartError(
                            f"service {child.name!r} (python -m {running.spec.module}) "
                            f"{child.exit_reason()} before /health answered 200; "
                            f"log {child.log_path}:\n{child.log_tail()}"
                        )
                    url = f"http://127.0.0.1:{running.spec.port}/health"
                    try:
                        healthy = client.get(url).status_code == 200
                    except httpx.HTTPError:
                        healthy = False
                    if healthy:
                        pending.remove(running)
                if not pending:
                    return
                if time.monotonic() > deadline:
                    details = "\n".join(
                        f"--- {r.child.name} (pid {r.child.pid}), log {r.child.log_path}:\n"
                        f"{r.child.log_tail()}"
                        for r in pending
                    )
                    names = ", ".join(r.child.name for r in pending)
                    raise ServiceStartError(
                        f"not healthy within {timeout:g}s (GET /health != 200): {names}\n{details}"
                    )
                time.sleep(_POLL_INTERVAL)
