"""Topics the rating service produces (none yet) and consumes.

Rating keeps its own projection of the catalog from pricing's events: each published
plan version whole, and each customer's price overrides (see `service`).
"""

from __future__ import annotations

from typing import Any

from billing_common.events import Topic
from billing_pricing.events import PLAN_PUBLISHED, PRICE_OVERRIDE_SET

PRODUCES: tuple[Topic[Any], ...] = ()

#: The catalog rating projects, to rebuild any plan version's price sheet.
CONSUMES: tuple[Topic[Any], ...] = (PLAN_PUBLISHED, PRICE_OVERRIDE_SET)
