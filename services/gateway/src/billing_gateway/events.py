"""Topics the gateway produces: usage events, straight from `POST /v1/events` to Kafka.

The topic is declared in billing-common (`usage_events`), beside the event model,
because metering reads it too.
"""

from __future__ import annotations

from typing import Any

from billing_common.events import Topic
from billing_common.usage_events import (
    MAX_EVENTS_PER_MESSAGE,
    USAGE_EVENTS_RECEIVED,
    UsageEventsReceived,
)

MAX_EVENTS_PER_REQUEST = MAX_EVENTS_PER_MESSAGE

PRODUCES: tuple[Topic[Any], ...] = (USAGE_EVENTS_RECEIVED,)

__all__ = [
    "MAX_EVENTS_PER_REQUEST",
    "PRODUCES",
    "USAGE_EVENTS_RECEIVED",
    "UsageEventsReceived",
]
