"""Proration: what part of a period an instant has used, and what that part costs. Pure.

Fractions are exact (`Fraction`), amounts exact pico-units (`Money`). The one
rounding here is to the **pico-unit** (half-up, `prorated_amount`); rounding to
the currency's minor unit happens later, once, on the invoice line.

Splits never lose or create a pico-unit. The amount of a piece `[a, b)` of a
period charged `C` is `R(C * used(b)) - R(C * used(a))` (`R` = half-up to the
pico-unit), and the unused remainder after `t` is `C - R(C * used(t))`, not
`R(C * remaining(t))`. The pieces of any split telescope, so they add up to
`C` exactly, and a credit for the unused part plus the amount used is `C`.

Two granularities (`ProrationGranularity`):

- days: `used(t)` is the whole local days of the period before the day of `t`,
  over the local days the period touches; the day of a change belongs to what
  follows it (a plan changed on the 10th bills the new plan from the 10th).
  A 23-hour or 25-hour DST day is one day like any other.
- seconds: `used(t) = (t - start) / (end - start)`, exact to the microsecond.

>>> from datetime import UTC, datetime
>>> from billing_subscriptions.periods import Anchor, Interval, SubscriptionTerms
>>> from billing_subscriptions.periods import period_containing
>>> april_1st = datetime(2024, 4, 1, tzinfo=UTC)
>>> terms = SubscriptionTerms(Interval.MONTH, Anchor.CALENDAR, "UTC", april_1st)
>>> april = period_containing(terms, april_1st)
>>> split = prorate_days(april, datetime(2024, 4, 11, 15, tzinfo=UTC), "UTC")
>>> split.used, split.remaining
(Fraction(1, 3), Fraction(2, 3))
>>> remaining_amount(Money.parse("30", "USD"), split)
Money.parse('20', 'USD')
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

from billing_common.money import Money, RoundingMode
from billing_subscriptions.periods import (
    BillingPeriod,
    local_date,
    local_midnight,
    require_utc,
    zone,
)
from billing_subscriptions.policy import ProrationGranularity, SubscriptionPolicy

__all__ = [
    "PeriodFraction",
    "amount_between",
    "period_fee",
    "prorate",
    "prorate_days",
    "prorate_seconds",
    "prorated_amount",
    "remaining_amount",
]

_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class PeriodFraction:
    """How much of a period lies before an instant (`used`) and from it on (`remaining`)."""

    used: Fraction
    remaining: Fraction

    def __post_init__(self) -> None:
        if not (0 <= self.used <= 1 and self.used + self.remaining == 1):
            raise ValueError(f"not a split of a period: {self.used} + {self.remaining}")

    @classmethod
    def of_used(cls, used: Fraction) -> PeriodFraction:
        return cls(used, 1 - used)


def _tz(timezone: str | ZoneInfo) -> ZoneInfo:
    return timezone if isinstance(timezone, ZoneInfo) else zone(timezone)


def _used_days(start: datetime, end: datetime, instant: datetime, tz: ZoneInfo) -> Fraction:
    first = local_date(start, tz)
    last = local_date(end, tz)
    if local_midnight(last, tz) != end:
        last += timedelta(days=1)  # the period ends inside a day: that day counts
    total = (last - first).days
    if instant >= end:
        return Fraction(1)
    if instant <= start:
        return Fraction(0)
    used = min((local_date(instant, tz) - first).days, total)
    return Fraction(max(used, 0), total)


def _used_seconds(start: datetime, end: datetime, instant: datetime) -> Fraction:
    instant = min(max(instant, start), end)
    return Fraction((instant - start) // _MICROSECOND, (end - start) // _MICROSECOND)


def _used(
    start: datetime,
    end: datetime,
    instant: datetime,
    tz: ZoneInfo,
    granularity: ProrationGranularity,
) -> Fraction:
    instant = require_utc(instant)
    if ProrationGranularity(granularity) is ProrationGranularity.DAYS:
        return _used_days(start, end, instant, tz)
    return _used_seconds(start, end, instant)


def prorate_days(
    period: BillingPeriod, instant: datetime, timezone: str | ZoneInfo
) -> PeriodFraction:
    """The split of `period` at `instant` in whole days of the customer's `timezone`.

    Days used are the local days from the period's first day up to (not
    including) the day of `instant`; the total is every local day the period
    touches. An instant before the period uses nothing, one at or after its end
    uses it all.

    >>> from datetime import UTC, datetime
    >>> from billing_subscriptions.periods import BillingPeriod
    >>> start, end = datetime(2024, 3, 1, 5, tzinfo=UTC), datetime(2024, 4, 1, 4, tzinfo=UTC)
    >>> march = BillingPeriod(start, end, start, end)  # March in New York (DST on the 10th)
    >>> prorate_days(march, datetime(2024, 3, 31, 4, 30, tzinfo=UTC), "America/New_York")
    PeriodFraction(used=Fraction(30, 31), remaining=Fraction(1, 31))
    """
    return PeriodFraction.of_used(
        _used(period.start, period.end, instant, _tz(timezone), ProrationGranularity.DAYS)
    )


def prorate_seconds(period: BillingPeriod, instant: datetime) -> PeriodFraction:
    """The split of `period` at `instant` by elapsed time, exact to the microsecond.

    >>> from datetime import UTC, datetime
    >>> from billing_subscriptions.periods import BillingPeriod
    >>> day = BillingPeriod(*[datetime(2024, 3, d, tzinfo=UTC) for d in (1, 2, 1, 2)])
    >>> prorate_seconds(day, datetime(2024, 3, 1, 6, tzinfo=UTC)).used
    Fraction(1, 4)
    """
    utc = zone("UTC")
    return PeriodFraction.of_used(
        _used(period.start, period.end, instant, utc, ProrationGranularity.SECONDS)
    )


def prorate(
    period: BillingPeriod,
    instant: datetime,
    timezone: str | ZoneInfo,
    granularity: ProrationGranularity = ProrationGranularity.DAYS,
) -> PeriodFraction:
    """`prorate_days` or `prorate_seconds`, as the tenant's policy says."""
    return PeriodFraction.of_used(
        _used(period.start, period.end, instant, _tz(timezone), granularity)
    )


