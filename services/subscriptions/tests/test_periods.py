from __future__ import annotations

import doctest
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_subscriptions import periods
from billing_subscriptions.periods import (
    Anchor,
    BillingPeriod,
    InstantOutsideTerm,
    Interval,
    InvalidSubscriptionTerms,
    SubscriptionTerms,
    local_date,
    local_midnight,
    next_period,
    period_containing,
    periods_between,
    zone,
)

FAST = settings(database=None, deadline=None, max_examples=150)
ZONES = [
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Pacific/Kiritimati",
    "America/Santiago",  # DST gap at midnight
    "Australia/Lord_Howe",  # 30-minute DST
    "Asia/Kathmandu",  # UTC+5:45
    "Pacific/Pago_Pago",  # UTC-11
]


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(tz: str, year: int, month: int, day: int, hour: int = 0) -> datetime:
    """The UTC instant of a wall-clock time in `tz`."""
    return datetime(year, month, day, hour, tzinfo=zone(tz)).astimezone(UTC)


def starts(terms: SubscriptionTerms, count: int) -> list[date]:
    """The local start dates of the first `count` periods."""
    period: BillingPeriod | None = period_containing(terms, terms.starts_at)
    days = []
    for _ in range(count):
        assert period is not None
        days.append(local_date(period.start, terms.tz))
        period = next_period(terms, period)
    return days


def test_doctests() -> None:
    assert doctest.testmod(periods, raise_on_error=False).failed == 0


class TestCalendarAnchor:
    @pytest.mark.parametrize(
        ("interval", "instant", "nominal"),
        [
            (Interval.WEEK, utc(2024, 1, 10, 12), (utc(2024, 1, 8), utc(2024, 1, 15))),
            (Interval.WEEK, utc(2024, 12, 31), (utc(2024, 12, 30), utc(2025, 1, 6))),
            (Interval.MONTH, utc(2024, 2, 29, 23, 59), (utc(2024, 2, 1), utc(2024, 3, 1))),
            (Interval.MONTH, utc(2024, 12, 1), (utc(2024, 12, 1), utc(2025, 1, 1))),
            (Interval.QUARTER, utc(2024, 5, 17), (utc(2024, 4, 1), utc(2024, 7, 1))),
            (Interval.QUARTER, utc(2024, 12, 31), (utc(2024, 10, 1), utc(2025, 1, 1))),
            (Interval.YEAR, utc(2024, 7, 4), (utc(2024, 1, 1), utc(2025, 1, 1))),
        ],
    )
    def test_periods_start_on_calendar_boundaries(
        self, interval: Interval, instant: datetime, nominal: tuple[datetime, datetime]
    ) -> None:
        terms = SubscriptionTerms(interval, Anchor.CALENDAR, "UTC", utc(2020, 1, 1))
        period = period_containing(terms, instant)
        assert (period.start, period.end) == nominal
        assert (period.nominal_start, period.nominal_end) == nominal
        assert period.is_full

    def test_first_period_is_a_stub_up_to_the_next_boundary(self) -> None:
        terms = SubscriptionTerms(Interval.MONTH, Anchor.CALENDAR, "UTC", utc(2024, 6, 21, 9))
        first = period_containing(terms, terms.starts_at)
        assert (first.start, first.end) == (utc(2024, 6, 21, 9), utc(2024, 7, 1))
        assert (first.nominal_start, first.nominal_end) == (utc(2024, 6, 1), utc(2024, 7, 1))
        assert not first.is_full
        second = next_period(terms, first)
        assert second is not None
        assert (second.start, second.end) == (utc(2024, 7, 1), utc(2024, 8, 1))

    def test_weeks_start_on_monday(self) -> None:
        terms = SubscriptionTerms(Interval.WEEK, Anchor.CALENDAR, "UTC", utc(2024, 1, 3))  # Wed
        assert starts(terms, 3) == [date(2024, 1, 3), date(2024, 1, 8), date(2024, 1, 15)]
        assert all(day.weekday() == 0 for day in starts(terms, 10)[1:])

    def test_quarters_and_years(self) -> None:
        quarterly = SubscriptionTerms(Interval.QUARTER, Anchor.CALENDAR, "UTC", utc(2024, 2, 10))
        assert starts(quarterly, 4) == [
            date(2024, 2, 10),
            date(2024, 4, 1),
            date(2024, 7, 1),
            date(2024, 10, 1),
        ]
        yearly = SubscriptionTerms(Interval.YEAR, Anchor.CALENDAR, "UTC", utc(2024, 2, 29))
        assert starts(yearly, 3) == [date(2024, 2, 29), date(2025, 1, 1), date(2026, 1, 1)]


