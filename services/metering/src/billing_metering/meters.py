"""Meters and the usage events they read. Pure: no I/O, no clock.

A meter says which events count (`event_types` and `filters`), what of each
event counts (`value_property`, read with `extract_value`), how the values
combine (`aggregation`) and how usage splits into groups (`group_by`).
`measure(meter, event)` turns one event into the `MeteredEvent` the store
keeps: the meter is applied once, at ingestion, so changing a meter's filters
later changes what new events count and never rewrites history already
billed.

Property paths are dotted keys into the event's `properties`:
`"resource.region"` reads `{"resource": {"region": "eu"}}`.

Numbers are never floats. `json.loads` and pydantic's JSON parser turn
`1.5` into a float, so parse event bodies with `json.loads(body,
parse_float=Decimal)` and then `UsageEvent.model_validate`: here an `int`, a
`Decimal` or a numeric string is a number, and a `float` is refused with
`InvalidEventValue` wherever a meter reads it.

>>> meter = MeterDefinition(
...     key="api_calls", name="API calls", event_types=("api.request",),
...     aggregation="sum", value_property="usage.calls", group_by=("region",),
...     filters=[{"property": "status", "operator": "not_in", "values": ["500"]}],
... )
>>> event = UsageEvent(
...     id="e1", customer="cus_1", type="api.request", timestamp="2024-05-01T12:00:00Z",
...     properties={"usage": {"calls": "3"}, "region": "eu", "status": 200},
... )
>>> reading = measure(meter, event)
>>> reading.value, reading.group
(Decimal('3'), ('eu',))
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal, Inexact, InvalidOperation, Rounded
from enum import StrEnum
from fractions import Fraction
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from billing_common.errors import InvalidEvent, ValidationFailed
from billing_common.usage_events import (
    InvalidEventTimestamp,
    UsageEvent,
)

__all__ = [
    "MAX_FILTERS",
    "MAX_GROUP_BY",
    "MAX_VALUE_DIGITS",
    "VALUE_DECIMALS",
    "Aggregation",
    "CarryOverNotSupported",
    "FilterOperator",
    "InvalidEventTimestamp",
    "InvalidEventTypes",
    "InvalidEventValue",
    "InvalidGroupBy",
    "InvalidMeter",
    "InvalidMeterFilter",
    "InvalidMeterKey",
    "InvalidPropertyPath",
    "InvalidSetOperation",
    "MeterDefinition",
    "MeteredEvent",
    "MissingEventValue",
    "OperationPropertyNotAllowed",
    "PropertyFilter",
    "SetOperation",
    "UsageEvent",
    "ValuePropertyNotAllowed",
    "ValuePropertyRequired",
    "canonical_text",
    "extract_value",
    "group_values",
    "matches",
    "measure",
    "measure_all",
    "meters_by_key",
    "numeric_value",
]

#: The most `group_by` dimensions a meter may have.
MAX_GROUP_BY = 10
#: The most filters a meter may have.
MAX_FILTERS = 20
#: The most event types one meter may match.
MAX_EVENT_TYPES = 20
#: The most values an `in` / `not_in` filter may list.
MAX_FILTER_VALUES = 100
#: Decimals kept of an event's value: the store's `Decimal(38, 12)`.
VALUE_DECIMALS = 12
#: Digits an event's value may have before the point (below 10^26, as in `Decimal(38, 12)`).
MAX_VALUE_DIGITS = 26

_KEY = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_EVENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9_$-]{1,64}$")
_MAX_PATH_DEPTH = 8
#: Decimal arithmetic that never rounds: any rounding raises.
_EXACT = Context(prec=200, traps=[Inexact, Rounded, InvalidOperation])


# -- errors ---------------------------------------------------------------------------------


class InvalidMeter(ValidationFailed):
    """A meter definition that cannot be used; the subclasses say which rule it breaks."""

    code = "invalid_meter"
    title = "Invalid meter"


class InvalidMeterKey(InvalidMeter):
    code = "invalid_meter_key"
    title = "Invalid meter key"


class InvalidEventTypes(InvalidMeter):
    code = "invalid_event_types"
    title = "Invalid event types"


class InvalidPropertyPath(InvalidMeter):
    code = "invalid_property_path"
    title = "Invalid property path"


class ValuePropertyRequired(InvalidMeter):
    code = "value_property_required"
    title = "This aggregation needs a value property"


class ValuePropertyNotAllowed(InvalidMeter):
    code = "value_property_not_allowed"
    title = "A count meter has no value property"


class OperationPropertyNotAllowed(InvalidMeter):
    code = "operation_property_not_allowed"
    title = "Only unique_count meters take an operation property"


class CarryOverNotSupported(InvalidMeter):
    code = "carry_over_not_supported"
    title = "This meter cannot carry its level into the next period"


class InvalidMeterFilter(InvalidMeter):
    code = "invalid_meter_filter"
    title = "Invalid meter filter"


class InvalidGroupBy(InvalidMeter):
    code = "invalid_group_by"
    title = "Invalid group_by"


class InvalidEventValue(InvalidEvent):
    """A property a meter reads holds something it cannot use (a float, an object, ...)."""

    code = "invalid_event_value"
    title = "Invalid event value"


class MissingEventValue(InvalidEvent):
    code = "missing_event_value"
    title = "The event lacks the property its meter aggregates"


class InvalidSetOperation(InvalidEvent):
    code = "invalid_set_operation"
    title = "A set operation is 'add' or 'remove'"


# -- meter definitions ----------------------------------------------------------------------


class Aggregation(StrEnum):
    """How a meter combines the values of its events over a window."""

    COUNT = "count"
    """The number of events."""
    SUM = "sum"
    """The sum of the values."""
    MAX = "max"
    """The greatest value."""
    MIN = "min"
    """The smallest value."""
    UNIQUE_COUNT = "unique_count"
    """The number of distinct values; with an operation property, the size of a set of items."""
    LATEST = "latest"
    """The value of the last event (greatest timestamp, then greatest event id)."""
    WEIGHTED_SUM = "weighted_sum"
    """The time-weighted average level of a gauge (seats, storage) over the window."""


class FilterOperator(StrEnum):
    EQUALS = "equals"
    IN = "in"
    NOT_IN = "not_in"


class SetOperation(StrEnum):
    """What a `unique_count` event with an operation property does to its item."""

    ADD = "add"
    REMOVE = "remove"


def _check_path(path: str, what: str) -> str:
    segments = path.split(".")
    if (
        not path
        or len(path) > 200
        or len(segments) > _MAX_PATH_DEPTH
        or not all(_PATH_SEGMENT.fullmatch(segment) for segment in segments)
    ):
        raise InvalidPropertyPath(
            f"{what} {path!r} is not a property path: up to {_MAX_PATH_DEPTH} keys of "
            f"letters, digits, '_', '-' or '$', separated by '.' (like 'resource.region')",
            property=path,
        )
    return path


class PropertyFilter(BaseModel):
    """A condition on one property: `equals` one value, `in` or `not_in` a list of values.

    Values compare as text (`canonical_text`): the number `200` equals the
    filter value `"200"`, `true` equals `"true"`. An event without the
    property fails `equals` and `in` and passes `not_in`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    property: str
    operator: FilterOperator
    value: str | None = None
    values: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        _check_path(self.property, "filter property")
        if self.operator is FilterOperator.EQUALS:
            if self.value is None or self.values is not None:
                raise InvalidMeterFilter(
                    f"filter on {self.property!r}: 'equals' takes one 'value' and no 'values'",
                    property=self.property,
                )
        else:
            if self.value is not None or not self.values:
                raise InvalidMeterFilter(
                    f"filter on {self.property!r}: '{self.operator}' takes a non-empty "
                    f"'values' list and no 'value'",
                    property=self.property,
                )
            if len(self.values) > MAX_FILTER_VALUES:
                raise InvalidMeterFilter(
                    f"filter on {self.property!r} lists {len(self.values)} values; "
                    f"at most {MAX_FILTER_VALUES}",
                    property=self.property,
                )
            if len(set(self.values)) != len(self.values):
                raise InvalidMeterFilter(
                    f"filter on {self.property!r} lists a value twice", property=self.property
                )
        return self

    def accepts(self, properties: Mapping[str, Any]) -> bool:
        """Whether an event with these properties passes this filter."""
        text = canonical_text(extract_value(properties, self.property))
        if self.operator is FilterOperator.EQUALS:
            return text is not None and text == self.value
        assert self.values is not None  # checked by the validator
        if self.operator is FilterOperator.IN:
            return text is not None and text in self.values
        return text is None or text not in self.values


