from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator

import psutil
import pytest


def _descendants() -> dict[int, psutil.Process]:
    return {p.pid: p for p in psutil.Process(os.getpid()).children(recursive=True)}


def _all_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """The processes still running (zombies count as gone) after `timeout`."""
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    still = []
    for proc in alive:
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                still.append(proc)
        except psutil.NoSuchProcess:
            continue
    return still


def _is_reaper(proc: psutil.Process) -> bool:
    try:
        return "billing_local._reaper" in proc.cmdline()
    except psutil.Error:
        return False


@pytest.fixture
def new_processes() -> Iterator[Callable[..., list[psutil.Process]]]:
    """Returns a function listing the descendants started since the test began
    (without the reaper watchdogs, unless called with reapers=True).

    At teardown, whichever of them still runs is killed and the test errors: even a
    failing test leaves no server behind.
    """
    before = set(_descendants())
    seen: dict[int, psutil.Process] = {}

    def current(*, reapers: bool = False) -> list[psutil.Process]:
        found = []
        for pid, proc in _descendants().items():
            if pid in before:
                continue
            seen.setdefault(pid, proc)
            if reapers or not _is_reaper(proc):
                found.append(proc)
        return found

    yield current
    current()
    leaked = _all_gone(list(seen.values()), timeout=0.5)
    for proc in leaked:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    assert not leaked, f"processes left running: {[p.pid for p in leaked]}"


@pytest.fixture
def assert_gone() -> Callable[[list[psutil.Process]], None]:
    """Assert that the given processes exit within 10 s."""

    def check(procs: list[psutil.Process]) -> None:
        still = _all_gone(procs, timeout=10)
        assert not still, f"still running: {[(p.pid, p.name()) for p in still]}"

    return check


@pytest.fixture
def free_port() -> Callable[[], int]:
    def pick() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            return port

    return pick
