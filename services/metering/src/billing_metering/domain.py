"""What a meter's events add up to over a window of time. Pure: the reference the store matches.

Every function here takes the events of one series, one customer and one
group of one meter, as `MeteredEvent`s (see `meters.measure`), and a
half-open window `[start, end)`: an event exactly at `start` counts, one
exactly at `end` belongs to the next window. Events are deduplicated by
(customer, event id), the first occurrence winning, so a redelivered event
changes nothing; and they are ordered by (timestamp, event id), so the order
they arrived in changes nothing either.

What each aggregation yields over a window (0 when nothing happened):

- `count`: the number of events; `sum`: the sum of their values;
  `max` / `min`: the greatest / smallest value.
- `unique_count`: the number of distinct items. With an operation property
  the events `add` items to and `remove` items from a set, which starts from
  the carried set (recurring meters) or empty; the result is the set's size
  at the end of the window.
- `latest`: the value of the last event in the window (greatest timestamp,
  then greatest event id); with carry-over and no event in the window, the
  carried value.
- `weighted_sum`: the time-weighted average level over the window, in the
  meter's own unit: each event sets the level from its timestamp until the
  next event; before the first event the level is the carried one (0 without
  carry-over); the result is sum(level x duration) / window duration. Ten
  seats for the first half of a month and twenty for the second half is 15,
  which is what a per-seat price prorates. The division is exact and rounded
  once, half-up, to 12 decimals (the precision of stored values).

Recurring meters (`carry_over`) carry a level across windows: the last value
(`latest`, `weighted_sum`) or the set (`unique_count` with operations) at
the end of one period is where the next starts; `opening_state` computes it.

Windows are calendar windows in UTC (`windows`): a customer whose billing
day starts in another timezone is served by the caller passing bounds
aligned to that timezone, as periods are.

>>> from datetime import datetime, UTC
>>> from billing_metering.meters import MeterDefinition, MeteredEvent
>>> seats = MeterDefinition(key="seats", name="Seats", event_types=("seats",),
...                         aggregation="weighted_sum", value_property="n", carry_over=True)
>>> def at(day): return datetime(2024, 4, day, tzinfo=UTC)
>>> events = [MeteredEvent("seats", "cus_1", "e1", at(16), value=Decimal(20))]
>>> april = Window(at(1), datetime(2024, 5, 1, tzinfo=UTC))
>>> aggregate(seats, events, april, carried_level=Decimal(10))
Decimal('15')
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, Inexact, InvalidOperation, Rounded
from enum import StrEnum
from fractions import Fraction

from billing_common.errors import ValidationFailed
from billing_common.money import RoundingMode, divide_rounded
from billing_metering.meters import (
    VALUE_DECIMALS,
    Aggregation,
    MeterDefinition,
    MeteredEvent,
    SetOperation,
    canonical_text,
)

__all__ = [
    "MAX_WINDOWS",
    "CarriedLevel",
    "InvalidWindow",
    "Window",
    "WindowSize",
    "aggregate",
    "canonical_quantity",
    "deduplicate",
    "epoch_ms",
    "opening_state",
    "usage_by_window",
    "windows",
]

#: What a recurring meter carries into the next window: a level, or a set of items.
CarriedLevel = Decimal | frozenset[str]

#: The most windows one query may split into.
MAX_WINDOWS = 100_000

_EXACT = Context(prec=200, traps=[Inexact, Rounded, InvalidOperation])
_SCALE = 10**VALUE_DECIMALS


class InvalidWindow(ValidationFailed):
    code = "invalid_window"
    title = "Invalid time window"


class WindowSize(StrEnum):
    """The length of the windows a query splits its range into (calendar-aligned, UTC)."""

    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


#: The shortest duration of a window of each size, in milliseconds.
_SHORTEST_MS = {
    WindowSize.MINUTE: 60_000,
    WindowSize.HOUR: 3_600_000,
    WindowSize.DAY: 86_400_000,
    WindowSize.MONTH: 28 * 86_400_000,
}


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """A half-open interval of time `[start, end)`, in UTC, at millisecond precision."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            instant: datetime = getattr(self, name)
            if instant.tzinfo is None or instant.utcoffset() is None:
                raise InvalidWindow(f"window {name} {instant.isoformat()} has no timezone")
            if instant.microsecond % 1000:
                raise InvalidWindow(
                    f"window {name} {instant.isoformat()} is finer than a millisecond"
                )
            object.__setattr__(self, name, instant.astimezone(UTC))
        if not self.start < self.end:
            raise InvalidWindow(
                f"a window ends after it starts: [{self.start.isoformat()}, "
                f"{self.end.isoformat()}) is empty"
            )

    @property
    def duration_ms(self) -> int:
        return epoch_ms(self.end) - epoch_ms(self.start)

    def __contains__(self, instant: object) -> bool:
        return isinstance(instant, datetime) and self.start <= instant < self.end