def _nonblank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


class MeterDefinition(BaseModel):
    """What a meter counts and how. Every rule broken raises its own `InvalidMeter` subclass.

    - `key`: `^[a-z][a-z0-9_]{0,62}$`, stable: usage is stored under it.
    - `event_types`: the event `type`s it reads (1 to 20, distinct).
    - `value_property`: the property aggregated; required for all but `count`,
      which must not have one. For `unique_count` it names the item counted.
    - `operation_property` (`unique_count` only): the property saying whether
      the event `add`s or `remove`s its item, for recurring sets (seats).
    - `filters`: all must pass for an event to count (at most 20).
    - `group_by`: property paths whose values split usage into groups
      (distinct, at most 10). An event without one is in the group `""`.
    - `carry_over`: the level at the end of a period is where the next one
      starts (recurring meters). Only `latest`, `weighted_sum` and
      `unique_count` with an operation property have a level to carry.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    name: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_nonblank)]
    event_types: tuple[str, ...]
    aggregation: Aggregation
    value_property: str | None = None
    operation_property: str | None = None
    filters: tuple[PropertyFilter, ...] = ()
    group_by: tuple[str, ...] = ()
    carry_over: bool = False

    @field_validator("key")
    @classmethod
    def _check_key(cls, key: str) -> str:
        if not _KEY.fullmatch(key):
            raise InvalidMeterKey(
                f"meter key {key!r} must be a lower-case letter then up to 62 lower-case "
                f"letters, digits or '_'",
                key=key,
            )
        return key

    @model_validator(mode="after")
    def _check(self) -> Self:
        self._check_event_types()
        self._check_properties()
        self._check_group_by()
        if len(self.filters) > MAX_FILTERS:
            raise InvalidMeterFilter(
                f"meter {self.key!r} has {len(self.filters)} filters; at most {MAX_FILTERS}"
            )
        if self.carry_over and not self.is_recurring_kind:
            raise CarryOverNotSupported(
                f"meter {self.key!r}: carry_over needs a level to carry: latest, weighted_sum, "
                f"or unique_count with an operation_property; not {self.aggregation}",
                key=self.key,
            )
        return self

    def _check_event_types(self) -> None:
        if not self.event_types or len(self.event_types) > MAX_EVENT_TYPES:
            raise InvalidEventTypes(
                f"meter {self.key!r} must match 1 to {MAX_EVENT_TYPES} event types",
                key=self.key,
            )
        if len(set(self.event_types)) != len(self.event_types):
            raise InvalidEventTypes(f"meter {self.key!r} lists an event type twice", key=self.key)
        for event_type in self.event_types:
            if not _EVENT_TYPE.fullmatch(event_type):
                raise InvalidEventTypes(
                    f"event type {event_type!r} must be 1 to 128 letters, digits or '_.:/-', "
                    f"starting with a letter or digit",
                    key=self.key,
                )

    def _check_properties(self) -> None:
        if self.aggregation is Aggregation.COUNT:
            if self.value_property is not None:
                raise ValuePropertyNotAllowed(
                    f"meter {self.key!r} counts events: it takes no value_property",
                    key=self.key,
                )
        elif self.value_property is None:
            raise ValuePropertyRequired(
                f"meter {self.key!r}: {self.aggregation} needs a value_property",
                key=self.key,
            )
        else:
            _check_path(self.value_property, "value_property")
        if self.operation_property is not None:
            if self.aggregation is not Aggregation.UNIQUE_COUNT:
                raise OperationPropertyNotAllowed(
                    f"meter {self.key!r}: only unique_count meters take an operation_property",
                    key=self.key,
                )
            _check_path(self.operation_property, "operation_property")

    def _check_group_by(self) -> None:
        if len(self.group_by) > MAX_GROUP_BY:
            raise InvalidGroupBy(
                f"meter {self.key!r} groups by {len(self.group_by)} dimensions; "
                f"at most {MAX_GROUP_BY}",
                key=self.key,
            )
        if len(set(self.group_by)) != len(self.group_by):
            raise InvalidGroupBy(f"meter {self.key!r} groups by a dimension twice", key=self.key)
        for dimension in self.group_by:
            _check_path(dimension, "group_by dimension")

    @property
    def tracks_set(self) -> bool:
        """Whether this is a `unique_count` of a set its events add to and remove from."""
        return self.aggregation is Aggregation.UNIQUE_COUNT and self.operation_property is not None

    @property
    def is_recurring_kind(self) -> bool:
        """Whether this meter has a level that may carry into the next period."""
        return self.aggregation in (Aggregation.LATEST, Aggregation.WEIGHTED_SUM) or self.tracks_set

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> MeterDefinition:
        """Validate `data` (a parsed JSON body): a rule broken raises its `InvalidMeter` subclass,
        a malformed field `InvalidMeter` with the pydantic `errors`."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            errors = [
                {"loc": list(error["loc"]), "type": error["type"], "msg": error["msg"]}
                for error in exc.errors(include_url=False, include_input=False)
            ]
            raise InvalidMeter(
                f"invalid meter: {exc.error_count()} error(s)", errors=errors
            ) from exc