class TestAnniversaryAnchor:
    def test_monthly_from_jan_31_clamps_and_returns_to_the_31st(self) -> None:
        terms = SubscriptionTerms(Interval.MONTH, Anchor.ANNIVERSARY, "UTC", utc(2024, 1, 31, 15))
        assert starts(terms, 8) == [
            date(2024, 1, 31),
            date(2024, 2, 29),
            date(2024, 3, 31),
            date(2024, 4, 30),
            date(2024, 5, 31),
            date(2024, 6, 30),
            date(2024, 7, 31),
            date(2024, 8, 31),
        ]

    def test_monthly_from_jan_31_in_a_common_year(self) -> None:
        terms = SubscriptionTerms(Interval.MONTH, Anchor.ANNIVERSARY, "UTC", utc(2023, 1, 31))
        assert starts(terms, 3) == [date(2023, 1, 31), date(2023, 2, 28), date(2023, 3, 31)]

    def test_monthly_from_feb_29(self) -> None:
        terms = SubscriptionTerms(Interval.MONTH, Anchor.ANNIVERSARY, "UTC", utc(2024, 2, 29))
        days = starts(terms, 14)
        assert days[:3] == [date(2024, 2, 29), date(2024, 3, 29), date(2024, 4, 29)]
        assert days[11:] == [date(2025, 1, 29), date(2025, 2, 28), date(2025, 3, 29)]

    def test_yearly_from_feb_29_returns_in_leap_years(self) -> None:
        terms = SubscriptionTerms(Interval.YEAR, Anchor.ANNIVERSARY, "UTC", utc(2024, 2, 29))
        assert starts(terms, 5) == [
            date(2024, 2, 29),
            date(2025, 2, 28),
            date(2026, 2, 28),
            date(2027, 2, 28),
            date(2028, 2, 29),
        ]

    def test_quarterly_from_nov_30(self) -> None:
        terms = SubscriptionTerms(Interval.QUARTER, Anchor.ANNIVERSARY, "UTC", utc(2023, 11, 30))
        assert starts(terms, 5) == [
            date(2023, 11, 30),
            date(2024, 2, 29),
            date(2024, 5, 30),
            date(2024, 8, 30),
            date(2024, 11, 30),
        ]

    def test_weekly_keeps_the_weekday(self) -> None:
        terms = SubscriptionTerms(Interval.WEEK, Anchor.ANNIVERSARY, "UTC", utc(2024, 1, 3, 18))
        assert starts(terms, 3) == [date(2024, 1, 3), date(2024, 1, 10), date(2024, 1, 17)]

    def test_first_period_starts_at_the_start_instant(self) -> None:
        terms = SubscriptionTerms(Interval.MONTH, Anchor.ANNIVERSARY, "UTC", utc(2024, 5, 15, 18))
        first = period_containing(terms, utc(2024, 6, 1))
        assert (first.start, first.end) == (utc(2024, 5, 15, 18), utc(2024, 6, 15))
        assert first.nominal_start == utc(2024, 5, 15)


