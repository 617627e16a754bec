"""What the audit log records: every fact topic of every producing service.

A producer's topics join the audit log by being listed in `CONSUMES`; the contracts test
checks that no produced fact topic is missing.
"""

from __future__ import annotations

from typing import Any

from billing_common.events import Topic
from billing_customers.events import PRODUCES as CUSTOMERS_PRODUCES

CONSUMES: tuple[Topic[Any], ...] = (*CUSTOMERS_PRODUCES,)

PRODUCES: tuple[Topic[Any], ...] = ()