# -- usage events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MeteredEvent:
    """One usage event as one meter reads it: the row the store keeps.

    `value` is the event's number (1 for `count`, 0 for `unique_count`);
    `item` the counted value of a `unique_count`; `operation` what a set
    event does to its item; `group` the values of the meter's `group_by`.
    """

    meter: str
    customer: str
    event_id: str
    timestamp: datetime
    group: tuple[str, ...] = ()
    value: Decimal = Decimal(0)
    item: str = ""
    operation: SetOperation | None = None

    @property
    def order_key(self) -> tuple[datetime, str]:
        """Events of one series happen in this order: by timestamp, then by event id."""
        return (self.timestamp, self.event_id)


Scalar = Decimal | str


def extract_value(properties: Mapping[str, Any], path: str) -> Scalar | None:
    """The scalar at `path` in `properties`: a `Decimal` for a number, a `str` for a string
    (`"true"` / `"false"` for a boolean), `None` when the path leads nowhere or to null.

    >>> extract_value({"a": {"b": 5}}, "a.b"), extract_value({"a": {"b": "x"}}, "a.c")
    (Decimal('5'), None)

    A float, an object or an array raises `InvalidEventValue`.
    """
    node: Any = properties
    for segment in path.split("."):
        if not isinstance(node, Mapping) or segment not in node:
            return None
        node = node[segment]
    if node is None:
        return None
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, int):
        return Decimal(node)
    if isinstance(node, Decimal):
        if not node.is_finite():
            raise InvalidEventValue(f"property {path!r} is {node}, not a finite number")
        return node
    if isinstance(node, str):
        return node
    if isinstance(node, float):
        raise InvalidEventValue(
            f"property {path!r} is a float; numbers must stay exact: parse the event with "
            f"json.loads(..., parse_float=Decimal) or send the number as a string",
            property=path,
        )
    raise InvalidEventValue(
        f"property {path!r} is a {type(node).__name__}, not a number or a string", property=path
    )


