from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from billing_common.faults import crash_point

SCRIPT = """
from billing_common.faults import crash_point
for i in range(5):
    crash_point("x.point")
    print(i, flush=True)
"""


def run(env_value: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "BILLING_CRASH_AT"}
    if env_value is not None:
        env["BILLING_CRASH_AT"] = env_value
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=False
    )


def test_unset_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BILLING_CRASH_AT", raising=False)
    crash_point("x.point")  # still alive
    result = run(None)
    assert result.returncode == 0
    assert result.stdout.split() == ["0", "1", "2", "3", "4"]


def test_dies_by_sigkill_at_the_named_point_on_the_nth_pass() -> None:
    result = run("x.point:3")
    assert result.returncode == -signal.SIGKILL
    assert result.stdout.split() == ["0", "1"]


def test_other_points_are_ignored() -> None:
    assert run("y.point").returncode == 0