def prorated_amount(fee: Money, fraction: Fraction) -> Money:
    """`fee * fraction`, rounded half-up to the pico-unit (never to the cent here).

    >>> prorated_amount(Money.parse("10", "USD"), Fraction(1, 3))
    Money.parse('3.333333333333', 'USD')
    >>> prorated_amount(Money.parse("0.000000000001", "USD"), Fraction(1, 2)).amount
    1
    """
    if not isinstance(fraction, Fraction):
        raise TypeError(f"a proration fraction is a Fraction, not {type(fraction).__name__}")
    return fee.multiply(fraction, RoundingMode.HALF_UP)


def remaining_amount(charged: Money, split: PeriodFraction) -> Money:
    """The part of `charged` for the rest of the period after the split.

    It is `charged - prorated_amount(charged, split.used)`, so the used part plus
    this is `charged` to the pico-unit.

    >>> remaining_amount(Money.parse("10", "USD"), PeriodFraction.of_used(Fraction(1, 3)))
    Money.parse('6.666666666667', 'USD')
    """
    return charged - prorated_amount(charged, split.used)


def amount_between(
    fee: Money,
    period: BillingPeriod,
    start: datetime,
    end: datetime,
    timezone: str | ZoneInfo,
    granularity: ProrationGranularity = ProrationGranularity.DAYS,
) -> Money:
    """The part of `fee` (the price of all of `period`) for `[start, end)` within it.

    The pieces of any split of the period add up to `fee` exactly.

    >>> from datetime import UTC, datetime
    >>> from billing_subscriptions.periods import BillingPeriod
    >>> week = BillingPeriod(*[datetime(2024, 1, d, tzinfo=UTC) for d in (1, 8, 1, 8)])
    >>> fee = Money.parse("7", "EUR")
    >>> amount_between(fee, week, datetime(2024, 1, 3, tzinfo=UTC), week.end, "UTC")
    Money.parse('5', 'EUR')
    """
    tz = _tz(timezone)
    used_to = _used(period.start, period.end, end, tz, granularity)
    used_from = _used(period.start, period.end, start, tz, granularity)
    return prorated_amount(fee, used_to) - prorated_amount(fee, used_from)


def period_fee(
    fee: Money,
    period: BillingPeriod,
    timezone: str | ZoneInfo,
    policy: SubscriptionPolicy,
) -> Money:
    """What a period costs in advance on a plan whose full-period fee is `fee`.

    - A full period, or one that starts during its nominal period's first local
      day (an anniversary start, a calendar start on the 1st), costs `fee`.
    - A calendar stub (the first period, starting later) costs the part of the
      nominal period it covers, or `fee` when
      `policy.prorate_first_calendar_period` is off.
    - The last period of a fixed term ending mid-period costs the part it covers.

    The part covered is measured on the nominal period with the policy's granularity.

    >>> from datetime import UTC, datetime
    >>> from billing_subscriptions.periods import BillingPeriod
    >>> june = [datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 7, 1, tzinfo=UTC)]
    >>> stub = BillingPeriod(datetime(2024, 6, 21, 9, tzinfo=UTC), june[1], *june)
    >>> period_fee(Money.parse("30", "USD"), stub, "UTC", SubscriptionPolicy())
    Money.parse('10', 'USD')
    """
    if period.is_full:
        return fee
    tz = _tz(timezone)
    granularity = policy.proration_granularity
    starts_on_first_day = local_date(period.start, tz) == local_date(period.nominal_start, tz)
    from_start = starts_on_first_day or not policy.prorate_first_calendar_period
    if period.end == period.nominal_end and from_start:
        return fee
    nominal = BillingPeriod(
        period.nominal_start, period.nominal_end, period.nominal_start, period.nominal_end
    )
    return amount_between(
        fee,
        nominal,
        period.nominal_start if from_start else period.start,
        period.end,
        tz,
        granularity,
    )
