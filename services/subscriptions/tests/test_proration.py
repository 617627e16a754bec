from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_common.money import Money
from billing_subscriptions import proration
from billing_subscriptions.periods import (
    Anchor,
    BillingPeriod,
    Interval,
    SubscriptionTerms,
    period_containing,
    zone,
)
from billing_subscriptions.policy import ProrationGranularity, SubscriptionPolicy
from billing_subscriptions.proration import (
    PeriodFraction,
    amount_between,
    period_fee,
    prorate,
    prorate_days,
    prorate_seconds,
    prorated_amount,
    remaining_amount,
)

FAST = settings(database=None, deadline=None, max_examples=150)
USD = "USD"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(tz: str, year: int, month: int, day: int, hour: int = 0) -> datetime:
    """The UTC instant of a wall-clock time in `tz`."""
    return datetime(year, month, day, hour, tzinfo=zone(tz)).astimezone(UTC)


def usd(amount: str) -> Money:
    return Money.parse(amount, USD)


def month(tz: str, year: int, month_: int) -> BillingPeriod:
    terms = SubscriptionTerms(Interval.MONTH, Anchor.CALENDAR, tz, utc(2000, 1, 1))
    return period_containing(terms, local(tz, year, month_, 15))


def test_doctests() -> None:
    assert doctest.testmod(proration, raise_on_error=False).failed == 0


class TestProrateDays:
    def test_whole_days_before_the_day_of_the_change(self) -> None:
        april = month("UTC", 2024, 4)
        split = prorate_days(april, utc(2024, 4, 11, 23, 59), "UTC")
        assert split == PeriodFraction(Fraction(1, 3), Fraction(2, 3))

    def test_at_the_start_and_at_the_end(self) -> None:
        april = month("UTC", 2024, 4)
        assert prorate_days(april, april.start, "UTC").used == 0
        assert prorate_days(april, utc(2024, 3, 1), "UTC").used == 0
        assert prorate_days(april, april.end, "UTC").used == 1
        assert prorate_days(april, utc(2024, 6, 1), "UTC").remaining == 0

    def test_days_are_counted_in_the_customers_timezone(self) -> None:
        tz = "Pacific/Kiritimati"
        january = month(tz, 2024, 1)
        change = utc(2024, 1, 15, 11)  # Jan 15th in UTC, Jan 16th 01:00 on Kiritimati
        assert prorate_days(january, change, tz).used == Fraction(15, 31)
        assert prorate_days(month("UTC", 2024, 1), change, "UTC").used == Fraction(14, 31)

    def test_dst_days_count_as_days_in_paris(self) -> None:
        tz = "Europe/Paris"
        march = month(tz, 2024, 3)  # 743 hours: Mar 31st has 23
        change = local(tz, 2024, 3, 31, 12)
        assert prorate_days(march, change, tz).used == Fraction(30, 31)
        assert prorate_seconds(march, change).used == Fraction(731, 743)

    def test_dst_days_count_as_days_in_new_york(self) -> None:
        tz = "America/New_York"
        november = month(tz, 2024, 11)  # 721 hours: Nov 3rd has 25
        change = local(tz, 2024, 11, 4)
        assert prorate_days(november, change, tz).used == Fraction(3, 30)
        assert prorate_seconds(november, change).used == Fraction(73, 721)

    def test_a_clipped_period_counts_the_days_it_touches(self) -> None:
        stub = BillingPeriod(
            utc(2024, 6, 21, 9), utc(2024, 6, 24, 12), utc(2024, 6, 1), utc(2024, 7, 1)
        )
        assert prorate_days(stub, utc(2024, 6, 22, 8), "UTC").used == Fraction(1, 4)
        assert prorate_days(stub, utc(2024, 6, 24, 11), "UTC").used == Fraction(3, 4)
        assert prorate_days(stub, utc(2024, 6, 24, 12), "UTC").used == 1

    def test_naive_instants_are_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            prorate_days(month("UTC", 2024, 4), datetime(2024, 4, 2), "UTC")


