"""Billing periods: where a subscription's periods begin and end. Pure.

Periods are half-open `[start, end)` UTC instants cut at **midnight in the
customer's IANA timezone**, so a DST change moves the UTC hour of a boundary,
never its local date. A midnight that does not exist (a DST gap at 00:00) is
replaced by the first instant of that local day; an ambiguous one takes its
first occurrence.

Two anchors:

- `Anchor.CALENDAR`: periods start on Monday (week), the 1st (month), Jan 1st,
  Apr 1st, Jul 1st or Oct 1st (quarter), Jan 1st (year). The first period runs
  from the subscription's start to the next calendar boundary (a stub).
- `Anchor.ANNIVERSARY`: periods start on the start date's weekday (week) or
  day of month (month, quarter, year). A day the month lacks (the 29th to the
  31st) is clamped to the month's last day, and later periods return to the
  anchor day, as Stripe does: an anchor on Jan 31 gives Feb 29 (or 28),
  Mar 31, Apr 30, May 31, ...

A `BillingPeriod` is the part of a *nominal* period (the full calendar or
anniversary period) that the subscription's term covers: the first period is
clipped to `starts_at`, the last one of a fixed term to `ends_at`.

>>> from datetime import UTC, datetime
>>> terms = SubscriptionTerms(
...     Interval.MONTH, Anchor.ANNIVERSARY, "Europe/Paris", datetime(2024, 1, 30, 23, tzinfo=UTC)
... )
>>> p = period_containing(terms, datetime(2024, 3, 15, tzinfo=UTC))
>>> p.start.isoformat(), p.end.isoformat()
('2024-02-28T23:00:00+00:00', '2024-03-30T23:00:00+00:00')
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from billing_common.errors import ValidationFailed

__all__ = [
    "Anchor",
    "BillingPeriod",
    "InstantOutsideTerm",
    "Interval",
    "InvalidSubscriptionTerms",
    "SubscriptionTerms",
    "iter_periods",
    "local_date",
    "local_midnight",
    "next_period",
    "period_containing",
    "periods_between",
    "require_utc",
    "zone",
]


class InvalidSubscriptionTerms(ValidationFailed):
    code = "invalid_subscription_terms"
    title = "Invalid subscription terms"


class InstantOutsideTerm(ValidationFailed):
    """An instant before the subscription's billing starts, or at/after its fixed end."""

    code = "instant_outside_subscription_term"
    title = "Instant outside the subscription's term"


class Interval(StrEnum):
    """How long a billing period is."""

    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"

    @property
    def months(self) -> int:
        """Months in one period (0 for a week)."""
        return _MONTHS[self]

    @property
    def per_year(self) -> int:
        """Periods in a year, for comparing fees across intervals: 52, 12, 4, 1."""
        return _PER_YEAR[self]


_MONTHS = {Interval.WEEK: 0, Interval.MONTH: 1, Interval.QUARTER: 3, Interval.YEAR: 12}
_PER_YEAR = {Interval.WEEK: 52, Interval.MONTH: 12, Interval.QUARTER: 4, Interval.YEAR: 1}


class Anchor(StrEnum):
    """Where periods start: on calendar boundaries or on the start date's anniversary."""

    CALENDAR = "calendar"
    ANNIVERSARY = "anniversary"


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The IANA timezone `name`; `InvalidSubscriptionTerms` if the tz database lacks it."""
    if name != "UTC" and name not in _zone_names():
        raise InvalidSubscriptionTerms(f"{name!r} is not an IANA timezone", timezone=name)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # pragma: no cover - checked above
        raise InvalidSubscriptionTerms(f"{name!r} is not an IANA timezone") from exc


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def require_utc(instant: datetime, what: str = "an instant") -> datetime:
    """`instant` as a UTC datetime; `ValueError` if it is naive (a programming error)."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {instant.isoformat()}")
    return instant.astimezone(UTC)


def local_date(instant: datetime, tz: ZoneInfo) -> date:
    """The customer's calendar date at `instant`."""
    return require_utc(instant).astimezone(tz).date()


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of local date `day` in `tz`, as UTC.

    In a DST gap at midnight that is the instant the clocks jump (fold=0 reads the
    missing wall time with the offset before the transition); an ambiguous
    midnight is its first occurrence.

    >>> local_midnight(date(2024, 1, 1), zone("Pacific/Kiritimati")).isoformat()
    '2023-12-31T10:00:00+00:00'
    """
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def _add_months(day: date, months: int, anchor_day: int) -> date:
    """`day` moved by `months` months, on `anchor_day` clamped to that month's last day."""
    index = day.year * 12 + (day.month - 1) + months
    year, month0 = divmod(index, 12)
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(anchor_day, last))


