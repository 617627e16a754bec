"""A usage event as clients send it: the contract between the gateway and metering.

The gateway validates events with this model before it answers `202`, and
metering reads the same model from Kafka, so an event the gateway accepted is
one metering can store.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from billing_common import exact_json
from billing_common.errors import InvalidEvent
from billing_common.events import EventData, Topic

#: Event timestamps the usage store can hold: from the Unix epoch to the end of 2099 (UTC).
EARLIEST_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIMESTAMP = datetime(2100, 1, 1, tzinfo=UTC)


class InvalidEventTimestamp(InvalidEvent):
    code = "invalid_event_timestamp"
    title = "Invalid event timestamp"


class UsageEvent(BaseModel):
    """One usage event as a client sends it. `id` is the client's idempotency key:
    two events with the same `customer` and `id` are the same event.

    The timestamp is kept in UTC at millisecond precision (the store's
    `DateTime64(3)`); finer digits are dropped, not rounded.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(min_length=1, max_length=255)]
    customer: Annotated[str, Field(min_length=1, max_length=255)]
    type: Annotated[str, Field(min_length=1, max_length=128)]
    timestamp: AwareDatetime
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("timestamp")
    @classmethod
    def _utc_milliseconds(cls, timestamp: datetime) -> datetime:
        utc = timestamp.astimezone(UTC)
        utc = utc.replace(microsecond=utc.microsecond - utc.microsecond % 1000)
        if not EARLIEST_TIMESTAMP <= utc < LATEST_TIMESTAMP:
            raise InvalidEventTimestamp(
                f"event timestamp {timestamp.isoformat()} is outside "
                f"{EARLIEST_TIMESTAMP.year}..{LATEST_TIMESTAMP.year - 1}",
                timestamp=timestamp.isoformat(),
            )
        return utc


MAX_EVENTS_PER_MESSAGE = 1000


class UsageEventsReceived(EventData):
    """Usage events of one customer reference, as one Kafka message (the key is the reference).

    `customer` of each event is as the client sent it: our id (`cus_...`) or the
    customer's external id; metering resolves it. Numbers in `properties` are
    written exactly as received, never through a float: encode with
    `encode_usage_events`, not with pydantic's JSON (which writes a Decimal as a
    string).
    """

    events: list[UsageEvent] = Field(min_length=1, max_length=MAX_EVENTS_PER_MESSAGE)
    received_at: AwareDatetime


def encode_usage_events(
    topic: Topic[UsageEventsReceived],
    events: Sequence[UsageEvent],
    *,
    event_id: uuid.UUID,
    source: str,
    subject: str,
    tenant_id: str,
    time: datetime,
    received_at: datetime,
    traceparent: str | None = None,
) -> bytes:
    """The CloudEvents envelope of `events` on `topic`, with every number exact
    (`topic.parse` reads it back equal)."""
    envelope: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(event_id),
        "type": topic.name,
        "source": source,
        "time": time.astimezone(UTC).isoformat(),
        "subject": subject,
        "tenantid": tenant_id,
        "traceparent": traceparent,
        "datacontenttype": "application/json",
        "data": {
            "events": [usage_event_json(event) for event in events],
            "received_at": received_at.astimezone(UTC).isoformat(),
        },
    }
    return exact_json.dumps(envelope)


def usage_event_json(event: UsageEvent) -> dict[str, Any]:
    """`event` as a JSON object for `exact_json.dumps` (numbers stay Decimals)."""
    return {
        "id": event.id,
        "customer": event.customer,
        "type": event.type,
        "timestamp": event.timestamp.isoformat(),
        "properties": event.properties,
    }


USAGE_EVENTS_RECEIVED = Topic(
    "gateway",
    "usage_events_received",
    UsageEventsReceived,
    "Usage events a client sent, validated and accepted (202), keyed by customer reference.",
)
"""The gateway produces it (`POST /v1/events`); metering reads it."""