def canonical_text(value: Scalar | None) -> str | None:
    """A scalar as the text filters and groups compare: numbers without exponent or
    trailing zeros, so `5`, `"5"` and `5.0` are one value.

    >>> canonical_text(Decimal("5.0")), canonical_text(Decimal("1E+2")), canonical_text("eu")
    ('5', '100', 'eu')
    """
    if value is None or isinstance(value, str):
        return value
    return _plain(value)


def _plain(number: Decimal) -> str:
    if number == 0:
        return "0"
    if number == number.to_integral_value(context=_EXACT):
        return str(int(number))
    return f"{number.normalize(context=_EXACT):f}"


def numeric_value(properties: Mapping[str, Any], path: str) -> Decimal | None:
    """The number at `path` (an int, a Decimal or a numeric string), checked to fit the
    store: at most 12 decimals and 26 digits before the point.

    >>> numeric_value({"gb": "1.50"}, "gb"), numeric_value({}, "gb")
    (Decimal('1.50'), None)
    """
    raw = extract_value(properties, path)
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            number = Decimal(raw.strip())
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite():
            raise InvalidEventValue(f"property {path!r} is {raw!r}, not a number", property=path)
    else:
        number = raw
    exact = Fraction(number)
    if (exact * 10**VALUE_DECIMALS).denominator != 1 or abs(exact) >= 10**MAX_VALUE_DIGITS:
        raise InvalidEventValue(
            f"property {path!r} is {number}: a value has at most {MAX_VALUE_DIGITS} digits "
            f"before the point and {VALUE_DECIMALS} after",
            property=path,
        )
    return number