class TestTimezones:
    def test_paris_spring_forward_month(self) -> None:
        terms = SubscriptionTerms(Interval.MONTH, Anchor.CALENDAR, "Europe/Paris", utc(2024, 1, 1))
        march = period_containing(terms, utc(2024, 3, 15))
        assert (march.start, march.end) == (utc(2024, 2, 29, 23), utc(2024, 3, 31, 22))
        assert march.end - march.start == timedelta(days=31) - timedelta(hours=1)

    def test_paris_fall_back_month(self) -> None:
        terms = SubscriptionTerms(Interval.MONTH, Anchor.CALENDAR, "Europe/Paris", utc(2024, 1, 1))
        october = period_containing(terms, utc(2024, 10, 27, 1, 30))  # inside the repeated hour
        assert (october.start, october.end) == (utc(2024, 9, 30, 22), utc(2024, 10, 31, 23))
        assert october.end - october.start == timedelta(days=31, hours=1)

    def test_paris_week_across_dst(self) -> None:
        terms = SubscriptionTerms(Interval.WEEK, Anchor.CALENDAR, "Europe/Paris", utc(2024, 1, 1))
        week = period_containing(terms, local("Europe/Paris", 2024, 3, 31, 12))
        assert week.start == local("Europe/Paris", 2024, 3, 25) == utc(2024, 3, 24, 23)
        assert week.end == local("Europe/Paris", 2024, 4, 1) == utc(2024, 3, 31, 22)

    def test_new_york_weekly_anniversary_across_both_changes(self) -> None:
        tz = "America/New_York"
        terms = SubscriptionTerms(Interval.WEEK, Anchor.ANNIVERSARY, tz, local(tz, 2024, 3, 3, 9))
        march = period_containing(terms, utc(2024, 3, 12))
        assert (march.start, march.end) == (utc(2024, 3, 10, 5), utc(2024, 3, 17, 4))
        november = period_containing(terms, utc(2024, 11, 5))
        assert (november.start, november.end) == (utc(2024, 11, 3, 4), utc(2024, 11, 10, 5))
        for period in (march, november):
            for boundary in (period.start, period.end):
                assert boundary.astimezone(zone(tz)).time().isoformat() == "00:00:00"

    def test_new_york_monthly_anniversary_on_the_31st(self) -> None:
        tz = "America/New_York"
        terms = SubscriptionTerms(
            Interval.MONTH, Anchor.ANNIVERSARY, tz, local(tz, 2024, 1, 31, 20)
        )
        assert terms.starts_at == utc(2024, 2, 1, 1)  # already Feb 1st in UTC
        assert starts(terms, 3) == [date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31)]
        march = period_containing(terms, utc(2024, 3, 20))
        assert (march.start, march.end) == (utc(2024, 2, 29, 5), utc(2024, 3, 31, 4))

    def test_kiritimati_is_a_day_ahead_of_utc(self) -> None:
        tz = "Pacific/Kiritimati"  # UTC+14
        terms = SubscriptionTerms(Interval.MONTH, Anchor.CALENDAR, tz, utc(2023, 12, 31, 10))
        january = period_containing(terms, terms.starts_at)
        assert (january.start, january.end) == (utc(2023, 12, 31, 10), utc(2024, 1, 31, 10))
        assert january.is_full
        # Jan 31 12:00 UTC is already Feb 1st, 02:00 on Kiritimati
        february = period_containing(terms, utc(2024, 1, 31, 12))
        assert february.start == utc(2024, 1, 31, 10)

    def test_kiritimati_anniversary_uses_the_local_day(self) -> None:
        tz = "Pacific/Kiritimati"
        terms = SubscriptionTerms(Interval.MONTH, Anchor.ANNIVERSARY, tz, utc(2024, 1, 30, 11))
        assert starts(terms, 3) == [date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31)]
        assert period_containing(terms, utc(2024, 3, 1)).start == utc(2024, 2, 28, 10)

    def test_a_missing_midnight_starts_the_day_when_clocks_jump(self) -> None:
        tz = zone("America/Santiago")  # 2024-09-08 00:00 does not exist: clocks go to 01:00
        assert local_midnight(date(2024, 9, 8), tz) == utc(2024, 9, 8, 4)
        terms = SubscriptionTerms(
            Interval.WEEK, Anchor.CALENDAR, "America/Santiago", utc(2024, 1, 1)
        )
        # The week of Monday Sep 2 ends when Sep 9 begins; Sunday Sep 8 is 23 hours long.
        week = period_containing(terms, utc(2024, 9, 8, 12))
        assert week.end - week.start == timedelta(days=7) - timedelta(hours=1)


