"""The usage store on a real ClickHouse engine: chdb in this process, and a server when
`CLICKHOUSE_URL` is set. Every result is compared with the pure reference, `domain`."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing_common.ids import uuid7
from billing_metering.domain import WindowSize, usage_by_window, windows
from billing_metering.meters import (
    InvalidEventValue,
    MeterDefinition,
    UsageEvent,
    measure_all,
)
from billing_metering.store import (
    IngestOutcome,
    InvalidUsageQuery,
    MeasuredEvent,
    UsagePoint,
    UsageStore,
)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


INGESTED_AT = utc(2024, 6, 1)


def ingest(
    store: UsageStore,
    tenant: str,
    events: Sequence[UsageEvent],
    meters: Sequence[MeterDefinition],
    *,
    source: str = "",
) -> IngestOutcome:
    return store.insert_events(tenant, events, meters, ingested_at=INGESTED_AT, source=source)


@pytest.fixture(scope="module", params=["chdb", "server"])
def store(request: pytest.FixtureRequest, chdb_store: UsageStore) -> Iterator[UsageStore]:
    """A migrated store for the module: chdb (one directory per process), or a fresh database
    on the server. Tests keep apart by tenant (`tenant`), as tenants do in production."""
    if request.param == "chdb":
        yield chdb_store
        return
    else:
        url = os.environ.get("CLICKHOUSE_URL")
        if not url:
            pytest.skip("CLICKHOUSE_URL is not set: no ClickHouse server to run against")
        opened = UsageStore.connect(url, database=f"metering_test_{uuid7().hex[-12:]}")
    opened.migrate()
    try:
        yield opened
    finally:
        opened._client.command(f"DROP DATABASE IF EXISTS {opened.database}")
        opened.close()


@pytest.fixture
def tenant() -> str:
    """A tenant no other test uses."""
    return f"ten_{uuid7().hex[-12:]}"


def definition(key: str, aggregation: str, **overrides: Any) -> MeterDefinition:
    data: dict[str, Any] = {
        "key": key,
        "name": key,
        "event_types": ["use"],
        "aggregation": aggregation,
        "value_property": None if aggregation == "count" else "v",
        "group_by": ["region"],
    }
    data.update(overrides)
    return MeterDefinition.model_validate(data)


METERS = [
    definition("calls", "count"),
    definition("total", "sum"),
    definition(
        "paid_total",
        "sum",
        filters=[{"property": "tier", "operator": "not_in", "values": ["free"]}],
    ),
    definition("peak", "max"),
    definition("low", "min"),
    definition("users", "unique_count", value_property="item"),
    definition("last", "latest"),
    definition("level", "latest", carry_over=True),
    definition("gauge", "weighted_sum"),
    definition("seats", "weighted_sum", carry_over=True),
    definition("members", "unique_count", value_property="item", operation_property="op"),
    definition(
        "roster", "unique_count", value_property="item", operation_property="op", carry_over=True
    ),
]
BY_KEY = {m.key: m for m in METERS}


def use(
    event_id: str,
    at: datetime,
    value: str | int = 1,
    *,
    customer: str = "cus_a",
    region: str = "eu",
    item: str = "ann",
    op: str = "add",
    tier: str = "pro",
) -> UsageEvent:
    return UsageEvent(
        id=event_id,
        customer=customer,
        type="use",
        timestamp=at,
        properties={"v": value, "region": region, "item": item, "op": op, "tier": tier},
    )


def values_of(points: Sequence[UsagePoint]) -> list[tuple[str, tuple[str, ...], datetime, str]]:
    return [(p.customer, p.group, p.window_start, str(p.value)) for p in points]


# -- the reference --------------------------------------------------------------------------


def reference_usage(
    meter: MeterDefinition,
    deliveries: Sequence[UsageEvent],
    customers: Sequence[str],
    start: datetime,
    end: datetime,
    size: WindowSize | None,
    group_filter: dict[str, list[str]] | None = None,
) -> list[UsagePoint]:
    """What `UsageStore.usage` must return, from `domain` alone."""
    first: dict[tuple[str, str], UsageEvent] = {}
    for event in deliveries:
        first.setdefault((event.customer, event.id), event)
    series: dict[tuple[str, tuple[str, ...]], list[Any]] = defaultdict(list)
    for event in first.values():
        for reading in measure_all([meter], event):
            if reading.customer not in customers:
                continue
            if any(
                reading.group[meter.group_by.index(d)] not in allowed
                for d, allowed in (group_filter or {}).items()
            ):
                continue
            series[(reading.customer, reading.group)].append(reading)
    in_windows = windows(start, end, size)
    points = [
        UsagePoint(customer, group, window.start, window.end, value)
        for (customer, group), readings in series.items()
        for window, value in usage_by_window(meter, readings, in_windows)
    ]
    return sorted(points, key=lambda p: (p.customer, p.group, p.window_start))


# -- ingestion ------------------------------------------------------------------------------


class TestInsertEvents:
    def test_migrate_is_idempotent(self, store: UsageStore, tenant: str) -> None:
        store.migrate()
        store.migrate()

    def test_repeats_within_a_batch_across_batches_and_redeliveries_count_once(
        self, store: UsageStore, tenant: str
    ) -> None:
        calls = [BY_KEY["calls"], BY_KEY["total"]]
        first = ingest(
            store,
            tenant,
            [
                use("e1", utc(2024, 1, 1, 1)),
                use("e2", utc(2024, 1, 1, 2)),
                use("e1", utc(2024, 1, 1, 1)),
            ],
            calls,
        )
        assert first.accepted == (("cus_a", "e1"), ("cus_a", "e2"))
        assert first.duplicates == (("cus_a", "e1"),)
        assert first.rows_written == 4
        second = ingest(
            store, tenant, [use("e2", utc(2024, 1, 1, 2)), use("e3", utc(2024, 1, 1, 3))], calls
        )
        assert second.accepted == (("cus_a", "e3"),)
        assert second.duplicates == (("cus_a", "e2"),)
        redelivered = ingest(store, tenant, [use("e1", utc(2024, 1, 1, 1))], calls)
        assert redelivered.accepted == ()
        assert redelivered.rows_written == 0
        for from_rollup in (True, False):
            points = store.usage(
                tenant,
                BY_KEY["calls"],
                ["cus_a"],
                utc(2024, 1, 1),
                utc(2024, 1, 2),
                from_rollup=from_rollup,
            )
            assert values_of(points) == [("cus_a", ("eu",), utc(2024, 1, 1), "3")]

    def test_a_redelivered_message_is_accepted_again_without_a_second_insert(
        self, store: UsageStore, tenant: str
    ) -> None:
        calls = [BY_KEY["calls"]]
        first = ingest(store, tenant, [use("e1", utc(2024, 1, 1, 1))], calls, source="t/0/7")
        again = ingest(store, tenant, [use("e1", utc(2024, 1, 1, 1))], calls, source="t/0/7")
        resent = ingest(store, tenant, [use("e1", utc(2024, 1, 1, 1))], calls, source="t/1/9")
        assert (first.accepted, first.rows_written) == ((("cus_a", "e1"),), 1)
        assert (again.accepted, again.rows_written) == ((("cus_a", "e1"),), 0)
        assert (resent.accepted, resent.duplicates) == ((), (("cus_a", "e1"),))
        points = store.usage(tenant, BY_KEY["calls"], ["cus_a"], utc(2024, 1, 1), utc(2024, 1, 2))
        assert [p.value for p in points] == [1]

    def test_record_takes_readings_measured_by_the_caller(
        self, store: UsageStore, tenant: str
    ) -> None:
        event = use("e1", utc(2024, 1, 1, 1), 4)
        readings = tuple(measure_all([BY_KEY["total"]], event))
        outcome = store.record(
            tenant,
            [MeasuredEvent("cus_a", "e1", "t/0/1", readings)],
            ingested_at=INGESTED_AT,
        )
        assert outcome.rows_written == 1
        assert store.period_aggregates(
            tenant, "cus_a", [BY_KEY["total"]], utc(2024, 1, 1), utc(2024, 2, 1)
        ) == {("total", ("eu",)): Decimal(4)}

    def test_the_first_copy_of_a_conflicting_repeat_wins(
        self, store: UsageStore, tenant: str
    ) -> None:
        ingest(store, tenant, [use("e1", utc(2024, 1, 1, 1), 5)], [BY_KEY["total"]])
        ingest(store, tenant, [use("e1", utc(2024, 1, 1, 1), 500)], [BY_KEY["total"]])
        assert store.period_aggregates(
            tenant, "cus_a", [BY_KEY["total"]], utc(2024, 1, 1), utc(2024, 2, 1)
        ) == {("total", ("eu",)): Decimal(5)}

    def test_an_event_id_is_per_customer_and_per_tenant(
        self, store: UsageStore, tenant: str
    ) -> None:
        calls = [BY_KEY["calls"]]
        ingest(store, tenant, [use("e1", utc(2024, 1, 1, 1))], calls)
        other_customer = ingest(
            store, tenant, [use("e1", utc(2024, 1, 1, 1), customer="cus_b")], calls
        )
        other_tenant = ingest(store, tenant + "_2", [use("e1", utc(2024, 1, 1, 1))], calls)
        assert other_customer.accepted == (("cus_b", "e1"),)
        assert other_tenant.accepted == (("cus_a", "e1"),)

    def test_an_event_no_meter_counts_writes_nothing(self, store: UsageStore, tenant: str) -> None:
        ignored = UsageEvent(id="x", customer="cus_a", type="other", timestamp=utc(2024, 1, 1))
        outcome = ingest(store, tenant, [ignored], METERS)
        assert (outcome.accepted, outcome.rows_written) == ((("cus_a", "x"),), 0)

    def test_a_bad_event_writes_nothing_of_its_batch(self, store: UsageStore, tenant: str) -> None:
        bad = UsageEvent(
            id="bad", customer="cus_a", type="use", timestamp=utc(2024, 1, 1), properties={"v": 1.5}
        )
        with pytest.raises(InvalidEventValue):
            ingest(store, tenant, [use("good", utc(2024, 1, 1)), bad], [BY_KEY["total"]])
        assert (
            store.usage(tenant, BY_KEY["total"], ["cus_a"], utc(2024, 1, 1), utc(2024, 1, 2)) == []
        )

    def test_large_batches_check_repeats_in_chunks(self, store: UsageStore, tenant: str) -> None:
        batch = [use(f"e{i}", utc(2024, 1, 1) + timedelta(seconds=i)) for i in range(2500)]
        assert ingest(store, tenant, batch, [BY_KEY["calls"]]).rows_written == 2500
        again = ingest(store, tenant, batch[1000:], [BY_KEY["calls"]])
        assert (len(again.accepted), len(again.duplicates)) == (0, 1500)
        points = store.usage(tenant, BY_KEY["calls"], ["cus_a"], utc(2024, 1, 1), utc(2024, 1, 2))
        assert [p.value for p in points] == [2500]

    def test_changing_a_meters_filters_does_not_rewrite_history(
        self, store: UsageStore, tenant: str
    ) -> None:
        eu_only = definition(
            "calls", "count", filters=[{"property": "region", "operator": "equals", "value": "eu"}]
        )
        ingest(
            store,
            tenant,
            [use("e1", utc(2024, 1, 5), region="eu"), use("e2", utc(2024, 1, 6), region="us")],
            [eu_only],
        )
        us_only = definition(
            "calls", "count", filters=[{"property": "region", "operator": "equals", "value": "us"}]
        )
        ingest(
            store,
            tenant,
            [use("e3", utc(2024, 2, 5), region="eu"), use("e4", utc(2024, 2, 6), region="us")],
            [us_only],
        )
        january = store.period_aggregates(
            tenant, "cus_a", [us_only], utc(2024, 1, 1), utc(2024, 2, 1)
        )
        february = store.period_aggregates(
            tenant, "cus_a", [us_only], utc(2024, 2, 1), utc(2024, 3, 1)
        )
        assert january == {("calls", ("eu",)): Decimal(1)}
        assert february == {("calls", ("us",)): Decimal(1)}


# -- queries, by hand -----------------------------------------------------------------------


class TestUsage:
    EVENTS = [
        use("e0", utc(2023, 12, 31, 23, 59, 59, 999_000), 50, item="zed"),  # before the range
        use("e1", utc(2024, 1, 1), 5, item="ann"),  # exactly at the start: in
        use("e2", utc(2024, 1, 1, 6, 30), "2.5", item="bob"),
        use("e3", utc(2024, 1, 1, 12), -1, item="ann", region="us"),
        use("e4", utc(2024, 1, 2), 100, item="cat"),  # exactly at the end: out
    ]

    @pytest.mark.parametrize("from_rollup", [True, False])
    @pytest.mark.parametrize(
        ("key", "eu", "us"),
        [
            ("calls", "2", "1"),
            ("total", "7.5", "-1"),
            ("peak", "5", "-1"),
            ("low", "2.5", "-1"),
            ("users", "2", "1"),
            ("last", "2.5", "-1"),
            ("level", "2.5", "-1"),
            # eu: 5 for 6.5 h, then 2.5 for 17.5 h: 76.25 / 24; us: 0 for 12 h, then -1
            ("gauge", "3.177083333333", "-0.5"),
            # with carry-over eu opens at 50 (e0), replaced at the range's first instant
            ("seats", "3.177083333333", "-0.5"),
        ],
    )
    def test_each_aggregation_over_a_half_open_range(
        self, store: UsageStore, tenant: str, key: str, eu: str, us: str, from_rollup: bool
    ) -> None:
        ingest(store, tenant, self.EVENTS, METERS)
        points = store.usage(
            tenant,
            BY_KEY[key],
            ["cus_a"],
            utc(2024, 1, 1),
            utc(2024, 1, 2),
            from_rollup=from_rollup,
        )
        assert values_of(points) == [
            ("cus_a", ("eu",), utc(2024, 1, 1), eu),
            ("cus_a", ("us",), utc(2024, 1, 1), us),
        ]

    @pytest.mark.parametrize(
        ("size", "expected"),
        [
            (
                WindowSize.MINUTE,
                [
                    (utc(2024, 1, 1, 0, 0), "1"),
                    (utc(2024, 1, 1, 6, 30), "1"),
                    (utc(2024, 1, 1, 12), "1"),
                ],
            ),
            (
                WindowSize.HOUR,
                [(utc(2024, 1, 1, 0), "1"), (utc(2024, 1, 1, 6), "1"), (utc(2024, 1, 1, 12), "1")],
            ),
            (
                WindowSize.DAY,
                [(utc(2023, 12, 31), "1"), (utc(2024, 1, 1), "3"), (utc(2024, 1, 2), "1")],
            ),
            (WindowSize.MONTH, [(utc(2023, 12, 1), "1"), (utc(2024, 1, 1), "4")]),
            (None, [(utc(2023, 12, 1), "5")]),
        ],
    )
    @pytest.mark.parametrize("from_rollup", [True, False])
    def test_windows(
        self,
        store: UsageStore,
        tenant: str,
        size: WindowSize | None,
        expected: list[tuple[datetime, str]],
        from_rollup: bool,
    ) -> None:
        ingest(store, tenant, self.EVENTS, METERS)
        start = (
            utc(2023, 12, 1)
            if size in (WindowSize.MONTH, WindowSize.DAY, None)
            else utc(2024, 1, 1)
        )
        end = (
            utc(2024, 1, 1, 13) if size in (WindowSize.MINUTE, WindowSize.HOUR) else utc(2024, 2, 1)
        )
        points = store.usage(
            tenant, BY_KEY["calls"], ["cus_a"], start, end, window=size, from_rollup=from_rollup
        )
        totals: dict[datetime, Decimal] = defaultdict(Decimal)
        for point in points:
            totals[point.window_start] += point.value
        assert [(at, str(total)) for at, total in sorted(totals.items())] == expected

    def test_unaligned_bounds_read_the_events_at_millisecond_precision(
        self, store: UsageStore, tenant: str
    ) -> None:
        ingest(store, tenant, self.EVENTS, METERS)
        start, end = utc(2024, 1, 1, 6, 30, 0, 0), utc(2024, 1, 1, 12, 0, 0, 1000)
        points = store.usage(tenant, BY_KEY["calls"], ["cus_a"], start, end, window=WindowSize.HOUR)
        assert values_of(points) == [
            ("cus_a", ("eu",), utc(2024, 1, 1, 6, 30), "1"),
            ("cus_a", ("us",), utc(2024, 1, 1, 12), "1"),
        ]
        just_before = utc(2024, 1, 1, 11, 59, 59, 999_000)
        assert (
            store.usage(tenant, BY_KEY["calls"], ["cus_a"], just_before, utc(2024, 1, 1, 12)) == []
        )

    def test_group_filter(self, store: UsageStore, tenant: str) -> None:
        ingest(store, tenant, self.EVENTS, METERS)
        for from_rollup in (True, False):
            points = store.usage(
                tenant,
                BY_KEY["total"],
                ["cus_a"],
                utc(2024, 1, 1),
                utc(2024, 1, 2),
                group_filter={"region": ["us"]},
                from_rollup=from_rollup,
            )
            assert values_of(points) == [("cus_a", ("us",), utc(2024, 1, 1), "-1")]

    @pytest.mark.parametrize("group_filter", [{"tier": ["pro"]}, {"region": []}, {"region": "eu"}])
    def test_refuses_a_filter_on_what_the_meter_does_not_group_by(
        self, store: UsageStore, tenant: str, group_filter: Any
    ) -> None:
        with pytest.raises(InvalidUsageQuery):
            store.usage(
                tenant,
                BY_KEY["total"],
                ["cus_a"],
                utc(2024, 1, 1),
                utc(2024, 1, 2),
                group_filter=group_filter,
            )

    def test_needs_a_customer(self, store: UsageStore, tenant: str) -> None:
        with pytest.raises(InvalidUsageQuery):
            store.usage(tenant, BY_KEY["total"], [], utc(2024, 1, 1), utc(2024, 1, 2))

    def test_customers_and_tenants_are_kept_apart(self, store: UsageStore, tenant: str) -> None:
        ingest(
            store,
            tenant,
            [use("e1", utc(2024, 1, 1), 2), use("e1", utc(2024, 1, 1), 3, customer="cus_b")],
            METERS,
        )
        ingest(store, tenant + "_2", [use("e1", utc(2024, 1, 1), 7)], METERS)
        points = store.usage(
            tenant, BY_KEY["total"], ["cus_a", "cus_b"], utc(2024, 1, 1), utc(2024, 1, 2)
        )
        assert values_of(points) == [
            ("cus_a", ("eu",), utc(2024, 1, 1), "2"),
            ("cus_b", ("eu",), utc(2024, 1, 1), "3"),
        ]
        for meter in (BY_KEY["total"], BY_KEY["seats"]):
            every_customer = store.usage(tenant, meter, None, utc(2024, 1, 1), utc(2024, 1, 2))
            named = store.usage(tenant, meter, ["cus_a", "cus_b"], utc(2024, 1, 1), utc(2024, 1, 2))
            assert every_customer == named
            assert {point.customer for point in every_customer} == {"cus_a", "cus_b"}


class TestPeriodAggregates:
    def test_transactions_come_per_group_in_the_order_events_happened(
        self, store: UsageStore, tenant: str
    ) -> None:
        total = BY_KEY["total"]
        ingest(
            store,
            tenant,
            [
                use("b", utc(2024, 1, 2), "2.5"),
                use("a", utc(2024, 1, 2), "1"),  # same instant: by event id
                use("c", utc(2024, 1, 1), "7", region="us"),
                use("z", utc(2024, 1, 1), "4"),
                use("b", utc(2024, 1, 2), "99"),  # a repeat: counted once, as first sent
                use("late", utc(2024, 2, 1), "5"),  # after the period
            ],
            [total],
        )
        transactions = store.period_transactions(
            tenant, "cus_a", total, utc(2024, 1, 1), utc(2024, 2, 1)
        )
        assert transactions == {
            ("eu",): [Decimal(4), Decimal(1), Decimal("2.5")],
            ("us",): [Decimal(7)],
        }

    def test_weighted_sum_across_period_boundaries(self, store: UsageStore, tenant: str) -> None:
        seats = BY_KEY["seats"]
        ingest(
            store, tenant, [use("s1", utc(2024, 1, 1), 10), use("s3", utc(2024, 2, 15), 5)], [seats]
        )
        ingest(store, tenant, [use("s2", utc(2024, 1, 16), 20)], [seats])  # late, out of order
        months = [
            (utc(2024, 1, 1), utc(2024, 2, 1)),
            (utc(2024, 2, 1), utc(2024, 3, 1)),
            (utc(2024, 3, 1), utc(2024, 4, 1)),
        ]
        assert [
            store.period_aggregates(tenant, "cus_a", [seats], start, end) for start, end in months
        ] == [
            {("seats", ("eu",)): Decimal("15.161290322581")},
            {("seats", ("eu",)): Decimal("12.241379310345")},
            {("seats", ("eu",)): Decimal(5)},  # no event in March: the level carried
        ]

    def test_a_recurring_set_across_batches_and_periods(
        self, store: UsageStore, tenant: str
    ) -> None:
        roster, members = BY_KEY["roster"], BY_KEY["members"]
        ingest(
            store,
            tenant,
            [use("u1", utc(2024, 1, 5), item="ann"), use("u2", utc(2024, 1, 10), item="bob")],
            [roster, members],
        )
        ingest(
            store,
            tenant,
            [
                use("u3", utc(2024, 1, 20), item="ann", op="remove"),
                use("u4", utc(2024, 2, 3), item="cat"),
                use("u5", utc(2024, 2, 3), item="bob", op="remove"),
            ],
            [roster, members],
        )
        ingest(store, tenant, [use("u6", utc(2024, 2, 10), item="ann")], [roster, members])

        def period(start: datetime, end: datetime) -> dict[tuple[str, tuple[str, ...]], Decimal]:
            return store.period_aggregates(tenant, "cus_a", [roster, members], start, end)

        assert period(utc(2024, 1, 1), utc(2024, 2, 1)) == {
            ("roster", ("eu",)): Decimal(1),
            ("members", ("eu",)): Decimal(1),
        }
        assert period(utc(2024, 2, 1), utc(2024, 3, 1)) == {
            ("roster", ("eu",)): Decimal(2),
            ("members", ("eu",)): Decimal(2),
        }
        assert period(utc(2024, 3, 1), utc(2024, 4, 1)) == {("roster", ("eu",)): Decimal(2)}

    def test_unique_count_across_batches(self, store: UsageStore, tenant: str) -> None:
        users = BY_KEY["users"]
        ingest(
            store,
            tenant,
            [use("a", utc(2024, 1, 1), item="ann"), use("b", utc(2024, 1, 2), item="bob")],
            [users],
        )
        ingest(
            store,
            tenant,
            [use("c", utc(2024, 1, 3), item="ann"), use("d", utc(2024, 1, 4), item="cat")],
            [users],
        )
        for from_rollup in (True, False):
            points = store.usage(
                tenant, users, ["cus_a"], utc(2024, 1, 1), utc(2024, 2, 1), from_rollup=from_rollup
            )
            assert [p.value for p in points] == [3]

    def test_latest_with_out_of_order_batches(self, store: UsageStore, tenant: str) -> None:
        last, level = BY_KEY["last"], BY_KEY["level"]
        ingest(store, tenant, [use("late", utc(2024, 1, 20), 7)], [last, level])
        ingest(store, tenant, [use("early", utc(2024, 1, 10), 3)], [last, level])
        noon = utc(2024, 1, 25, 12)
        ingest(store, tenant, [use("b", noon, 8), use("a", noon, 9)], [last, level])
        assert store.period_aggregates(
            tenant, "cus_a", [last, level], utc(2024, 1, 1), utc(2024, 2, 1)
        ) == {
            ("last", ("eu",)): Decimal(8),
            ("level", ("eu",)): Decimal(8),
        }
        assert store.period_aggregates(
            tenant, "cus_a", [last, level], utc(2024, 2, 1), utc(2024, 3, 1)
        ) == {("level", ("eu",)): Decimal(8)}

    def test_a_copy_that_slipped_past_dedup_changes_no_invoice(
        self, store: UsageStore, tenant: str
    ) -> None:
        """Two writers racing past the repeat check: the raw table holds the event twice."""
        ingest(store, tenant, [use("e1", utc(2024, 1, 5), 4, item="ann")], METERS)
        expected = store.period_aggregates(
            tenant, "cus_a", METERS, utc(2024, 1, 1), utc(2024, 2, 1)
        )
        table = f"{store.database}.usage_events"
        store._client.command(
            f"INSERT INTO {table} SELECT * FROM {table} WHERE tenant = {{tenant:String}}",
            parameters={"tenant": tenant},
        )
        assert (
            store.period_aggregates(tenant, "cus_a", METERS, utc(2024, 1, 1), utc(2024, 2, 1))
            == expected
        )
        calls = BY_KEY["calls"]
        exact = store.usage(
            tenant, calls, ["cus_a"], utc(2024, 1, 1), utc(2024, 2, 1), from_rollup=False
        )
        rollup = store.usage(tenant, calls, ["cus_a"], utc(2024, 1, 1), utc(2024, 2, 1))
        assert [p.value for p in exact] == [1]
        assert [p.value for p in rollup] == [2]  # the rollup's count relies on the repeat check
        for key in ("peak", "low", "users", "last"):  # idempotent states: the rollup stays exact
            points = store.usage(tenant, BY_KEY[key], ["cus_a"], utc(2024, 1, 1), utc(2024, 2, 1))
            assert {(key, p.group): p.value for p in points} == {
                k: v for k, v in expected.items() if k[0] == key
            }


# -- against the reference, on random events ------------------------------------------------

BASE = utc(2024, 1, 30)
SPAN_MS = 5 * 86_400_000


@st.composite
def deliveries(draw: st.DrawFn) -> list[list[UsageEvent]]:
    """Batches of events, with repeats within a batch, across batches, and redelivered."""
    count = draw(st.integers(1, 12))
    events = []
    for index in range(count):
        offset = draw(
            st.one_of(
                st.integers(0, SPAN_MS - 1),
                st.integers(0, 5 * 24).map(lambda hour: hour * 3_600_000),
                st.sampled_from(
                    [2 * 86_400_000, 2 * 86_400_000 - 1]
                ),  # 1 February, and just before
            )
        )
        events.append(
            use(
                f"e{index}",
                BASE + timedelta(milliseconds=offset),
                str(draw(st.decimals(-100, 100, places=2, allow_nan=False, allow_infinity=False))),
                customer=draw(st.sampled_from(["cus_a", "cus_b"])),
                region=draw(st.sampled_from(["eu", "us"])),
                item=draw(st.sampled_from(["ann", "bob", "cat"])),
                op=draw(st.sampled_from(["add", "add", "remove"])),
                tier=draw(st.sampled_from(["free", "pro"])),
            )
        )
    stream = events + draw(st.lists(st.sampled_from(events), max_size=6))
    stream = draw(st.permutations(stream))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(stream) - 1)), max_size=3)))
    return [
        stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=False) if stream[a:b]
    ]


@st.composite
def ranges(draw: st.DrawFn) -> tuple[datetime, datetime, WindowSize | None]:
    size = draw(
        st.sampled_from(
            [None, WindowSize.MINUTE, WindowSize.HOUR, WindowSize.DAY, WindowSize.MONTH]
        )
    )
    grain = draw(st.sampled_from([1, 60_000, 3_600_000]))  # unaligned, on minutes, on hours
    start = draw(st.integers(-86_400_000, SPAN_MS)) // grain * grain
    longest = 3 * 3_600_000 if size is WindowSize.MINUTE else SPAN_MS + 86_400_000
    length = max(grain, draw(st.integers(1, longest)) // grain * grain)
    begin = BASE + timedelta(milliseconds=start)
    return begin, begin + timedelta(milliseconds=length), size


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=deliveries(), query=ranges(), data=st.data())
def test_every_query_matches_the_reference(
    store: UsageStore,
    batches: list[list[UsageEvent]],
    query: tuple[datetime, datetime, WindowSize | None],
    data: st.DataObject,
) -> None:
    """Random events in batches with repeats; a few meters (all are written), from the rollup
    and from the events, and the period aggregates, against `domain` on the deduplicated
    events."""
    tenant = f"ten_{uuid7().hex[-12:]}"  # each example on its own tenant: no state leaks
    for batch in batches:
        ingest(store, tenant, batch, METERS)
    delivered = [event for batch in batches for event in batch]
    start, end, size = query
    customers = data.draw(st.sampled_from([["cus_a"], ["cus_b"], ["cus_a", "cus_b"]]))
    group_filter = data.draw(st.sampled_from([None, {"region": ["eu"]}, {"region": ["eu", "us"]}]))
    queried = data.draw(st.lists(st.sampled_from(METERS), min_size=1, max_size=3, unique=True))
    for meter in queried:
        expected = reference_usage(meter, delivered, customers, start, end, size, group_filter)
        for from_rollup in (True, False):
            got = store.usage(
                tenant,
                meter,
                customers,
                start,
                end,
                window=size,
                group_filter=group_filter,
                from_rollup=from_rollup,
            )
            assert got == expected, (meter.key, from_rollup)
    in_period = {
        (meter.key, point.group): point.value
        for meter in queried
        for point in reference_usage(meter, delivered, ["cus_a"], start, end, None)
    }
    assert store.period_aggregates(tenant, "cus_a", queried, start, end) == in_period