@dataclass(frozen=True, slots=True)
class SubscriptionTerms:
    """What decides a subscription's periods.

    `starts_at` is when billing starts (after any trial); `ends_at`, for a fixed
    term, is when it stops (exclusive). Both are aware datetimes, kept in UTC.
    """

    interval: Interval
    anchor: Anchor
    timezone: str
    starts_at: datetime
    ends_at: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "interval", Interval(self.interval))
        object.__setattr__(self, "anchor", Anchor(self.anchor))
        zone(self.timezone)
        object.__setattr__(self, "starts_at", require_utc(self.starts_at, "starts_at"))
        if self.ends_at is not None:
            ends_at = require_utc(self.ends_at, "ends_at")
            if ends_at <= self.starts_at:
                raise InvalidSubscriptionTerms(
                    f"a fixed term must end after it starts: {ends_at.isoformat()} is not "
                    f"after {self.starts_at.isoformat()}"
                )
            object.__setattr__(self, "ends_at", ends_at)

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)

    def _boundary(self, index: int) -> date:
        """The local date nominal period `index` starts on."""
        months = self.interval.months
        if self.anchor is Anchor.ANNIVERSARY:
            origin = local_date(self.starts_at, self.tz)
            if months == 0:
                return origin + timedelta(days=7 * index)
            return _add_months(origin, index * months, origin.day)
        if months == 0:
            return date.fromordinal(1 + 7 * index)  # date(1, 1, 1) is a Monday
        return _add_months(date(1, 1, 1), index * months, 1)

    def _estimate_index(self, day: date) -> int:
        months = self.interval.months
        if self.anchor is Anchor.ANNIVERSARY:
            origin = local_date(self.starts_at, self.tz)
            if months == 0:
                return (day - origin).days // 7
            return ((day.year - origin.year) * 12 + day.month - origin.month) // months
        if months == 0:
            return (day.toordinal() - 1) // 7
        return ((day.year - 1) * 12 + day.month - 1) // months

    def _boundary_instant(self, index: int) -> datetime:
        return local_midnight(self._boundary(index), self.tz)


@dataclass(frozen=True, slots=True)
class BillingPeriod:
    """A billed span `[start, end)` inside its nominal period `[nominal_start, nominal_end)`.

    `start > nominal_start` only for a subscription's first period (it started
    mid-period); `end < nominal_end` only for the last period of a fixed term.
    """

    start: datetime
    end: datetime
    nominal_start: datetime
    nominal_end: datetime

    def __post_init__(self) -> None:
        if not self.nominal_start <= self.start < self.end <= self.nominal_end:
            raise ValueError(
                "a billing period needs nominal_start <= start < end <= nominal_end: "
                f"{self.nominal_start}, {self.start}, {self.end}, {self.nominal_end}"
            )

    @property
    def is_full(self) -> bool:
        """Whether this period covers its whole nominal period."""
        return self.start == self.nominal_start and self.end == self.nominal_end

    def contains(self, instant: datetime) -> bool:
        return self.start <= instant < self.end


def period_containing(terms: SubscriptionTerms, instant: datetime) -> BillingPeriod:
    """The billing period of `terms` that contains `instant`.

    `InstantOutsideTerm` if `instant` is before `terms.starts_at` or not before
    `terms.ends_at`.
    """
    instant = require_utc(instant)
    if instant < terms.starts_at or (terms.ends_at is not None and instant >= terms.ends_at):
        raise InstantOutsideTerm(
            f"{instant.isoformat()} is outside the subscription's term "
            f"[{terms.starts_at.isoformat()}, "
            f"{terms.ends_at.isoformat() if terms.ends_at else '...'})",
            instant=instant.isoformat(),
        )
    index = terms._estimate_index(local_date(instant, terms.tz))
    while terms._boundary_instant(index) > instant:
        index -= 1
    while terms._boundary_instant(index + 1) <= instant:
        index += 1
    nominal_start = terms._boundary_instant(index)
    nominal_end = terms._boundary_instant(index + 1)
    end = nominal_end if terms.ends_at is None else min(nominal_end, terms.ends_at)
    return BillingPeriod(
        start=max(nominal_start, terms.starts_at),
        end=end,
        nominal_start=nominal_start,
        nominal_end=nominal_end,
    )


def next_period(terms: SubscriptionTerms, period: BillingPeriod) -> BillingPeriod | None:
    """The period right after `period`, or None when a fixed term ends with it."""
    if terms.ends_at is not None and period.end >= terms.ends_at:
        return None
    return period_containing(terms, period.end)


def iter_periods(terms: SubscriptionTerms, start: datetime) -> Iterator[BillingPeriod]:
    """The periods from the one containing `start` (or the first) onward, in order."""
    start = require_utc(start)
    current: BillingPeriod | None
    if terms.ends_at is not None and start >= terms.ends_at:
        return
    current = period_containing(terms, max(start, terms.starts_at))
    while current is not None:
        yield current
        current = next_period(terms, current)


def periods_between(
    terms: SubscriptionTerms, start: datetime, end: datetime
) -> list[BillingPeriod]:
    """Every billing period that overlaps `[start, end)`, in order (whole, not cut at the ends).

    Empty when `end <= start` or the span lies outside the term.

    >>> from datetime import UTC, datetime
    >>> terms = SubscriptionTerms(
    ...     Interval.QUARTER, Anchor.CALENDAR, "UTC", datetime(2024, 2, 10, tzinfo=UTC)
    ... )
    >>> [p.start.date().isoformat() for p in periods_between(
    ...     terms, datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 7, 2, tzinfo=UTC))]
    ['2024-02-10', '2024-04-01', '2024-07-01']
    """
    start, end = require_utc(start), require_utc(end)
    periods: list[BillingPeriod] = []
    if end <= start or end <= terms.starts_at:
        return periods
    for period in iter_periods(terms, start):
        if period.start >= end:
            break
        periods.append(period)
    return periods