class TestFixedTermsAndErrors:
    def test_fixed_term_clips_the_last_period(self) -> None:
        terms = SubscriptionTerms(
            Interval.MONTH, Anchor.CALENDAR, "UTC", utc(2024, 1, 1), ends_at=utc(2024, 3, 11)
        )
        march = period_containing(terms, utc(2024, 3, 5))
        assert (march.start, march.end, march.nominal_end) == (
            utc(2024, 3, 1),
            utc(2024, 3, 11),
            utc(2024, 4, 1),
        )
        assert next_period(terms, march) is None
        with pytest.raises(InstantOutsideTerm):
            period_containing(terms, utc(2024, 3, 11))

    def test_an_instant_before_the_start_is_refused(self) -> None:
        terms = SubscriptionTerms(Interval.MONTH, Anchor.CALENDAR, "UTC", utc(2024, 1, 15))
        with pytest.raises(InstantOutsideTerm) as caught:
            period_containing(terms, utc(2024, 1, 14))
        assert caught.value.status == 422
        assert caught.value.code == "instant_outside_subscription_term"

    def test_naive_instants_are_refused(self) -> None:
        terms = SubscriptionTerms(Interval.MONTH, Anchor.CALENDAR, "UTC", utc(2024, 1, 15))
        with pytest.raises(ValueError, match="timezone-aware"):
            period_containing(terms, datetime(2024, 2, 1))
        with pytest.raises(ValueError, match="timezone-aware"):
            SubscriptionTerms(Interval.MONTH, Anchor.CALENDAR, "UTC", datetime(2024, 2, 1))

    @pytest.mark.parametrize("name", ["Mars/Olympus", "europe/paris", "../etc/passwd", ""])
    def test_unknown_timezones_are_refused(self, name: str) -> None:
        with pytest.raises(InvalidSubscriptionTerms) as caught:
            SubscriptionTerms(Interval.MONTH, Anchor.CALENDAR, name, utc(2024, 1, 1))
        assert caught.value.code == "invalid_subscription_terms"

    def test_a_term_must_end_after_it_starts(self) -> None:
        with pytest.raises(InvalidSubscriptionTerms, match="must end after"):
            SubscriptionTerms(
                Interval.MONTH, Anchor.CALENDAR, "UTC", utc(2024, 1, 1), ends_at=utc(2024, 1, 1)
            )

    def test_a_period_must_be_well_formed(self) -> None:
        with pytest.raises(ValueError, match="nominal_start <= start < end"):
            BillingPeriod(utc(2024, 2, 1), utc(2024, 2, 1), utc(2024, 2, 1), utc(2024, 3, 1))


class TestPeriodsBetween:
    terms = SubscriptionTerms(Interval.MONTH, Anchor.CALENDAR, "UTC", utc(2024, 1, 15))

    def test_every_overlapping_period_in_order(self) -> None:
        found = periods_between(self.terms, utc(2024, 2, 10), utc(2024, 4, 1))
        assert [(p.start, p.end) for p in found] == [
            (utc(2024, 2, 1), utc(2024, 3, 1)),
            (utc(2024, 3, 1), utc(2024, 4, 1)),
        ]

    def test_starts_at_the_first_period_when_asked_from_before(self) -> None:
        found = periods_between(self.terms, utc(2023, 1, 1), utc(2024, 2, 1, 0, 0, 1))
        assert [p.start for p in found] == [utc(2024, 1, 15), utc(2024, 2, 1)]

    @pytest.mark.parametrize(
        ("start", "end"),
        [(utc(2024, 3, 1), utc(2024, 3, 1)), (utc(2024, 3, 2), utc(2024, 3, 1))],
    )
    def test_empty_span(self, start: datetime, end: datetime) -> None:
        assert periods_between(self.terms, start, end) == []

    def test_span_before_the_term(self) -> None:
        assert periods_between(self.terms, utc(2023, 1, 1), utc(2024, 1, 15)) == []

    def test_span_after_a_fixed_term(self) -> None:
        terms = SubscriptionTerms(
            Interval.MONTH, Anchor.CALENDAR, "UTC", utc(2024, 1, 1), ends_at=utc(2024, 3, 1)
        )
        assert periods_between(terms, utc(2024, 3, 1), utc(2025, 1, 1)) == []
        assert len(periods_between(terms, utc(2023, 1, 1), utc(2025, 1, 1))) == 2


