"""Usage ingestion, the pure part: `POST /v1/events` bodies in, Kafka messages out (no I/O).

A body is one event or a batch of up to `MAX_EVENTS_PER_REQUEST`, in one of three
content types:

- `application/json`: one native event (an object) or an array of them;
- `application/cloudevents+json`: one CloudEvent 1.0 (structured mode);
- `application/cloudevents-batch+json`: an array of CloudEvents.

A native event is `{"id", "customer", "type", "timestamp"?, "properties"?}`. A
CloudEvent maps onto it: `id`→`id`, `subject`→`customer`, `type`→`type`,
`time`→`timestamp`, `data`→`properties`; `specversion` must be "1.0", `source` is
required (and not kept), `datacontenttype` if present must be `application/json`;
`dataschema`, `traceparent` and `tracestate` are accepted and not kept.

Each event is checked on its own and validated with `UsageEvent`, the model
metering reads, so an accepted event is a storable one. A rejected event gets an
`EventReject` (its index, a code of `REJECT_CODES`, a message) and never spoils
the others. The limits an event must meet:

- `id`, `customer`: text of 1 to 255 characters; `type`: `EVENT_TYPE` (the rule of
  metering's meters); no text anywhere may hold U+0000 or a lone surrogate;
- `timestamp`: RFC 3339 with an offset, from `MAX_PAST` (35 days) before the
  request to `MAX_FUTURE` (5 minutes) after it, both bounds included; absent (or
  null) means the time the request was received, written out explicitly;
- `properties`: a JSON object (absent or null: `{}`) of at most
  `MAX_PROPERTIES_BYTES` (32 KiB) as compact JSON with non-ASCII escaped, nested at
  most `MAX_PROPERTIES_DEPTH` (16) levels deep (the object itself is level 1).

Numbers stay exact: the body is read with `parse_float=Decimal` and written with
`billing_common.exact_json`, so `0.1` stays `0.1` and `1E+2` stays `1E+2`.

Accepted events are grouped by `customer` as sent (our `cus_...` id or the
customer's external id); each group is one message on `USAGE_EVENTS_RECEIVED`
keyed by that string (a group whose message would pass `MAX_MESSAGE_BYTES` is
split in order into several).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, get_args
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from billing_common import exact_json
from billing_common.errors import (
    InvalidEvent,
    MalformedBody,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from billing_common.ids import uuid7
from billing_common.usage_events import UsageEvent, encode_usage_events
from billing_gateway.events import MAX_EVENTS_PER_REQUEST, USAGE_EVENTS_RECEIVED

EVENTS_PATH = "/v1/events"
SOURCE = "gateway"

JSON = "application/json"
CLOUDEVENT = "application/cloudevents+json"
CLOUDEVENT_BATCH = "application/cloudevents-batch+json"
EventFormat = Literal["native", "cloudevent", "cloudevent_batch"]
_FORMATS: dict[str, EventFormat] = {
    JSON: "native",
    CLOUDEVENT: "cloudevent",
    CLOUDEVENT_BATCH: "cloudevent_batch",
}

#: How far back an event's timestamp may be (inclusive): late events still land in an open period.
MAX_PAST = timedelta(days=35)
#: How far ahead an event's timestamp may be (inclusive): clock skew, not future usage.
MAX_FUTURE = timedelta(minutes=5)
#: Serialized size limit of `properties` (compact JSON, non-ASCII escaped).
MAX_PROPERTIES_BYTES = 32 * 1024
#: Nesting limit of `properties`: the object itself is level 1.
MAX_PROPERTIES_DEPTH = 16
#: Largest message value written to Kafka (below the broker's 1 MiB default).
MAX_MESSAGE_BYTES = 900 * 1024
#: Longest `id` and `customer` (as `UsageEvent`).
MAX_TEXT_LENGTH = 255
#: The event type rule of metering's meters.
EVENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)

RejectCode = Literal[
    "invalid_event",
    "missing_field",
    "unknown_field",
    "invalid_field",
    "invalid_specversion",
    "invalid_timestamp",
    "timestamp_too_old",
    "timestamp_in_future",
    "properties_too_large",
    "properties_too_deep",
]
REJECT_CODES: tuple[RejectCode, ...] = get_args(RejectCode)

NATIVE_FIELDS = ("id", "customer", "type", "timestamp", "properties")
NATIVE_REQUIRED = ("id", "customer", "type")
CLOUDEVENT_FIELDS = (
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
    "data",
    "traceparent",
    "tracestate",
)
CLOUDEVENT_REQUIRED = ("specversion", "id", "source", "type", "subject")


# -- whole-request errors (problem+json) ----------------------------------------------------


class TooManyEvents(PayloadTooLarge):
    """413: more events than one request may carry."""

    code = "too_many_events"
    title = "Too many events"


class EmptyBatch(ValidationFailed):
    code = "empty_batch"
    title = "Empty batch"


class InvalidBatch(ValidationFailed):
    """The body is JSON but not what its content type carries (an object, an array)."""

    code = "invalid_batch"
    title = "Invalid batch"


class EventsRejected(ValidationFailed):
    """422: not one event of the request was accepted; `rejected` says why for each."""

    code = "events_rejected"
    title = "Every event was rejected"

    def __init__(self, rejected: Sequence[EventReject]) -> None:
        first = rejected[0]
        more = f" (and {len(rejected) - 1} more)" if len(rejected) > 1 else ""
        super().__init__(
            f"no event was accepted; event {first.index}: {first.message}{more}",
            rejected=[reject.model_dump() for reject in rejected],
        )


# -- the wire: what clients send, what they get ---------------------------------------------


class EventReject(BaseModel):
    """Why one event of the request was not accepted."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0, description="Position of the event in the request (0 for one)")
    code: RejectCode = Field(description="A stable machine code")
    message: str = Field(description="What is wrong with the event, naming the field or bound")


