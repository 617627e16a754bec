"""Topics the notifications service produces (none yet)."""

from __future__ import annotations

from typing import Any

from billing_common.events import Topic

PRODUCES: tuple[Topic[Any], ...] = ()
