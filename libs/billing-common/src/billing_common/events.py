"""The event envelope (CloudEvents 1.0, structured JSON) and typed topics.

A `Topic` names `billing.<service>.<event>` and the pydantic model of its
`data`. Producers declare the topics they write in their `events.py`; the
contracts (`contracts/schemas`, `contracts/asyncapi.yaml`) are generated from
those declarations. The message key is the customer id (the envelope's
`subject`) so that one customer's events stay in order on one partition.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from billing_common.errors import InvalidEvent

_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")

DataT = TypeVar("DataT", bound=BaseModel)


def topic_name(service: str, event: str) -> str:
    """`billing.<service>.<event>` in snake case: `topic_name("spend-alerts", "limit_reached")`
    is `billing.spend_alerts.limit_reached`."""
    service_part = service.replace("-", "_")
    for part in (service_part, event):
        if not _SNAKE.match(part):
            raise ValueError(
                f"{part!r} is not snake_case: topic names are billing.<service>.<event>"
            )
    return f"billing.{service_part}.{event}"


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


class EventData(BaseModel):
    """Base of every event's `data`: strict about unknown fields, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Topic(Generic[DataT]):
    """One topic and the schema of its data. `kind` tells facts from commands."""

    service: str
    event: str
    data_model: type[DataT]
    description: str
    kind: Literal["fact", "command"] = "fact"
    name: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", topic_name(self.service, self.event))
        if self.kind == "command" and not self.event.endswith("_requested"):
            raise ValueError(f"command topic {self.name} must end in _requested")

    @property
    def dead_letter(self) -> str:
        return dead_letter_topic(self.name)

    def parse(self, payload: bytes) -> CloudEvent[DataT]:
        """Validate a message of this topic; `InvalidEvent` with the reason otherwise."""
        envelope = CloudEvent[Any].from_bytes(payload)
        if envelope.type != self.name:
            raise InvalidEvent(f"event type {envelope.type!r} does not belong on topic {self.name}")
        try:
            data = self.data_model.model_validate(envelope.data)
        except ValidationError as exc:
            raise InvalidEvent(
                f"data does not match the schema of {self.name}: {_summarize(exc)}"
            ) from exc
        return CloudEvent[DataT].model_construct(
            **{**envelope.__dict__, "data": data},
        )


class CloudEvent(BaseModel, Generic[DataT]):
    """CloudEvents 1.0 structured-mode envelope of every message on Kafka."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    specversion: Literal["1.0"] = "1.0"
    id: uuid.UUID = Field(description="UUIDv7 of this event; consumers dedupe on it")
    type: str = Field(description="the topic name, billing.<service>.<event>")
    source: str = Field(description="the producing service")
    time: AwareDatetime
    subject: str = Field(description="the customer id: also the message key")
    tenantid: str
    traceparent: str | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    data: DataT

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, payload: bytes) -> CloudEvent[Any]:
        try:
            # Numbers stay exact: a float in a payload would lose digits on the way in.
            raw = json.loads(payload, parse_float=Decimal)
        except (ValueError, RecursionError) as exc:  # also huge ints and deep nesting
            raise InvalidEvent(f"message is not JSON: {type(exc).__name__}: {exc}"[:500]) from exc
        if not isinstance(raw, dict):
            raise InvalidEvent("message is not a JSON object")
        try:
            return CloudEvent[Any].model_validate(raw)
        except ValidationError as exc:
            raise InvalidEvent(f"not a CloudEvents 1.0 envelope: {_summarize(exc)}") from exc


def new_event(
    topic: Topic[DataT],
    data: DataT,
    *,
    event_id: uuid.UUID,
    source: str,
    subject: str,
    tenant_id: str,
    time: datetime,
    traceparent: str | None = None,
) -> CloudEvent[DataT]:
    """An envelope for `data` on `topic`. Id and time are arguments: callers own the clock."""
    if time.tzinfo is None:
        raise ValueError("event time must be timezone-aware (UTC)")
    return CloudEvent[DataT](
        id=event_id,
        type=topic.name,
        source=source,
        time=time.astimezone(UTC),
        subject=subject,
        tenantid=tenant_id,
        traceparent=traceparent,
        data=data,
    )


def _summarize(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        location = ".".join(str(p) for p in error["loc"]) or "(root)"
        parts.append(f"{location}: {error['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
