"""Topics the gateway produces (none yet: usage ingestion will publish here)."""

from __future__ import annotations

from typing import Any

from billing_common.events import Topic

PRODUCES: tuple[Topic[Any], ...] = ()
