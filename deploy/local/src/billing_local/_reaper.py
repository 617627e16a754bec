"""The watchdog process of billing_local._proc.Reaper.

Usage: python -m billing_local._reaper <read-fd> <state-file>

Blocks until the pipe's write end is closed (its owner stopped or died), then
stops whatever process groups the state file still records. Terminated itself
(SIGTERM, e.g. a `pkill` that swept up the owner's whole tree), it stops them
first: a watchdog that dies silently would leave the servers running for good.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType

from billing_local._proc import kill_recorded


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str]) -> int:
    fd, state_file = int(argv[0]), Path(argv[1])
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminated)
    print(f"reaper: watching {state_file}", flush=True)
    try:
        while os.read(fd, 4096):
            pass
    finally:
        # After a normal stop the owner removed the state file: nothing is stopped.
        stopped = kill_recorded(state_file)
        if stopped:
            print(f"reaper: stopped {', '.join(stopped)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
