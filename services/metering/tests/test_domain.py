"""Aggregation over windows: every aggregation worked out by hand, then properties."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_metering import domain
from billing_metering.domain import (
    InvalidWindow,
    Window,
    WindowSize,
    aggregate,
    deduplicate,
    epoch_ms,
    opening_state,
    usage_by_window,
    windows,
)
from billing_metering.meters import MeterDefinition, MeteredEvent, SetOperation

ADD, REMOVE = SetOperation.ADD, SetOperation.REMOVE


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def meter(aggregation: str, **overrides: Any) -> MeterDefinition:
    data: dict[str, Any] = {
        "key": "m",
        "name": "m",
        "event_types": ["t"],
        "aggregation": aggregation,
        "value_property": None if aggregation == "count" else "v",
    }
    data.update(overrides)
    return MeterDefinition.model_validate(data)


def ev(
    event_id: str,
    at: datetime,
    value: Decimal | int | str = 0,
    item: str = "",
    operation: SetOperation | None = None,
) -> MeteredEvent:
    return MeteredEvent("m", "cus_1", event_id, at, (), Decimal(value), item, operation)


COUNT = meter("count")
SUM = meter("sum")
MAX = meter("max")
MIN = meter("min")
UNIQUE = meter("unique_count")
LATEST = meter("latest")
LATEST_CARRIED = meter("latest", carry_over=True)
WEIGHTED = meter("weighted_sum")
WEIGHTED_CARRIED = meter("weighted_sum", carry_over=True)
SET = meter("unique_count", operation_property="op")
SET_CARRIED = meter("unique_count", operation_property="op", carry_over=True)
ALL_METERS = [
    COUNT,
    SUM,
    MAX,
    MIN,
    UNIQUE,
    LATEST,
    LATEST_CARRIED,
    WEIGHTED,
    WEIGHTED_CARRIED,
    SET,
    SET_CARRIED,
]

JAN_1 = Window(utc(2024, 1, 1), utc(2024, 1, 2))
DAY_EVENTS = [
    ev("e0", utc(2023, 12, 31, 23, 59, 59, 999_000), 50, "z"),  # before the window
    ev("e1", utc(2024, 1, 1), 5, "a"),  # exactly at the start: counts
    ev("e2", utc(2024, 1, 1, 6), "2.5", "b"),
    ev("e3", utc(2024, 1, 1, 12), -1, "a"),
    ev("e4", utc(2024, 1, 2), 100, "y"),  # exactly at the end: the next window's
]


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(domain, raise_on_error=False).failed == 0


# -- every aggregation, by hand --------------------------------------------------------------


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        (COUNT, "3"),
        (SUM, "6.5"),
        (MAX, "5"),
        (MIN, "-1"),
        (UNIQUE, "2"),
        (LATEST, "-1"),
        # 5 for 6 h, 2.5 for 6 h, -1 for 12 h: (30 + 15 - 12) / 24
        (WEIGHTED, "1.375"),
    ],
)
def test_each_aggregation_over_a_half_open_window(
    definition: MeterDefinition, expected: str
) -> None:
    assert aggregate(definition, DAY_EVENTS, JAN_1) == Decimal(expected)


@pytest.mark.parametrize("definition", [COUNT, SUM, MAX, MIN, UNIQUE, LATEST, WEIGHTED, SET])
def test_an_empty_window_is_zero(definition: MeterDefinition) -> None:
    assert aggregate(definition, [], JAN_1) == 0
    assert aggregate(definition, [DAY_EVENTS[0], DAY_EVENTS[-1]], JAN_1) == 0


def test_sums_are_exact_past_28_digits() -> None:
    big = "99999999999999999999999999.999999999999"
    events = [ev(f"e{i}", utc(2024, 1, 1, i), big) for i in range(3)]
    assert aggregate(SUM, events, JAN_1) == Decimal("299999999999999999999999999.999999999997")


def test_max_and_min_compare_numbers_not_text() -> None:
    events = [ev("a", utc(2024, 1, 1), "9"), ev("b", utc(2024, 1, 1, 1), "10.5")]
    assert aggregate(MAX, events, JAN_1) == Decimal("10.5")
    assert aggregate(MIN, events, JAN_1) == 9


class TestLatest:
    def test_out_of_order_arrival_does_not_matter(self) -> None:
        arrived = [DAY_EVENTS[3], DAY_EVENTS[1], DAY_EVENTS[2]]
        assert aggregate(LATEST, arrived, JAN_1) == -1

    def test_a_tie_on_timestamp_goes_to_the_greater_event_id(self) -> None:
        noon = utc(2024, 1, 1, 12)
        events = [ev("b", noon, 7), ev("a", noon, 9)]
        assert aggregate(LATEST, events, JAN_1) == 7
        assert aggregate(LATEST, list(reversed(events)), JAN_1) == 7

    def test_with_carry_over_an_empty_window_keeps_the_carried_value(self) -> None:
        assert aggregate(LATEST_CARRIED, [], JAN_1, carried_level=Decimal(4)) == 4
        assert aggregate(LATEST_CARRIED, DAY_EVENTS, JAN_1, carried_level=Decimal(4)) == -1
        assert aggregate(LATEST, [], JAN_1) == 0


class TestWeightedSum:
    """Seats: 10 from 1 January, 20 from 16 January, 5 from 15 February (2024, leap year)."""

    SEATS = [
        ev("s1", utc(2024, 1, 1), 10),
        ev("s2", utc(2024, 1, 16), 20),
        ev("s3", utc(2024, 2, 15), 5),
    ]
    JANUARY = Window(utc(2024, 1, 1), utc(2024, 2, 1))
    FEBRUARY = Window(utc(2024, 2, 1), utc(2024, 3, 1))
    MARCH = Window(utc(2024, 3, 1), utc(2024, 4, 1))

    def test_january_averages_the_seat_count_over_the_month(self) -> None:
        # (10 x 15 days + 20 x 16 days) / 31 days = 15.1612903225806451..., half-up at 12 decimals
        assert aggregate(WEIGHTED_CARRIED, self.SEATS, self.JANUARY) == Decimal("15.161290322581")

    def test_the_level_carries_across_the_period_boundary(self) -> None:
        carried = opening_state(WEIGHTED_CARRIED, self.SEATS, self.FEBRUARY.start)
        assert carried == 20
        # (20 x 14 days + 5 x 15 days) / 29 days = 12.2413793103448275...
        february = aggregate(WEIGHTED_CARRIED, self.SEATS, self.FEBRUARY, carried_level=carried)
        assert february == Decimal("12.241379310345")
        march_opening = opening_state(WEIGHTED_CARRIED, self.SEATS, self.MARCH.start)
        assert march_opening == 5
        assert aggregate(WEIGHTED_CARRIED, [], self.MARCH, carried_level=march_opening) == 5

    def test_month_by_month_carries_the_level(self) -> None:
        months = windows(utc(2024, 1, 1), utc(2024, 4, 1), WindowSize.MONTH)
        assert [value for _, value in usage_by_window(WEIGHTED_CARRIED, self.SEATS, months)] == [
            Decimal("15.161290322581"),
            Decimal("12.241379310345"),
            Decimal(5),
        ]

    def test_the_carried_level_is_the_opening_state_of_a_period_with_no_history(self) -> None:
        february_only = [self.SEATS[2]]
        assert aggregate(
            WEIGHTED_CARRIED, february_only, self.FEBRUARY, carried_level=Decimal(20)
        ) == Decimal("12.241379310345")

    def test_without_carry_over_the_level_is_zero_until_the_first_event(self) -> None:
        # 0 for 15 days then 20 for 16 days
        assert aggregate(WEIGHTED, self.SEATS[1:2], self.JANUARY) == Decimal("10.322580645161")
        assert opening_state(WEIGHTED, self.SEATS, self.FEBRUARY.start) is None

    def test_rounding_is_half_up_at_twelve_decimals(self) -> None:
        third = Window(utc(2024, 1, 1), utc(2024, 1, 1, 3))
        one_hour = [ev("a", utc(2024, 1, 1, 2), 1)]
        two_hours = [ev("a", utc(2024, 1, 1, 1), 1)]
        assert aggregate(WEIGHTED, one_hour, third) == Decimal("0.333333333333")
        assert aggregate(WEIGHTED, two_hours, third) == Decimal("0.666666666667")
        assert aggregate(WEIGHTED, [ev("a", utc(2024, 1, 1, 2), -1)], third) == Decimal(
            "-0.333333333333"
        )

    def test_events_at_one_instant_set_the_level_of_the_greater_event_id(self) -> None:
        noon = utc(2024, 1, 1, 12)
        events = [ev("b", noon, 4), ev("a", noon, 100)]
        assert aggregate(WEIGHTED, events, JAN_1) == 2  # 0 for 12 h, then 4 for 12 h

    def test_millisecond_resolution(self) -> None:
        second = Window(utc(2024, 1, 1), utc(2024, 1, 1, 0, 0, 1))
        events = [ev("a", utc(2024, 1, 1, 0, 0, 0, 250_000), 8)]
        assert aggregate(WEIGHTED, events, second) == 6


class TestUniqueCount:
    def test_counts_distinct_items_across_batches(self) -> None:
        first_batch = [
            ev("e1", utc(2024, 1, 1, 1), item="ann"),
            ev("e2", utc(2024, 1, 1, 2), item="bob"),
        ]
        second_batch = [
            ev("e3", utc(2024, 1, 1, 3), item="ann"),
            ev("e4", utc(2024, 1, 1, 4), item="cat"),
        ]
        assert aggregate(UNIQUE, first_batch, JAN_1) == 2
        assert aggregate(UNIQUE, first_batch + second_batch, JAN_1) == 3

    USERS = [
        ev("u1", utc(2024, 1, 5), item="ann", operation=ADD),
        ev("u2", utc(2024, 1, 10), item="bob", operation=ADD),
        ev("u3", utc(2024, 1, 20), item="ann", operation=REMOVE),
        ev("u4", utc(2024, 2, 3), item="cat", operation=ADD),
        ev("u5", utc(2024, 2, 3), item="bob", operation=REMOVE),
        ev("u6", utc(2024, 2, 10), item="ann", operation=ADD),
    ]

    def test_a_set_is_counted_at_the_end_of_the_window(self) -> None:
        january = Window(utc(2024, 1, 1), utc(2024, 2, 1))
        assert aggregate(SET, self.USERS, january) == 1  # {bob}

    def test_a_recurring_set_carries_into_the_next_period(self) -> None:
        months = windows(utc(2024, 1, 1), utc(2024, 4, 1), WindowSize.MONTH)
        assert [str(value) for _, value in usage_by_window(SET_CARRIED, self.USERS, months)] == [
            "1",  # {bob}
            "2",  # {bob} + cat - bob + ann
            "2",  # nothing happened: {cat, ann} carried
        ]
        assert opening_state(SET_CARRIED, self.USERS, utc(2024, 3, 1)) == frozenset({"cat", "ann"})

    def test_without_carry_over_each_window_starts_empty(self) -> None:
        months = windows(utc(2024, 1, 1), utc(2024, 4, 1), WindowSize.MONTH)
        assert [str(value) for _, value in usage_by_window(SET, self.USERS, months)] == ["1", "2"]

    def test_removing_an_absent_item_changes_nothing(self) -> None:
        events = [ev("x", utc(2024, 1, 1, 1), item="zed", operation=REMOVE)]
        assert aggregate(SET_CARRIED, events, JAN_1, carried_level=frozenset({"ann"})) == 1

    def test_operations_at_one_instant_apply_in_event_id_order(self) -> None:
        noon = utc(2024, 1, 1, 12)
        add_then_remove = [
            ev("2", noon, item="ann", operation=REMOVE),
            ev("1", noon, item="ann", operation=ADD),
        ]
        assert aggregate(SET, add_then_remove, JAN_1) == 0


class TestDuplicates:
    def test_a_redelivered_event_counts_once(self) -> None:
        assert aggregate(COUNT, DAY_EVENTS + DAY_EVENTS, JAN_1) == 3
        assert aggregate(SUM, DAY_EVENTS + DAY_EVENTS, JAN_1) == Decimal("6.5")

    def test_the_first_copy_wins(self) -> None:
        first = ev("e", utc(2024, 1, 1, 1), 1)
        second = ev("e", utc(2024, 1, 1, 2), 99)
        assert deduplicate([first, second]) == [first]
        assert aggregate(SUM, [first, second], JAN_1) == 1

    def test_the_same_id_of_another_customer_is_another_event(self) -> None:
        mine = ev("e", utc(2024, 1, 1, 1), 1)
        theirs = MeteredEvent("m", "cus_2", "e", utc(2024, 1, 1, 1), (), Decimal(1))
        assert len(deduplicate([mine, theirs])) == 2


class TestMisuse:
    def test_a_meter_without_carry_over_takes_no_carried_level(self) -> None:
        with pytest.raises(ValueError, match="does not carry over"):
            aggregate(WEIGHTED, [], JAN_1, carried_level=Decimal(1))

    def test_the_carried_level_has_the_meters_kind(self) -> None:
        with pytest.raises(TypeError):
            aggregate(SET_CARRIED, [], JAN_1, carried_level=Decimal(1))
        with pytest.raises(TypeError):
            aggregate(LATEST_CARRIED, [], JAN_1, carried_level=frozenset({"a"}))

    def test_events_of_another_meter_are_refused(self) -> None:
        other = MeteredEvent("other", "cus_1", "e", utc(2024, 1, 1), (), Decimal(1))
        with pytest.raises(ValueError, match="is for meter 'other'"):
            aggregate(COUNT, [other], JAN_1)


def test_usage_by_window_reports_windows_with_events_or_a_carried_level() -> None:
    hours = windows(utc(2024, 1, 1), utc(2024, 1, 1, 4), WindowSize.HOUR)
    events = [ev("a", utc(2024, 1, 1, 1, 30), 3)]
    assert [(w.start.hour, str(v)) for w, v in usage_by_window(LATEST, events, hours)] == [(1, "3")]
    carried = usage_by_window(LATEST_CARRIED, events, hours)
    assert [(w.start.hour, str(v)) for w, v in carried] == [(1, "3"), (2, "3"), (3, "3")]
    from_before = usage_by_window(LATEST_CARRIED, events, hours, carried_level=Decimal(1))
    assert [str(v) for _, v in from_before] == ["1", "3", "3", "3"]


# -- windows --------------------------------------------------------------------------------


class TestWindows:
    def test_none_keeps_the_range_whole(self) -> None:
        assert windows(utc(2024, 1, 1), utc(2024, 1, 5), None) == [
            Window(utc(2024, 1, 1), utc(2024, 1, 5))
        ]

    @pytest.mark.parametrize(
        ("size", "start", "end", "count", "first_end"),
        [
            (
                WindowSize.MINUTE,
                utc(2024, 1, 1, 0, 0, 30),
                utc(2024, 1, 1, 0, 3),
                3,
                utc(2024, 1, 1, 0, 1),
            ),
            (WindowSize.HOUR, utc(2024, 1, 1), utc(2024, 1, 2), 24, utc(2024, 1, 1, 1)),
            (WindowSize.DAY, utc(2024, 2, 27, 12), utc(2024, 3, 2), 4, utc(2024, 2, 28)),
            (WindowSize.MONTH, utc(2023, 12, 15), utc(2024, 3, 1), 3, utc(2024, 1, 1)),
            (WindowSize.MONTH, utc(2024, 1, 1), utc(2025, 1, 1), 12, utc(2024, 2, 1)),
        ],
    )
    def test_splits_at_utc_calendar_boundaries(
        self, size: WindowSize, start: datetime, end: datetime, count: int, first_end: datetime
    ) -> None:
        split = windows(start, end, size)
        assert len(split) == count
        assert split[0] == Window(start, first_end)
        assert split[-1].end == end

    def test_february_of_a_leap_year_has_29_days(self) -> None:
        february = windows(utc(2024, 2, 1), utc(2024, 3, 1), WindowSize.MONTH)[0]
        assert february.duration_ms == 29 * 86_400_000

    def test_bounds_in_another_timezone_are_kept_as_instants(self) -> None:
        new_york = timezone(timedelta(hours=-5))
        window = Window(
            datetime(2024, 1, 1, tzinfo=new_york), datetime(2024, 2, 1, tzinfo=new_york)
        )
        assert window.start == utc(2024, 1, 1, 5)
        assert window.start.tzinfo is UTC

    @pytest.mark.parametrize(
        ("start", "end"),
        [
            (utc(2024, 1, 2), utc(2024, 1, 1)),
            (utc(2024, 1, 1), utc(2024, 1, 1)),
            (datetime(2024, 1, 1), utc(2024, 1, 2)),
            (utc(2024, 1, 1, 0, 0, 0, 1), utc(2024, 1, 2)),
        ],
    )
    def test_refuses_an_invalid_window(self, start: datetime, end: datetime) -> None:
        with pytest.raises(InvalidWindow) as raised:
            Window(start, end)
        assert raised.value.code == "invalid_window"

    def test_refuses_too_many_windows(self) -> None:
        with pytest.raises(InvalidWindow, match="more than"):
            windows(utc(2000, 1, 1), utc(2024, 1, 1), WindowSize.MINUTE)

    def test_half_open_membership(self) -> None:
        assert JAN_1.start in JAN_1
        assert JAN_1.end not in JAN_1

    def test_epoch_ms_is_exact(self) -> None:
        assert epoch_ms(utc(2024, 1, 1, 0, 0, 0, 123_000)) == 1_704_067_200_123


# -- properties -----------------------------------------------------------------------------

RANGE = Window(utc(2024, 1, 1), utc(2024, 1, 11))
SPAN_MS = RANGE.duration_ms


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    """Instants around the range, often on its edges and on whole hours."""
    offset = draw(
        st.one_of(
            st.integers(-2 * 86_400_000, SPAN_MS + 2 * 86_400_000),
            st.integers(-48, 12 * 24).map(lambda hour: hour * 3_600_000),
            st.sampled_from([0, SPAN_MS, SPAN_MS - 1, -1]),
        )
    )
    return RANGE.start + timedelta(milliseconds=offset)


values = st.decimals(
    min_value=-1000, max_value=1000, places=3, allow_nan=False, allow_infinity=False
)


@st.composite
def event_lists(draw: st.DrawFn) -> list[MeteredEvent]:
    count = draw(st.integers(0, 14))
    return [
        ev(
            f"e{index:02d}",
            draw(instants()),
            draw(values),
            draw(st.sampled_from("abcde")),
            draw(st.sampled_from([ADD, ADD, REMOVE])),
        )
        for index in range(count)
    ]


def carried_for(
    definition: MeterDefinition, data: st.DataObject
) -> Decimal | frozenset[str] | None:
    if not definition.carry_over:
        return None
    if definition.tracks_set:
        return frozenset(data.draw(st.sets(st.sampled_from("abcxy"))))
    return data.draw(values)


@settings(max_examples=80)
@given(st.sampled_from(ALL_METERS), event_lists(), st.randoms(use_true_random=False), st.data())
def test_the_order_of_events_never_changes_an_aggregate(
    definition: MeterDefinition, events: list[MeteredEvent], rnd: Any, data: st.DataObject
) -> None:
    carried = carried_for(definition, data)
    shuffled = list(events)
    rnd.shuffle(shuffled)
    assert aggregate(definition, shuffled, RANGE, carried_level=carried) == aggregate(
        definition, events, RANGE, carried_level=carried
    )


@settings(max_examples=80)
@given(st.sampled_from(ALL_METERS), event_lists(), st.data())
def test_redelivered_events_never_change_an_aggregate(
    definition: MeterDefinition, events: list[MeteredEvent], data: st.DataObject
) -> None:
    carried = carried_for(definition, data)
    again = data.draw(st.lists(st.sampled_from(events), max_size=10)) if events else []
    position = data.draw(st.integers(0, len(events)))
    delivered = events[:position] + again + events[position:]
    assert aggregate(definition, delivered, RANGE, carried_level=carried) == aggregate(
        definition, events, RANGE, carried_level=carried
    )


@st.composite
def split_ranges(draw: st.DrawFn) -> list[Window]:
    cuts = sorted(draw(st.sets(st.integers(1, SPAN_MS - 1), max_size=4)))
    bounds = [RANGE.start, *(RANGE.start + timedelta(milliseconds=cut) for cut in cuts), RANGE.end]
    return [Window(a, b) for a, b in pairwise(bounds)]


@settings(max_examples=80)
@given(event_lists(), split_ranges())
def test_count_sum_max_min_of_a_window_combine_its_sub_windows(
    events: list[MeteredEvent], parts: list[Window]
) -> None:
    assert aggregate(COUNT, events, RANGE) == sum(aggregate(COUNT, events, p) for p in parts)
    assert aggregate(SUM, events, RANGE) == sum(aggregate(SUM, events, p) for p in parts)
    non_empty = [p for p in parts if any(e.timestamp in p for e in events)]
    if non_empty:
        assert aggregate(MAX, events, RANGE) == max(aggregate(MAX, events, p) for p in non_empty)
        assert aggregate(MIN, events, RANGE) == min(aggregate(MIN, events, p) for p in non_empty)
    else:
        assert aggregate(MAX, events, RANGE) == aggregate(MIN, events, RANGE) == 0


@settings(max_examples=80)
@given(event_lists(), split_ranges(), st.data())
def test_weighted_sum_of_a_window_is_the_duration_weighted_mean_of_its_sub_windows(
    events: list[MeteredEvent], parts: list[Window], data: st.DataObject
) -> None:
    carried = carried_for(WEIGHTED_CARRIED, data)
    assert isinstance(carried, Decimal)
    whole = aggregate(WEIGHTED_CARRIED, events, RANGE, carried_level=carried)
    in_range = [e for e in events if e.timestamp >= RANGE.start]
    combined = sum(
        Fraction(
            aggregate(
                WEIGHTED_CARRIED,
                events,
                part,
                carried_level=opening_state(
                    WEIGHTED_CARRIED, in_range, part.start, carried_level=carried
                ),
            )
        )
        * part.duration_ms
        for part in parts
    )
    # each value is rounded once, by at most half of 10^-12
    assert abs(Fraction(whole) * RANGE.duration_ms - combined) <= Fraction(
        RANGE.duration_ms, 10**12
    )


@settings(max_examples=80)
@given(
    st.sampled_from([LATEST_CARRIED, WEIGHTED_CARRIED, SET_CARRIED]),
    event_lists(),
    instants(),
    instants(),
)
def test_carrying_state_period_by_period_equals_reading_all_history(
    definition: MeterDefinition, events: list[MeteredEvent], first: datetime, second: datetime
) -> None:
    first, second = min(first, second), max(first, second)
    at_first = opening_state(definition, events, first)
    later = [e for e in events if e.timestamp >= first]
    assert opening_state(definition, later, second, carried_level=at_first) == opening_state(
        definition, events, second
    )


@settings(max_examples=80, deadline=None)
@given(instants(), st.integers(1, 400 * 86_400_000), st.sampled_from([*WindowSize, None]))
def test_windows_tile_the_range_on_calendar_boundaries(
    start: datetime, length_ms: int, size: WindowSize | None
) -> None:
    end = start + timedelta(milliseconds=length_ms)
    if size is WindowSize.MINUTE:
        end = start + timedelta(milliseconds=length_ms % (2 * 86_400_000) + 1)
    if size is WindowSize.HOUR:
        end = start + timedelta(milliseconds=length_ms % (60 * 86_400_000) + 1)
    split = windows(start, end, size)
    assert split[0].start == start
    assert split[-1].end == end
    assert all(a.end == b.start for a, b in pairwise(split))
    for window in split[1:]:
        aligned = window.start
        assert (aligned.second, aligned.microsecond) == (0, 0)
        if size in (WindowSize.HOUR, WindowSize.DAY, WindowSize.MONTH):
            assert aligned.minute == 0
        if size in (WindowSize.DAY, WindowSize.MONTH):
            assert aligned.hour == 0
        if size is WindowSize.MONTH:
            assert aligned.day == 1