class TestProrateSeconds:
    def test_exact_to_the_microsecond(self) -> None:
        april = month("UTC", 2024, 4)
        split = prorate_seconds(april, april.start + timedelta(microseconds=1))
        assert split.used == Fraction(1, 30 * 86_400_000_000)

    def test_prorate_dispatches_on_granularity(self) -> None:
        april = month("UTC", 2024, 4)
        instant = utc(2024, 4, 11, 12)
        assert prorate(april, instant, "UTC") == prorate_days(april, instant, "UTC")
        assert prorate(april, instant, "UTC", ProrationGranularity.SECONDS).used == Fraction(21, 60)


class TestAmounts:
    def test_prorated_amount_keeps_pico_units(self) -> None:
        assert prorated_amount(usd("10"), Fraction(1, 3)) == usd("3.333333333333")
        assert prorated_amount(usd("10"), Fraction(2, 3)) == usd("6.666666666667")
        assert prorated_amount(usd("29.99"), Fraction(19, 30)) == usd("18.993666666667")

    def test_prorated_amount_rounds_a_half_pico_up(self) -> None:
        assert prorated_amount(Money(1, usd("0").currency), Fraction(1, 2)).amount == 1
        assert prorated_amount(Money(-1, usd("0").currency), Fraction(1, 2)).amount == -1

    def test_prorated_amount_takes_only_fractions(self) -> None:
        with pytest.raises(TypeError):
            prorated_amount(usd("10"), Decimal("0.5"))  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            prorated_amount(usd("10"), 0.5)  # type: ignore[arg-type]

    def test_remaining_is_the_complement_of_used(self) -> None:
        split = PeriodFraction.of_used(Fraction(1, 3))
        assert remaining_amount(usd("10"), split) == usd("6.666666666667")
        assert remaining_amount(usd("10"), split) + prorated_amount(usd("10"), split.used) == usd(
            "10"
        )

    def test_a_half_pico_tie_is_not_counted_twice(self) -> None:
        one_pico = Money(1, usd("0").currency)
        half = PeriodFraction.of_used(Fraction(1, 2))
        assert prorated_amount(one_pico, half.used).amount == 1
        assert remaining_amount(one_pico, half).amount == 0  # not R(1/2) = 1 again

    def test_a_split_must_add_up_to_one(self) -> None:
        with pytest.raises(ValueError, match="not a split"):
            PeriodFraction(Fraction(1, 2), Fraction(1, 3))
        with pytest.raises(ValueError, match="not a split"):
            PeriodFraction(Fraction(3, 2), Fraction(-1, 2))

    def test_amount_between(self) -> None:
        april = month("UTC", 2024, 4)
        fee = usd("30")
        assert amount_between(fee, april, utc(2024, 4, 11), utc(2024, 4, 21), "UTC") == usd("10")
        pieces = [
            amount_between(fee, april, a, b, "UTC")
            for a, b in [
                (april.start, utc(2024, 4, 8)),
                (utc(2024, 4, 8), utc(2024, 4, 19)),
                (utc(2024, 4, 19), april.end),
            ]
        ]
        assert pieces == [usd("7"), usd("11"), usd("12")]