class UsageEventsAccepted(BaseModel):
    """`202`: the accepted events are on their way to metering (acknowledged by Kafka)."""

    accepted: int = Field(ge=1, description="How many events were accepted")
    rejected: list[EventReject] = Field(description="The events that were not, in order")


class UsageEventInput(BaseModel):
    """A usage event (`application/json`). `customer` and `id` identify it: a resend is
    counted once."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        min_length=1,
        max_length=MAX_TEXT_LENGTH,
        description="Your unique id of this event: its idempotency key, per customer",
    )
    customer: str = Field(
        min_length=1,
        max_length=MAX_TEXT_LENGTH,
        description="Our customer id (`cus_...`) or your external id of the customer",
    )
    type: str = Field(
        pattern=EVENT_TYPE.pattern, description="What happened, e.g. `api.call`; meters match it"
    )
    timestamp: AwareDatetime | None = Field(
        default=None,
        description="RFC 3339 with an offset, from 35 days ago to 5 minutes ahead; "
        "default: when the request is received",
    )
    properties: dict[str, Any] = Field(
        default_factory=dict,
        description="Any JSON object, up to 32 KiB and 16 levels deep; numbers are kept exactly",
    )


class CloudEventInput(BaseModel):
    """A usage event as a CloudEvent 1.0 (`application/cloudevents+json`, structured mode)."""

    model_config = ConfigDict(extra="forbid")

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=MAX_TEXT_LENGTH, description="The event id")
    source: str = Field(min_length=1, description="Required by CloudEvents; not stored")
    type: str = Field(pattern=EVENT_TYPE.pattern, description="The event type")
    subject: str = Field(
        min_length=1,
        max_length=MAX_TEXT_LENGTH,
        description="The customer: our id (`cus_...`) or your external id",
    )
    time: AwareDatetime | None = Field(default=None, description="The event timestamp")
    datacontenttype: Literal["application/json"] | None = None
    dataschema: str | None = Field(default=None, description="Accepted, not stored")
    data: dict[str, Any] | None = Field(default=None, description="The event properties")
    traceparent: str | None = Field(default=None, description="Accepted, not stored")
    tracestate: str | None = Field(default=None, description="Accepted, not stored")


@dataclass(frozen=True)
class ParsedBatch:
    """The events of one request: those accepted, in order, and a reject for each other."""

    accepted: list[UsageEvent]
    rejected: list[EventReject]


@dataclass(frozen=True)
class OutgoingMessage:
    """One Kafka record to send."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


# -- parsing --------------------------------------------------------------------------------