# -- properties ---------------------------------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)


@st.composite
def subscription_terms(draw: st.DrawFn) -> SubscriptionTerms:
    starts_at = draw(instants)
    ends_at = draw(
        st.none() | st.builds(lambda d: starts_at + timedelta(days=d), st.integers(1, 2000))
    )
    return SubscriptionTerms(
        interval=draw(st.sampled_from(Interval)),
        anchor=draw(st.sampled_from(Anchor)),
        timezone=draw(st.sampled_from(ZONES)),
        starts_at=starts_at,
        ends_at=ends_at,
    )


def _first_periods(terms: SubscriptionTerms, count: int) -> list[BillingPeriod]:
    found: list[BillingPeriod] = []
    period: BillingPeriod | None = period_containing(terms, terms.starts_at)
    while period is not None and len(found) < count:
        found.append(period)
        period = next_period(terms, period)
    return found


@FAST
@given(subscription_terms())
def test_consecutive_periods_tile_time(terms: SubscriptionTerms) -> None:
    found = _first_periods(terms, 30)
    assert found[0].start == terms.starts_at
    for before, after in pairwise(found):
        assert before.end == after.start  # no gap, no overlap
    for period in found:
        assert period.start < period.end
        assert period_containing(terms, period.start) == period
        assert period_containing(terms, period.end - timedelta(microseconds=1)) == period
        # nominal boundaries are the first instant of a local day
        for boundary in (period.nominal_start, period.nominal_end):
            assert boundary == local_midnight(local_date(boundary, terms.tz), terms.tz)
    if terms.ends_at is not None and len(found) < 30:
        assert found[-1].end == terms.ends_at


@FAST
@given(subscription_terms(), st.data())
def test_period_containing_contains(terms: SubscriptionTerms, data: st.DataObject) -> None:
    horizon = terms.ends_at or terms.starts_at + timedelta(days=3000)
    offset = data.draw(st.integers(0, (horizon - terms.starts_at) // timedelta(seconds=1) - 1))
    instant = terms.starts_at + timedelta(seconds=offset)
    period = period_containing(terms, instant)
    assert period.start <= instant < period.end


@FAST
@given(subscription_terms(), st.integers(-200 * 86400, 900 * 86400), st.integers(1, 400 * 86400))
def test_periods_between_agrees_with_next_period(
    terms: SubscriptionTerms, offset: int, length: int
) -> None:
    start = terms.starts_at + timedelta(seconds=offset)
    end = start + timedelta(seconds=length)
    expected = []
    period: BillingPeriod | None = period_containing(terms, terms.starts_at)
    while period is not None and period.start < end:
        if period.end > start:
            expected.append(period)
        period = next_period(terms, period)
    assert periods_between(terms, start, end) == expected


@FAST
@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2040, 1, 1)),
    st.sampled_from(ZONES),
)
def test_monthly_anniversary_returns_to_the_anchor_day(start: date, tz: str) -> None:
    terms = SubscriptionTerms(
        Interval.MONTH, Anchor.ANNIVERSARY, tz, local_midnight(start, zone(tz)) + timedelta(hours=3)
    )
    for day in starts(terms, 14):
        last = (date(day.year + day.month // 12, day.month % 12 + 1, 1) - timedelta(days=1)).day
        assert day.day == min(start.day, last)