def epoch_ms(instant: datetime) -> int:
    """Milliseconds since the Unix epoch, exactly (no float on the way)."""
    delta = instant - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def windows(start: datetime, end: datetime, size: WindowSize | None) -> list[Window]:
    """`[start, end)` split at the UTC boundaries of `size`; `None` keeps it whole.

    The first and last windows are clipped to the range:

    >>> [(w.start.hour, w.start.minute, w.end.hour) for w in windows(
    ...     datetime(2024, 1, 1, 10, 30, tzinfo=UTC), datetime(2024, 1, 1, 12, tzinfo=UTC), "hour")]
    [(10, 30, 11), (11, 0, 12)]
    >>> [w.end.month for w in windows(datetime(2024, 1, 15, tzinfo=UTC),
    ...                               datetime(2024, 3, 1, tzinfo=UTC), WindowSize.MONTH)]
    [2, 3]
    """
    whole = Window(start, end)
    if size is None:
        return [whole]
    size = WindowSize(size)
    if whole.duration_ms // _SHORTEST_MS[size] > MAX_WINDOWS:
        raise InvalidWindow(f"the range splits into more than {MAX_WINDOWS} {size} windows")
    result: list[Window] = []
    cursor = whole.start
    while cursor < whole.end:
        boundary = min(_next_boundary(cursor, size), whole.end)
        result.append(Window(cursor, boundary))
        cursor = boundary
    return result


def _next_boundary(instant: datetime, size: WindowSize) -> datetime:
    if size is WindowSize.MINUTE:
        return instant.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if size is WindowSize.HOUR:
        return instant.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    if size is WindowSize.DAY:
        return instant.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    days = calendar.monthrange(instant.year, instant.month)[1]
    first = instant.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return first + timedelta(days=days)


# -- accumulator periods: calendar months in UTC ----------------------------------------------


def period_start(instant: datetime) -> datetime:
    """The first instant of `instant`'s calendar month in UTC.

    >>> period_start(datetime(2024, 2, 29, 23, 59, tzinfo=UTC)).isoformat()
    '2024-02-01T00:00:00+00:00'
    """
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{instant.isoformat()} has no timezone")
    utc = instant.astimezone(UTC)
    return datetime(utc.year, utc.month, 1, tzinfo=UTC)


def period_end(start: datetime) -> datetime:
    """The first instant after the month that starts at `start` (`period_start`)."""
    return _next_boundary(period_start(start), WindowSize.MONTH)


def deduplicate(events: Iterable[MeteredEvent]) -> list[MeteredEvent]:
    """`events` without repeats of a (meter, customer, event id): the first one wins."""
    seen: set[tuple[str, str, str]] = set()
    unique: list[MeteredEvent] = []
    for event in events:
        key = (event.meter, event.customer, event.event_id)
        if key not in seen:
            seen.add(key)
            unique.append(event)
    return unique


def canonical_quantity(value: Decimal) -> Decimal:
    """`value` without trailing zeros or exponent: `Decimal("3.000")` is `Decimal("3")`."""
    text = canonical_text(value)
    assert text is not None
    return Decimal(text)


def aggregate(
    meter: MeterDefinition,
    events: Iterable[MeteredEvent],
    window: Window,
    *,
    carried_level: CarriedLevel | None = None,
) -> Decimal:
    """What `meter` makes of the events of one series in `window` (events outside it are
    ignored); `carried_level` is a recurring meter's state at `window.start`.

    >>> from billing_metering.meters import MeterDefinition, MeteredEvent
    >>> peak = MeterDefinition(key="peak", name="Peak", event_types=("cpu",),
    ...                        aggregation="max", value_property="cores")
    >>> day = Window(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC))
    >>> aggregate(peak, [MeteredEvent("peak", "c", "a", day.start, value=Decimal(4)),
    ...                  MeteredEvent("peak", "c", "b", day.end, value=Decimal(9))], day)
    Decimal('4')
    """
    _check_carried(meter, carried_level)
    inside = [event for event in _own(meter, events) if event.timestamp in window]
    inside = sorted(deduplicate(inside), key=lambda event: event.order_key)
    aggregation = meter.aggregation
    if aggregation is Aggregation.COUNT:
        return Decimal(len(inside))
    if aggregation is Aggregation.UNIQUE_COUNT:
        if not meter.tracks_set:
            return Decimal(len({event.item for event in inside}))
        opening = carried_level if isinstance(carried_level, frozenset) else frozenset()
        return Decimal(len(_apply_operations(opening, inside)))
    if aggregation is Aggregation.WEIGHTED_SUM:
        opening_level = carried_level if isinstance(carried_level, Decimal) else Decimal(0)
        return _time_weighted_average(opening_level, inside, window)
    if aggregation is Aggregation.LATEST:
        if inside:
            return canonical_quantity(inside[-1].value)
        return canonical_quantity(carried_level) if isinstance(carried_level, Decimal) else _ZERO
    values = [Fraction(event.value) for event in inside]
    if not values:
        return _ZERO
    if aggregation is Aggregation.SUM:
        return _to_quantity(sum(values, Fraction(0)))
    if aggregation is Aggregation.MAX:
        return _to_quantity(max(values))
    return _to_quantity(min(values))