class _Rejected(Exception):
    def __init__(self, code: RejectCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def event_format(content_type: str | None) -> EventFormat:
    """Which kind of body a `Content-Type` announces (absent: `application/json`); 415 else."""
    media_type = (content_type or JSON).split(";", 1)[0].strip().lower()
    form = _FORMATS.get(media_type)
    if form is None:
        raise UnsupportedMediaType(
            f"expected {JSON}, {CLOUDEVENT} or {CLOUDEVENT_BATCH}, got {media_type!r}"
        )
    return form


def parse_usage_events(body: bytes, content_type: str | None, now: datetime) -> ParsedBatch:
    """Every event of a `POST /v1/events` body, accepted or rejected, received at `now`.

    Whole-request problems: 415 `unsupported_media_type`, 400 `malformed_body` (not
    JSON), 422 `invalid_batch` (an array where one CloudEvent goes, or the reverse),
    422 `empty_batch`, 413 `too_many_events` (over `MAX_EVENTS_PER_REQUEST`).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    form = event_format(content_type)
    document = _load_json(body)
    items: list[Any]
    if form == "cloudevent":
        if not isinstance(document, dict):
            raise InvalidBatch(
                f"{CLOUDEVENT} carries one CloudEvent object; send an array as {CLOUDEVENT_BATCH}"
            )
        items = [document]
    elif form == "cloudevent_batch":
        if not isinstance(document, list):
            raise InvalidBatch(f"{CLOUDEVENT_BATCH} carries an array of CloudEvents")
        items = document
    elif isinstance(document, dict):
        items = [document]
    elif isinstance(document, list):
        items = document
    else:
        raise InvalidBatch("expected an event object or an array of events")
    if not items:
        raise EmptyBatch("the batch holds no event; send 1 to 1000 events")
    if len(items) > MAX_EVENTS_PER_REQUEST:
        raise TooManyEvents(
            f"the batch holds {len(items)} events; at most {MAX_EVENTS_PER_REQUEST} "
            "per request, send the rest in another",
            max_events=MAX_EVENTS_PER_REQUEST,
        )
    read = _read_cloudevent if form != "native" else _read_native
    accepted: list[UsageEvent] = []
    rejected: list[EventReject] = []
    for index, item in enumerate(items):
        try:
            accepted.append(read(item, now))
        except _Rejected as reject:
            rejected.append(EventReject(index=index, code=reject.code, message=reject.message))
    return ParsedBatch(accepted, rejected)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _load_json(body: bytes) -> Any:
    if not body.strip():
        raise MalformedBody("request body is empty; expected JSON")
    try:
        return json.loads(body, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # also bad UTF-8, huge ints, deep nesting
        raise MalformedBody(f"request body is not valid JSON: {exc}"[:300]) from exc


def _read_native(item: Any, now: datetime) -> UsageEvent:
    fields = _object_with_fields(item, NATIVE_FIELDS, NATIVE_REQUIRED)
    return _usage_event(
        fields,
        now,
        names={
            "id": "id",
            "customer": "customer",
            "type": "type",
            "timestamp": "timestamp",
            "properties": "properties",
        },
    )


def _read_cloudevent(item: Any, now: datetime) -> UsageEvent:
    if isinstance(item, dict) and "specversion" in item and item["specversion"] != "1.0":
        raise _Rejected(
            "invalid_specversion",
            f'specversion must be "1.0", got {_shown(item["specversion"])}',
        )
    fields = _object_with_fields(item, CLOUDEVENT_FIELDS, CLOUDEVENT_REQUIRED)
    _text(fields, "source", max_length=None)
    for optional in ("dataschema", "traceparent", "tracestate"):
        if fields.get(optional) is not None:
            _text(fields, optional, max_length=None)
    content_type = fields.get("datacontenttype")
    if content_type is not None and content_type != JSON:
        raise _Rejected(
            "invalid_field", f"datacontenttype must be {JSON}, got {_shown(content_type)}"
        )
    native = {
        "id": fields["id"],
        "customer": fields["subject"],
        "type": fields["type"],
        "timestamp": fields.get("time"),
        "properties": fields.get("data"),
    }
    return _usage_event(
        native,
        now,
        names={
            "id": "id",
            "customer": "subject",
            "type": "type",
            "timestamp": "time",
            "properties": "data",
        },
    )


def _object_with_fields(
    item: Any, allowed: Sequence[str], required: Sequence[str]
) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise _Rejected("invalid_event", f"an event is a JSON object, got {_json_type(item)}")
    unknown = [name for name in item if name not in allowed]
    if unknown:
        listed = ", ".join(repr(name[:64]) for name in unknown[:5])
        raise _Rejected(
            "unknown_field",
            f"unknown field{'s' if len(unknown) > 1 else ''} {listed}; "
            f"allowed: {', '.join(allowed)}",
        )
    missing = [name for name in required if name not in item]
    if missing:
        raise _Rejected(
            "missing_field",
            f"missing required field{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
        )
    return item


def _usage_event(fields: Mapping[str, Any], now: datetime, names: Mapping[str, str]) -> UsageEvent:
    """The `UsageEvent` of native fields; `names` are the fields as the client called them."""
    event_id = _text(fields, "id", name=names["id"])
    customer = _text(fields, "customer", name=names["customer"])
    event_type = _text(fields, "type", name=names["type"])
    if not EVENT_TYPE.fullmatch(event_type):
        raise _Rejected(
            "invalid_field",
            f"{names['type']} {_shown(event_type)} must be 1 to 128 letters, digits or "
            "_ . : / - starting with a letter or digit",
        )
    timestamp = _timestamp(fields.get("timestamp"), now, names["timestamp"])
    properties = _properties(fields.get("properties"), names["properties"])
    try:
        return UsageEvent(
            id=event_id,
            customer=customer,
            type=event_type,
            timestamp=timestamp,
            properties=properties,
        )
    except InvalidEvent as exc:  # the store's range: the window above keeps well inside it
        raise _Rejected("invalid_timestamp", exc.detail) from exc
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        location = ".".join(str(part) for part in error["loc"]) or "event"
        raise _Rejected("invalid_event", f"{location}: {error['msg']}") from exc


def _text(
    fields: Mapping[str, Any],
    key: str,
    *,
    name: str | None = None,
    max_length: int | None = MAX_TEXT_LENGTH,
) -> str:
    name = name or key
    value = fields[key]
    if not isinstance(value, str):
        raise _Rejected("invalid_field", f"{name} must be a string, got {_json_type(value)}")
    if not value:
        raise _Rejected("invalid_field", f"{name} must not be empty")
    if max_length is not None and len(value) > max_length:
        raise _Rejected(
            "invalid_field", f"{name} is {len(value)} characters long; at most {max_length}"
        )
    problem = _text_problem(value)
    if problem:
        raise _Rejected("invalid_field", f"{name} {problem}")
    return value


def _text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text (NUL, lone surrogate), or None."""
    if "\x00" in value:
        return "must not contain NUL characters (U+0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must not contain lone surrogates (it is not valid Unicode text)"
    return None


def _timestamp(value: Any, now: datetime, name: str) -> datetime:
    if value is None:
        return now
    if not isinstance(value, str):
        raise _Rejected(
            "invalid_timestamp",
            f"{name} must be an RFC 3339 string such as 2025-03-01T12:00:00Z, "
            f"got {_json_type(value)}",
        )
    if not _RFC3339.fullmatch(value):
        raise _Rejected(
            "invalid_timestamp",
            f"{name} {_shown(value)} is not RFC 3339 with an offset "
            "(e.g. 2025-03-01T12:00:00Z or 2025-03-01T13:00:00.250+01:00)",
        )
    try:
        parsed = datetime.fromisoformat(value[:10] + "T" + value[11:].upper())
    except ValueError as exc:
        message = f"{name} {_shown(value)} is not a valid time: {exc}"
        raise _Rejected("invalid_timestamp", message) from exc
    earliest, latest = now - MAX_PAST, now + MAX_FUTURE
    if parsed < earliest:
        raise _Rejected(
            "timestamp_too_old",
            f"{name} {value} is more than 35 days old; the earliest accepted now is "
            f"{_iso(earliest)}",
        )
    if parsed > latest:
        raise _Rejected(
            "timestamp_in_future",
            f"{name} {value} is more than 5 minutes in the future; the latest accepted now is "
            f"{_iso(latest)}",
        )
    return parsed


def _properties(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Rejected("invalid_field", f"{name} must be a JSON object, got {_json_type(value)}")
    stack: list[tuple[Any, int, str]] = [(value, 1, name)]
    # An upper bound of the size as JSON, so that the exact size (a second serialisation)
    # is measured only when the bound is over the limit: a character escapes to at most
    # 6, a number gains at most "E0", punctuation is at most 4 per member.
    bound = 2
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, dict):
            if depth > MAX_PROPERTIES_DEPTH:
                raise _too_deep(name, path)
            bound += 2
            for key, item in node.items():
                problem = _text_problem(key)
                if problem:
                    raise _Rejected("invalid_field", f"a key in {path} {problem}")
                bound += 6 * len(key) + 4
                stack.append((item, depth + 1, f"{path}.{key[:64]}"))
        elif isinstance(node, list):
            if depth > MAX_PROPERTIES_DEPTH:
                raise _too_deep(name, path)
            bound += 2 + len(node)
            stack.extend((item, depth + 1, f"{path}[{i}]") for i, item in enumerate(node))
        elif isinstance(node, str):
            problem = _text_problem(node)
            if problem:
                raise _Rejected("invalid_field", f"{path} {problem}")
            bound += 6 * len(node) + 2
        else:
            bound += len(str(node)) + 2
    if bound <= MAX_PROPERTIES_BYTES:
        return value
    size = len(exact_json.dumps(value))
    if size > MAX_PROPERTIES_BYTES:
        raise _Rejected(
            "properties_too_large",
            f"{name} is {size} bytes as JSON; at most {MAX_PROPERTIES_BYTES} (32 KiB)",
        )
    return value


def _too_deep(name: str, path: str) -> _Rejected:
    return _Rejected(
        "properties_too_deep",
        f"{name} is nested more than {MAX_PROPERTIES_DEPTH} levels deep (at {path})",
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _shown(value: Any) -> str:
    """A short, safe rendering of a client's value for a message."""
    text = repr(value) if isinstance(value, str) else _json_type(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- publishing -----------------------------------------------------------------------------


def group_by_customer(events: Sequence[UsageEvent]) -> dict[str, list[UsageEvent]]:
    """The events per `customer` string as sent, groups and events in request order."""
    groups: dict[str, list[UsageEvent]] = {}
    for event in events:
        groups.setdefault(event.customer, []).append(event)
    return groups


def encode_message(
    customer: str,
    events: Sequence[UsageEvent],
    *,
    tenant_id: str,
    received_at: datetime,
    traceparent: str | None,
    event_id: UUID,
) -> bytes:
    """The CloudEvents envelope of one customer's events on `USAGE_EVENTS_RECEIVED`.

    Written with `exact_json`, so the numbers of `properties` keep their digits;
    `USAGE_EVENTS_RECEIVED.parse` reads it back. Every timestamp is written out.
    """
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    if not events:
        raise ValueError("a message carries at least one event")
    if any(event.customer != customer for event in events):
        raise ValueError(f"every event of the message must be of customer {customer!r}")
    return encode_usage_events(
        USAGE_EVENTS_RECEIVED,
        events,
        event_id=event_id,
        source=SOURCE,
        subject=customer,
        tenant_id=tenant_id,
        time=received_at,
        received_at=received_at,
        traceparent=traceparent,
    )


def messages_for(
    events: Sequence[UsageEvent],
    *,
    tenant_id: str,
    received_at: datetime,
    traceparent: str | None,
    new_id: Callable[[], UUID] = uuid7,
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> list[OutgoingMessage]:
    """The Kafka records of a request's accepted events: one per customer (split in order
    when one would be larger than `max_bytes`), keyed by the customer string."""
    headers = [
        ("ce_type", USAGE_EVENTS_RECEIVED.name.encode()),
        ("content-type", CLOUDEVENT.encode()),
    ]
    if traceparent:
        headers.append(("traceparent", traceparent.encode()))

    def encode(customer: str, chunk: Sequence[UsageEvent]) -> list[bytes]:
        value = encode_message(
            customer,
            chunk,
            tenant_id=tenant_id,
            received_at=received_at,
            traceparent=traceparent,
            event_id=new_id(),
        )
        if len(value) <= max_bytes or len(chunk) == 1:
            return [value]
        half = len(chunk) // 2
        return encode(customer, chunk[:half]) + encode(customer, chunk[half:])

    return [
        OutgoingMessage(USAGE_EVENTS_RECEIVED.name, customer.encode(), value, headers)
        for customer, group in group_by_customer(events).items()
        for value in encode(customer, group)
    ]