def matches(meter: MeterDefinition, event: UsageEvent) -> bool:
    """Whether `meter` counts `event`: its type is one of the meter's and every filter passes."""
    return event.type in meter.event_types and all(
        condition.accepts(event.properties) for condition in meter.filters
    )


def group_values(meter: MeterDefinition, event: UsageEvent) -> tuple[str, ...]:
    """The event's values of the meter's `group_by` dimensions, in that order; `""` for a
    dimension the event lacks.

    >>> meter = MeterDefinition(key="m", name="m", event_types=("t",), aggregation="count",
    ...                         group_by=("region", "tier"))
    >>> group_values(meter, UsageEvent(id="1", customer="c", type="t",
    ...              timestamp="2024-01-01T00:00:00Z", properties={"region": "eu"}))
    ('eu', '')
    """
    return tuple(
        canonical_text(extract_value(event.properties, dimension)) or ""
        for dimension in meter.group_by
    )


def measure(
    meter: MeterDefinition, event: UsageEvent, *, customer: str | None = None
) -> MeteredEvent | None:
    """`event` as `meter` reads it, or `None` when the meter does not count it. `customer`
    names the customer as the store keeps it, when the event names it otherwise (by its
    external id).

    Raises `MissingEventValue` when a counted event lacks the value property,
    `InvalidEventValue` when the value is unusable, `InvalidSetOperation` when
    a set event's operation is not `add` or `remove`.
    """
    if not matches(meter, event):
        return None
    group = group_values(meter, event)
    who = event.customer if customer is None else customer
    if meter.aggregation is Aggregation.COUNT:
        return _reading(meter, event, who, group, value=Decimal(1))
    assert meter.value_property is not None  # checked by the model
    if meter.aggregation is Aggregation.UNIQUE_COUNT:
        item = canonical_text(extract_value(event.properties, meter.value_property))
        if item is None:
            raise _missing(meter, event)
        operation = None
        if meter.operation_property is not None:
            operation = _operation(event, meter.operation_property)
        return _reading(meter, event, who, group, item=item, operation=operation)
    value = numeric_value(event.properties, meter.value_property)
    if value is None:
        raise _missing(meter, event)
    return _reading(meter, event, who, group, value=value)


def _reading(
    meter: MeterDefinition,
    event: UsageEvent,
    customer: str,
    group: tuple[str, ...],
    *,
    value: Decimal = Decimal(0),
    item: str = "",
    operation: SetOperation | None = None,
) -> MeteredEvent:
    return MeteredEvent(
        meter=meter.key,
        customer=customer,
        event_id=event.id,
        timestamp=event.timestamp,
        group=group,
        value=value,
        item=item,
        operation=operation,
    )


def _missing(meter: MeterDefinition, event: UsageEvent) -> MissingEventValue:
    return MissingEventValue(
        f"event {event.id!r} has no {meter.value_property!r} for meter {meter.key!r}",
        event_id=event.id,
        meter=meter.key,
    )


def _operation(event: UsageEvent, path: str) -> SetOperation:
    raw = extract_value(event.properties, path)
    try:
        return SetOperation(raw if isinstance(raw, str) else "")
    except ValueError:
        raise InvalidSetOperation(
            f"event {event.id!r}: {path!r} is {raw!r}; it must be 'add' or 'remove'",
            event_id=event.id,
            property=path,
        ) from None


def measure_all(
    meters: Iterable[MeterDefinition], event: UsageEvent, *, customer: str | None = None
) -> list[MeteredEvent]:
    """`event` as each of `meters` that counts it reads it (see `measure` for `customer`)."""
    return [
        reading
        for meter in meters
        if (reading := measure(meter, event, customer=customer)) is not None
    ]


def meters_by_key(meters: Sequence[MeterDefinition]) -> dict[str, MeterDefinition]:
    """`meters` by key; two meters with one key raise `InvalidMeterKey`."""
    by_key: dict[str, MeterDefinition] = {}
    for meter in meters:
        if meter.key in by_key:
            raise InvalidMeterKey(f"two meters have the key {meter.key!r}", key=meter.key)
        by_key[meter.key] = meter
    return by_key
