"""The watchdog process of billing_local._proc.Reaper.

Usage: python -m billing_local._reaper <read-fd> <state-file>

Blocks until the pipe's write end is closed (its owner stopped or died), then
stops whatever process groups the state file still records.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from billing_local._proc import kill_recorded


def main(argv: list[str]) -> int:
    fd, state_file = int(argv[0]), Path(argv[1])
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    while os.read(fd, 4096):
        pass
    stopped = kill_recorded(state_file)
    if stopped:
        print(f"reaper: owner gone, stopped {', '.join(stopped)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