_ZERO = Decimal(0)


def opening_state(
    meter: MeterDefinition,
    events: Iterable[MeteredEvent],
    at: datetime,
    *,
    carried_level: CarriedLevel | None = None,
) -> CarriedLevel | None:
    """The state a recurring meter carries into the instant `at`: `carried_level` (the state
    before the first of `events`), then every event before `at` applied in order.

    `None` when the meter does not carry over, or when nothing has happened yet.

    >>> from billing_metering.meters import MeterDefinition, MeteredEvent
    >>> users = MeterDefinition(key="users", name="Users", event_types=("user",),
    ...                         aggregation="unique_count", value_property="id",
    ...                         operation_property="op", carry_over=True)
    >>> jan = datetime(2024, 1, 1, tzinfo=UTC)
    >>> sorted(opening_state(users, [MeteredEvent("users", "c", "e1", jan, item="ann",
    ...                                           operation=SetOperation.ADD)],
    ...                      datetime(2024, 2, 1, tzinfo=UTC), carried_level=frozenset({"bob"})))
    ['ann', 'bob']
    """
    _check_carried(meter, carried_level)
    if not meter.carry_over:
        return None
    before = [event for event in _own(meter, events) if event.timestamp < at]
    before = sorted(deduplicate(before), key=lambda event: event.order_key)
    if meter.tracks_set:
        if not before and carried_level is None:
            return None
        opening = carried_level if isinstance(carried_level, frozenset) else frozenset()
        return _apply_operations(opening, before)
    if before:
        return canonical_quantity(before[-1].value)
    return carried_level


def usage_by_window(
    meter: MeterDefinition,
    events: Iterable[MeteredEvent],
    in_windows: Sequence[Window],
    *,
    carried_level: CarriedLevel | None = None,
) -> list[tuple[Window, Decimal]]:
    """`aggregate` over each of `in_windows` (ascending, not overlapping) for one series.

    A window is reported when events fall in it, or when the meter carries over
    and the series had a state at the window's start; `carried_level` is the
    state before the first of `events`.
    """
    series = sorted(deduplicate(_own(meter, events)), key=lambda event: event.order_key)
    result: list[tuple[Window, Decimal]] = []
    state = carried_level
    applied = 0
    for window in in_windows:
        before = applied
        while applied < len(series) and series[applied].timestamp < window.start:
            applied += 1
        state = opening_state(meter, series[before:applied], window.start, carried_level=state)
        end = applied
        while end < len(series) and series[end].timestamp < window.end:
            end += 1
        inside = series[applied:end]
        if inside or state is not None:
            result.append((window, aggregate(meter, inside, window, carried_level=state)))
    return result


def _own(meter: MeterDefinition, events: Iterable[MeteredEvent]) -> list[MeteredEvent]:
    own = list(events)
    for event in own:
        if event.meter != meter.key:
            raise ValueError(
                f"event {event.event_id!r} is for meter {event.meter!r}, not {meter.key!r}"
            )
    return own


def _check_carried(meter: MeterDefinition, carried_level: CarriedLevel | None) -> None:
    if carried_level is None:
        return
    if not meter.carry_over:
        raise ValueError(f"meter {meter.key!r} does not carry over: it takes no carried level")
    if meter.tracks_set and not isinstance(carried_level, frozenset):
        raise TypeError(f"meter {meter.key!r} carries a frozenset of items")
    if not meter.tracks_set and not isinstance(carried_level, Decimal):
        raise TypeError(f"meter {meter.key!r} carries a Decimal level")


def _apply_operations(opening: frozenset[str], ordered: Sequence[MeteredEvent]) -> frozenset[str]:
    items = set(opening)
    for event in ordered:
        if event.operation is SetOperation.REMOVE:
            items.discard(event.item)
        else:
            items.add(event.item)
    return frozenset(items)


def _time_weighted_average(
    opening_level: Decimal, ordered: Sequence[MeteredEvent], window: Window
) -> Decimal:
    level = Fraction(opening_level)
    cursor = epoch_ms(window.start)
    weighted = Fraction(0)
    for event in ordered:
        instant = epoch_ms(event.timestamp)
        weighted += level * (instant - cursor)
        cursor, level = instant, Fraction(event.value)
    weighted += level * (epoch_ms(window.end) - cursor)
    return _to_quantity(weighted / window.duration_ms)


def _to_quantity(exact: Fraction) -> Decimal:
    """`exact` rounded half-up to 12 decimals (exact for sums of stored values)."""
    scaled = divide_rounded(exact.numerator * _SCALE, exact.denominator, RoundingMode.HALF_UP)
    return canonical_quantity(Decimal(scaled).scaleb(-VALUE_DECIMALS, context=_EXACT))
