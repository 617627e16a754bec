"""Topics the gateway produces: usage events, straight from `POST /v1/events` to Kafka."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, Field

from billing_common.events import EventData, Topic
from billing_common.usage_events import UsageEvent

MAX_EVENTS_PER_REQUEST = 1000


class UsageEventsReceived(EventData):
    """Accepted usage events of one request for one customer reference (the message key).

    `customer` of each event is as the client sent it: our id (`cus_...`) or the
    customer's external id; metering resolves it. Numbers in `properties` are
    written exactly as received (never through a float).
    """

    events: list[UsageEvent] = Field(min_length=1, max_length=MAX_EVENTS_PER_REQUEST)
    received_at: AwareDatetime


USAGE_EVENTS_RECEIVED = Topic(
    "gateway",
    "usage_events_received",
    UsageEventsReceived,
    "Usage events a client sent, validated and accepted (202), keyed by customer reference.",
)

PRODUCES: tuple[Topic[Any], ...] = (USAGE_EVENTS_RECEIVED,)
