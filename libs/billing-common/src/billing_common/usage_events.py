"""A usage event as clients send it: the contract between the gateway and metering.

The gateway validates events with this model before it answers `202`, and
metering reads the same model from Kafka, so an event the gateway accepted is
one metering can store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from billing_common.errors import InvalidEvent

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
