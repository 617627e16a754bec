"""Process helpers shared by the stack launcher and the service supervisor.

Every child runs in its own session (so in its own process group, whose id is the
child's pid); stopping a child signals the whole group, so grandchildren such as
PostgreSQL backends go with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LOG_TAIL_LINES = 40
PORT_RACE_MARKERS = ("address already in use", "eaddrinuse", "address in use")


def free_port() -> int:
    """Return a TCP port that was free on 127.0.0.1 a moment ago (bind port 0, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def read_tail(path: Path, offset: int = 0, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of `path` written after byte `offset` ("" if none)."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Child:
    """A started child process, leader of its own process group, logging to a file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_offset: int
    stop_signal: int = signal.SIGTERM
    #: pid and start time, taken at spawn: what the reaper may kill.
    identity: str | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        """Whether the leader still runs. Does not reap it: until finish() reaps it,
        its zombie keeps the process group id reserved, so signalling the group can
        never hit an unrelated process that got the id recycled."""
        if self.popen.returncode is not None:
            return False
        try:
            state = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # reaped by someone else
            return False
        return state is None

    def wait_exit(self, timeout: float | None) -> bool:
        """Wait until the leader has exited (without reaping it); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.alive():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def finish(self) -> None:
        """SIGKILL what is left of the group (the leader too if it still runs), reap it.

        Meant for after the leader has exited: its unreaped zombie still holds the
        group id, so the SIGKILL can only reach its own group.
        """
        if self.popen.returncode is None:
            try:
                os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                pass
            else:
                self.signal_group(signal.SIGKILL)
            self.popen.wait()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return read_tail(self.log_path, self.log_offset, lines)

    def exit_reason(self) -> str:
        """How the leader ended (reaps it if it has exited)."""
        if not self.alive():
            self.finish()
        code = self.popen.returncode
        if code is None:
            return "still running"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def log_mentions(self, markers: Sequence[str]) -> bool:
        """Whether this run's log tail contains one of `markers` (case-insensitive)."""
        tail = self.log_tail(200).lower()
        return any(marker in tail for marker in markers)

    def looks_like_port_race(self) -> bool:
        return self.log_mentions(PORT_RACE_MARKERS)

    def signal_group(self, sig: int) -> None:
        """Send `sig` to the child's whole process group (quietly if it is gone)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
    stop_signal: int = signal.SIGTERM,
    pass_fds: Sequence[int] = (),
) -> Child:
    """Start `argv` in a new session, stdout and stderr appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:  # the child gets its own copy of the fd
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        log_file.write(f"--- {stamp} starting {name}: {' '.join(argv)}\n".encode())
        log_file.flush()
        offset = log_file.tell()
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            # Switching user drops root's supplementary groups as well.
            user=user,
            group=pwd.getpwnam(user).pw_gid if user is not None else None,
            extra_groups=[] if user is not None else None,
            pass_fds=tuple(pass_fds),
        )
    child = Child(name, popen, log_path, offset, stop_signal)
    child.identity = process_identity(popen.pid)
    return child


def stop_children(children: Sequence[Child], timeout: float = 10.0) -> None:
    """Signal every child's group with its stop signal, wait, then SIGKILL the rest.

    Whatever is left of a group once its leader has exited is SIGKILLed too, so that
    no grandchild outlives the stop.
    """
    for child in children:
        if child.alive():
            child.signal_group(child.stop_signal)
    deadline = time.monotonic() + timeout
    for child in children:
        if not child.wait_exit(max(0.0, deadline - time.monotonic())):
            child.signal_group(signal.SIGKILL)
            child.wait_exit(None)
        child.finish()


# ------------------------------------------------------------- crash cleanup


def process_identity(pid: int) -> str | None:
    """pid plus its start time since boot (pids get recycled); None if it is gone."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:  # no procfs (macOS): psutil's wall-clock start time
        import psutil

        try:
            return f"{pid}@{psutil.Process(pid).create_time():.0f}"
        except psutil.Error:
            return None
    # Field 22 (starttime); field 2 (comm) may hold spaces, so split after its ")".
    return f"{pid}@{stat_line.rpartition(')')[2].split()[19]}"


def write_records(path: Path, children: Sequence[Child]) -> None:
    """Record the running `children` (pid, start time, stop signal) in `path`.

    With none running, remove it.
    """
    records = [
        {"name": c.name, "pid": c.pid, "started": c.identity, "signal": int(c.stop_signal)}
        for c in children
        if c.identity is not None and c.alive()
    ]
    if not records:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(records))
    os.replace(tmp, path)


def kill_recorded(path: Path, grace: float = 5.0) -> list[str]:
    """Stop the process groups recorded in `path` that still run, then remove it.

    Each gets its stop signal, then SIGKILL after `grace` seconds. A record counts
    only while its pid has the recorded start time. Returns the names stopped.
    """
    try:
        records = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return []
    victims: list[tuple[str, int]] = []
    for record in records:
        try:
            pid, name = int(record["pid"]), str(record["name"])
            if process_identity(pid) != record["started"]:
                continue
            os.killpg(pid, int(record.get("signal", signal.SIGTERM)))  # a session leader
            victims.append((name, pid))
        except (KeyError, TypeError, ValueError, ProcessLookupError, PermissionError):
            continue
    deadline = time.monotonic() + grace
    for _, pid in victims:
        ident = process_identity(pid)
        while ident is not None and time.monotonic() < deadline:
            if _is_zombie(pid):
                break
            time.sleep(0.05)
            ident = process_identity(pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return [name for name, _ in victims]


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return False


class Reaper:
    """A watchdog process that stops our children if we die without stopping them.

    It blocks reading a pipe whose only write end we hold: when we exit in any way
    (SIGKILL, os._exit, a runner's timeout), the read returns EOF and it stops the
    groups recorded in `state_file` (see write_records). close() removes the file
    first, so after a normal stop it just exits.
    """

    def __init__(self, state_file: Path, log_path: Path) -> None:
        self.state_file = state_file
        read_end, self._write_end = os.pipe()  # both ends close on exec
        try:
            self._child = spawn(
                "reaper",
                [sys.executable, "-m", "billing_local._reaper", str(read_end), str(state_file)],
                log_path=log_path,
                env={**os.environ, "PYTHONPATH": package_pythonpath()},
                pass_fds=(read_end,),
            )
        except BaseException:
            os.close(self._write_end)
            raise
        finally:
            os.close(read_end)

    @property
    def pid(self) -> int:
        return self._child.pid

    def close(self) -> None:
        """Forget the records and let the watchdog exit (idempotent)."""
        if self._write_end < 0:
            return
        self.state_file.unlink(missing_ok=True)
        os.close(self._write_end)
        self._write_end = -1
        if not self._child.wait_exit(5.0):
            self._child.signal_group(signal.SIGKILL)
        self._child.finish()


def package_pythonpath() -> str:
    root = str(Path(__file__).resolve().parent.parent)
    current = os.environ.get("PYTHONPATH", "")
    return os.pathsep.join(p for p in (root, current) if p)