class TestPeriodFee:
    june = (utc(2024, 6, 1), utc(2024, 7, 1))

    def test_a_full_period_costs_the_fee(self) -> None:
        period = BillingPeriod(*self.june, *self.june)
        assert period_fee(usd("30"), period, "UTC", SubscriptionPolicy()) == usd("30")

    def test_a_calendar_stub_is_prorated_by_default(self) -> None:
        stub = BillingPeriod(utc(2024, 6, 21, 9), self.june[1], *self.june)
        assert period_fee(usd("30"), stub, "UTC", SubscriptionPolicy()) == usd("10")

    def test_a_calendar_stub_by_the_second(self) -> None:
        stub = BillingPeriod(utc(2024, 6, 21, 12), self.june[1], *self.june)
        policy = SubscriptionPolicy(proration_granularity=ProrationGranularity.SECONDS)
        assert period_fee(usd("30"), stub, "UTC", policy) == usd("9.5")

    def test_a_calendar_stub_at_full_fee_when_the_policy_says_so(self) -> None:
        stub = BillingPeriod(utc(2024, 6, 21, 9), self.june[1], *self.june)
        policy = SubscriptionPolicy(prorate_first_calendar_period=False)
        assert period_fee(usd("30"), stub, "UTC", policy) == usd("30")

    def test_a_period_started_on_its_first_day_is_full(self) -> None:
        first_day = BillingPeriod(utc(2024, 6, 1, 17), self.june[1], *self.june)
        seconds = SubscriptionPolicy(proration_granularity=ProrationGranularity.SECONDS)
        assert period_fee(usd("30"), first_day, "UTC", seconds) == usd("30")

    def test_the_end_of_a_fixed_term_is_prorated(self) -> None:
        last = BillingPeriod(self.june[0], utc(2024, 6, 11), *self.june)
        assert period_fee(usd("30"), last, "UTC", SubscriptionPolicy()) == usd("10")
        policy = SubscriptionPolicy(prorate_first_calendar_period=False)
        assert period_fee(usd("30"), last, "UTC", policy) == usd("10")

    def test_a_short_fixed_term_inside_one_period(self) -> None:
        short = BillingPeriod(utc(2024, 6, 11), utc(2024, 6, 21), *self.june)
        assert period_fee(usd("30"), short, "UTC", SubscriptionPolicy()) == usd("10")

    def test_weekly_calendar_stub(self) -> None:
        terms = SubscriptionTerms(Interval.WEEK, Anchor.CALENDAR, "UTC", utc(2024, 1, 3))  # Wed
        stub = period_containing(terms, terms.starts_at)
        assert period_fee(usd("7"), stub, "UTC", SubscriptionPolicy()) == usd("5")


# -- properties ---------------------------------------------------------------------------------

ZONES = ["UTC", "Europe/Paris", "America/New_York", "Pacific/Kiritimati", "Asia/Kathmandu"]


@st.composite
def a_period(draw: st.DrawFn) -> tuple[BillingPeriod, str]:
    tz = draw(st.sampled_from(ZONES))
    starts_at = draw(
        st.datetimes(datetime(2000, 1, 1), datetime(2040, 1, 1), timezones=st.just(UTC))
    )
    terms = SubscriptionTerms(
        draw(st.sampled_from(Interval)), draw(st.sampled_from(Anchor)), tz, starts_at
    )
    instant = starts_at + timedelta(seconds=draw(st.integers(0, 3 * 366 * 86400)))
    return period_containing(terms, instant), tz


fees = st.integers(0, 10**26).map(lambda pico: Money(pico, Money.zero(USD).currency))


@FAST
@given(a_period(), fees, st.sampled_from(ProrationGranularity), st.data())
def test_pieces_of_any_split_add_up_to_the_fee(
    period_tz: tuple[BillingPeriod, str],
    fee: Money,
    granularity: ProrationGranularity,
    data: st.DataObject,
) -> None:
    period, tz = period_tz
    span = (period.end - period.start) // timedelta(microseconds=1)
    offsets = data.draw(st.lists(st.integers(0, span), max_size=8))
    cuts = sorted({period.start + timedelta(microseconds=o) for o in offsets})
    bounds = [period.start, *cuts, period.end]
    pieces = [amount_between(fee, period, a, b, tz, granularity) for a, b in pairwise(bounds)]
    assert sum(p.amount for p in pieces) == fee.amount
    assert all(not p.is_negative() for p in pieces)


@FAST
@given(a_period(), fees, st.sampled_from(ProrationGranularity), st.data())
def test_used_plus_remaining_is_the_fee(
    period_tz: tuple[BillingPeriod, str],
    fee: Money,
    granularity: ProrationGranularity,
    data: st.DataObject,
) -> None:
    period, tz = period_tz
    span = (period.end - period.start) // timedelta(microseconds=1)
    instant = period.start + timedelta(microseconds=data.draw(st.integers(0, span)))
    split = prorate(period, instant, tz, granularity)
    assert split.used + split.remaining == 1
    assert 0 <= split.used <= 1
    assert prorated_amount(fee, split.used) + remaining_amount(fee, split) == fee
    later = prorate(period, instant + timedelta(hours=1), tz, granularity)
    assert later.used >= split.used  # monotone
