"""Crash points for the crash tests: a process dies here as if killed with SIGKILL.

Set `BILLING_CRASH_AT=<point>` (or `<point>:<n>` to die on the n-th pass) in a
service's environment and it kills itself with SIGKILL when it reaches that
point, which makes the narrow windows the outbox and inbox must survive
(committed but not published; effect committed but offset not) reproducible.
Unset, a crash point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

OUTBOX_AFTER_PUBLISH = "outbox.after_publish"
"""The relay has published a batch and Kafka acknowledged it; the rows are not marked sent."""

CONSUMER_AFTER_COMMIT = "consumer.after_commit"
"""A consumer committed its effect and inbox row; the Kafka offset is not committed."""

_passes: Counter[str] = Counter()


def crash_point(name: str) -> None:
    target = os.environ.get("BILLING_CRASH_AT")
    if not target:
        return
    point, _, nth = target.partition(":")
    if point != name:
        return
    _passes[name] += 1
    if _passes[name] >= int(nth or "1"):
        os.kill(os.getpid(), signal.SIGKILL)
