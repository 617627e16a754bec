"""Current-period usage per customer in Redis: the fast path for "usage so far this month".

The metering consumer calls `UsageAccumulators.apply` once per consumed Kafka
batch; `read` answers a meter's per-group values of one period. ClickHouse
(`store.py`) stays the record: invoices are made from `period_aggregates`;
these accumulators only have to agree with it, exactly.

Periods are calendar months in UTC (`period_start`). Supported meters
(`supports`) are the ones whose period value folds event by event without
history: `count`, `sum`, `max`, `min`, `latest` and `unique_count` without
an operation property, none of them `carry_over`. `weighted_sum`, set
tracking and carried levels need the state before the period and the order
of all events: they are ignored by `apply` and `read` answers `None`.

Exact: values are `Decimal` arithmetic in Python with a context that never
rounds, stored as decimal strings (never floats, never `INCRBYFLOAT`).
Distinct items are Redis sets (`SADD`, `SCARD`).

Effectively-once per Kafka message: a marker per (consumer group, topic,
partition) holds the highest offset applied; a message at or below it is
skipped. `apply` is optimistic: it `WATCH`es the markers and every key the
batch may touch, reads them, computes the new values in Python and writes
them with the new markers in one `MULTI`/`EXEC`; when another writer changed
a watched key in between, it starts over (`max_attempts` times, then
`AccumulatorContention`, which is retryable). So a batch redelivered after a
crash changes nothing, and two consumers racing through a rebalance (the
same partition, or other partitions of the same customers) never lose or
double an update.

What the caller passes: the readings (`meters.measure_all`) of each message,
in offset order per partition, of the events that are not repeats of events
stored by earlier messages. Readings are deduplicated by (tenant, meter,
customer, event id) within one call only (the first wins, as in
`domain.deduplicate`); a repeat across messages (a client's retry) must be
left out by the caller, as `UsageStore.insert_events` leaves it out. Mind the
order: a consumer that inserts into ClickHouse first and dies before `apply`
finds, on redelivery, its own events stored already; leaving them out then
loses them here for good. So: look the batch's events up in the store, `apply`
the readings of the new ones, then insert them. A crash after `apply` replays
messages that `apply` skips and the store still inserts.

One Redis, not a cluster: a transaction spans the keys of many customers,
which a cluster would only take within one hash slot.

Key layout (every name component percent-encoded, so ':' cannot collide;
`{month}` is `YYYY-MM`):

- `{prefix}:offset:{consumer}:{topic}:{partition}`: string, highest applied
  offset. No TTL.
- `{prefix}:usage:{tenant}:{customer}:{meter}:{aggregation}:{month}`: hash,
  one field per group (the group tuple as a JSON array) holding the group's
  value as a decimal string; for `latest` a JSON array
  `[epoch microseconds, event id, value]`, the greatest (timestamp, event id)
  winning; for `unique_count` the size of the group's set.
- `{prefix}:items:{tenant}:{customer}:{meter}:{aggregation}:{month}:{group}`:
  set of a `unique_count` group's items; `...:{month}:all`: the set of all
  its groups' items, so the period's distinct count is one `SCARD` (each item
  is stored twice, the price of an exact union in O(1)).

Value keys expire `ttl_after_period` (70 days by default) after their month
ends (`PEXPIREAT`, set on every write); readings of a period past that
instant are ignored (writing them would delete the keys at once).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, Inexact, InvalidOperation, Rounded
from typing import Any, NamedTuple
from urllib.parse import quote

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from billing_common.errors import ServiceUnavailable
from billing_metering.domain import canonical_quantity, epoch_ms, period_end, period_start
from billing_metering.meters import Aggregation, MeterDefinition, MeteredEvent, canonical_text
from billing_metering.store import InvalidUsageQuery

__all__ = [
    "DEFAULT_TTL_AFTER_PERIOD",
    "SUPPORTED_AGGREGATIONS",
    "AccumulatorContention",
    "AccumulatorKey",
    "SourcedReadings",
    "UsageAccumulators",
    "period_end",
    "period_start",
    "supports",
]

#: How long a period's keys live after the period ends.
DEFAULT_TTL_AFTER_PERIOD = timedelta(days=70)

#: The aggregations an accumulator folds event by event (without operations or carry-over).
SUPPORTED_AGGREGATIONS = frozenset(
    {
        Aggregation.COUNT,
        Aggregation.SUM,
        Aggregation.MAX,
        Aggregation.MIN,
        Aggregation.LATEST,
        Aggregation.UNIQUE_COUNT,
    }
)

#: Decimal arithmetic that never rounds: any rounding raises.
_EXACT = Context(prec=200, traps=[Inexact, Rounded, InvalidOperation])
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ZERO = Decimal(0)
_ALL_ITEMS = "all"


class AccumulatorContention(ServiceUnavailable):
    """Other writers kept changing the keys of a batch: nothing was applied; retry it."""

    code = "accumulator_contention"
    title = "Usage accumulators are busy"


class AccumulatorKey(NamedTuple):
    """One period's accumulator of one customer and meter."""

    tenant: str
    customer: str
    meter: str
    period_start: datetime


@dataclass(frozen=True, slots=True)
class SourcedReadings:
    """The readings of one consumed Kafka message, and where the message came from."""

    topic: str
    partition: int
    offset: int
    tenant: str
    readings: Sequence[tuple[MeterDefinition, MeteredEvent]]


def supports(meter: MeterDefinition) -> bool:
    """Whether `meter`'s period value can be accumulated event by event, without history.

    >>> supports(MeterDefinition(key="m", name="m", event_types=("t",), aggregation="count"))
    True
    """
    return meter.aggregation in SUPPORTED_AGGREGATIONS and not (
        meter.carry_over or meter.tracks_set
    )


# -- the state of one period, as read from and written to Redis --------------------------


@dataclass(slots=True)
class _Series:
    """One (tenant, customer, meter, period) hash, plus its item sets for unique_count."""

    key: AccumulatorKey
    meter: MeterDefinition
    hash_key: str
    fields: dict[str, str] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)
    #: unique_count: group field -> the batch's items of that group (applied or not).
    candidates: dict[str, set[str]] = field(default_factory=dict)
    #: unique_count: group field -> items known in the group's set (read or added here).
    members: dict[str, set[str]] = field(default_factory=dict)
    #: unique_count: group field -> items this batch adds to the group's set.
    added: dict[str, set[str]] = field(default_factory=dict)
    all_members: set[str] = field(default_factory=set)
    all_added: set[str] = field(default_factory=set)
    all_count: int = 0


class UsageAccumulators:
    """Per customer, meter and month, the usage so far, in Redis (`redis.asyncio` client).

    `consumer` names the consumer group whose offsets the markers record.
    `key_prefix` keeps several users of one Redis apart. `clock` tells the time, to
    ignore readings of periods whose keys have expired already.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        consumer: str,
        ttl_after_period: timedelta = DEFAULT_TTL_AFTER_PERIOD,
        key_prefix: str = "acc",
        max_attempts: int = 20,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not consumer:
            raise ValueError("consumer names the consumer group; it must not be empty")
        if ttl_after_period <= timedelta(0):
            raise ValueError("ttl_after_period must be positive")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._redis = redis
        self.consumer = consumer
        self.ttl_after_period = ttl_after_period
        self.key_prefix = key_prefix
        self.max_attempts = max_attempts
        self._clock = clock

    # -- public interface -----------------------------------------------------------------

    async def apply(self, batch: Sequence[SourcedReadings]) -> dict[AccumulatorKey, Decimal]:
        """Add the readings of the messages of `batch` not applied yet; return the period
        value (over all groups) of every accumulator `batch` touches, skipped messages too.

        Readings of unsupported meters are ignored, and so are readings of periods whose
        keys have expired (`ttl_after_period` after the period's end, by `clock`): those
        are ClickHouse's alone.

        The period value: `count` and `sum` add the groups, `max` / `min` take the
        greatest / smallest, `latest` the value of the latest event of any group,
        `unique_count` the number of distinct items over all groups. Offsets must
        increase within each partition (`ValueError` otherwise).
        """
        _check_batch(batch)
        if not batch:
            return {}
        for attempt in range(self.max_attempts):
            try:
                return await self._apply_once(batch)
            except WatchError:
                await asyncio.sleep(min(0.001 * 2**attempt, 0.05))
        raise AccumulatorContention(
            f"the accumulators of a batch changed under {self.max_attempts} attempts in a row"
        )

    async def read(
        self,
        tenant: str,
        meter: MeterDefinition,
        customer: str,
        period_start: datetime,
        group_filter: Mapping[str, Collection[str]] | None = None,
    ) -> list[tuple[tuple[str, ...], Decimal]] | None:
        """`meter`'s value per group for `customer` over the month starting at `period_start`,
        ordered by group; `None` when the meter is not `supports`ed.

        `group_filter` keeps the groups whose value of each named `group_by` dimension
        is among the given ones, as `UsageStore.usage` does.
        """
        if not supports(meter):
            return None
        start = _month_start(period_start)
        wanted = _group_predicate(meter, group_filter or {})
        raw = await self._redis.hgetall(self._hash_key(tenant, customer, meter, start))
        result: list[tuple[tuple[str, ...], Decimal]] = []
        for name, stored in raw.items():
            group = _decode_group(_text(name))
            if wanted(group):
                result.append((group, _group_value(meter, _text(stored))))
        return sorted(result)

    # -- one optimistic attempt -----------------------------------------------------------

    async def _apply_once(self, batch: Sequence[SourcedReadings]) -> dict[AccumulatorKey, Decimal]:
        markers = {
            (message.topic, message.partition): self._marker_key(message.topic, message.partition)
            for message in batch
        }
        now = self._clock()
        kept = [
            [
                (meter, reading)
                for meter, reading in message.readings
                if supports(meter) and self._expires_at(reading.timestamp) > now
            ]
            for message in batch
        ]
        series: dict[AccumulatorKey, _Series] = {}
        for message, readings in zip(batch, kept, strict=True):
            for meter, reading in readings:
                self._series_of(series, message.tenant, meter, reading)
        watched = [*markers.values()]
        for one in series.values():
            watched.append(one.hash_key)
            if one.meter.aggregation is Aggregation.UNIQUE_COUNT:
                watched.append(self._items_key(one, None))
                watched.extend(self._items_key(one, group) for group in one.candidates)

        async with self._redis.pipeline(transaction=True) as transaction:
            await transaction.watch(*watched)
            # Everything is read in one round trip on another connection. This is as good
            # as reading on the watching one: any write to a watched key after WATCH, also
            # one landing before these reads, makes EXEC fail, so when EXEC succeeds these
            # reads saw exactly the state the writes below replace.
            applied = await self._read_state(list(markers.values()), series)
            new_markers = self._fold(batch, kept, markers, applied, series)
            transaction.multi()  # type: ignore[no-untyped-call]
            self._queue_writes(transaction, series, new_markers)
            await transaction.execute()
        return {key: _period_value(one) for key, one in series.items()}

    def _series_of(
        self,
        series: dict[AccumulatorKey, _Series],
        tenant: str,
        meter: MeterDefinition,
        reading: MeteredEvent,
    ) -> _Series:
        start = period_start(reading.timestamp)
        key = AccumulatorKey(tenant, reading.customer, meter.key, start)
        one = series.get(key)
        if one is None:
            hash_key = self._hash_key(tenant, reading.customer, meter, start)
            one = series[key] = _Series(key, meter, hash_key)
        elif one.meter.aggregation is not meter.aggregation:
            raise ValueError(f"meter {meter.key!r} comes with two aggregations in one batch")
        if meter.aggregation is Aggregation.UNIQUE_COUNT:
            one.candidates.setdefault(_encode_group(reading.group), set()).add(reading.item)
        return one

    async def _read_state(
        self, marker_keys: Sequence[str], series: Mapping[AccumulatorKey, _Series]
    ) -> list[int]:
        """Read, in one round trip, the markers (returned, -1 where none), every series'
        fields and, for unique_count, which of the batch's items its sets hold already.

        The items of messages that turn out to be applied already are looked up too:
        which ones those are is known only once the markers are read."""
        pipe = self._redis.pipeline(transaction=False)
        for marker in marker_keys:
            pipe.get(marker)
        for one in series.values():
            pipe.hgetall(one.hash_key)
            if one.meter.aggregation is Aggregation.UNIQUE_COUNT:
                everything = sorted(set().union(*one.candidates.values()))
                pipe.scard(self._items_key(one, None))
                pipe.smismember(self._items_key(one, None), everything)
                for group, candidates in one.candidates.items():
                    pipe.smismember(self._items_key(one, group), sorted(candidates))
        replies = iter(await pipe.execute())
        offsets = []
        for _ in marker_keys:
            stored = next(replies)
            offsets.append(-1 if stored is None else int(_text(stored)))
        for one in series.values():
            one.fields = {_text(name): _text(value) for name, value in next(replies).items()}
            if one.meter.aggregation is Aggregation.UNIQUE_COUNT:
                everything = sorted(set().union(*one.candidates.values()))
                one.all_count = int(next(replies))
                one.all_members = _known(everything, next(replies))
                for group, candidates in one.candidates.items():
                    one.members[group] = _known(sorted(candidates), next(replies))
        return offsets

    def _fold(
        self,
        batch: Sequence[SourcedReadings],
        kept: Sequence[Sequence[tuple[MeterDefinition, MeteredEvent]]],
        markers: Mapping[tuple[str, int], str],
        applied: Sequence[int],
        series: dict[AccumulatorKey, _Series],
    ) -> dict[str, int]:
        """Fold the readings of the messages past their partition's marker into `series`;
        return the markers to write."""
        highest = dict(zip(markers, applied, strict=True))
        new_markers: dict[str, int] = {}
        seen: set[tuple[str, str, str, str]] = set()
        for message, readings in zip(batch, kept, strict=True):
            where = (message.topic, message.partition)
            if message.offset <= highest[where]:
                continue
            highest[where] = message.offset
            new_markers[markers[where]] = message.offset
            for meter, reading in readings:
                identity = (message.tenant, meter.key, reading.customer, reading.event_id)
                if identity in seen:
                    continue
                seen.add(identity)
                _add(self._series_of(series, message.tenant, meter, reading), reading)
        return new_markers

    def _queue_writes(
        self,
        transaction: Pipeline,
        series: Mapping[AccumulatorKey, _Series],
        new_markers: Mapping[str, int],
    ) -> None:
        for one in series.values():
            expires_ms = epoch_ms(self._expires_at(one.key.period_start))
            if one.changed:
                transaction.hset(
                    one.hash_key, mapping={name: one.fields[name] for name in sorted(one.changed)}
                )
                transaction.pexpireat(one.hash_key, expires_ms)
            for group, added in one.added.items():
                if added:
                    items_key = self._items_key(one, group)
                    transaction.sadd(items_key, *sorted(added))
                    transaction.pexpireat(items_key, expires_ms)
            if one.all_added:
                all_key = self._items_key(one, None)
                transaction.sadd(all_key, *sorted(one.all_added))
                transaction.pexpireat(all_key, expires_ms)
        for marker, offset in new_markers.items():
            transaction.set(marker, str(offset))

    def _expires_at(self, instant: datetime) -> datetime:
        """When the keys of the period holding `instant` expire."""
        return period_end(period_start(instant)) + self.ttl_after_period

    # -- keys -----------------------------------------------------------------------------

    def _marker_key(self, topic: str, partition: int) -> str:
        return f"{self.key_prefix}:offset:{_part(self.consumer)}:{_part(topic)}:{partition}"

    def _series_part(
        self, tenant: str, customer: str, meter: MeterDefinition, start: datetime
    ) -> str:
        return (
            f"{_part(tenant)}:{_part(customer)}:{meter.key}:{meter.aggregation.value}:"
            f"{start.year:04d}-{start.month:02d}"
        )

    def _hash_key(self, tenant: str, customer: str, meter: MeterDefinition, start: datetime) -> str:
        return f"{self.key_prefix}:usage:{self._series_part(tenant, customer, meter, start)}"

    def _items_key(self, one: _Series, group: str | None) -> str:
        tenant, customer, _, start = one.key
        series = self._series_part(tenant, customer, one.meter, start)
        # An encoded group starts with "%5B" ('['): it never reads "all".
        return f"{self.key_prefix}:items:{series}:{_ALL_ITEMS if group is None else _part(group)}"


# -- folding --------------------------------------------------------------------------------


def _add(one: _Series, reading: MeteredEvent) -> None:
    """Fold one reading into its series' in-memory state."""
    name = _encode_group(reading.group)
    aggregation = one.meter.aggregation
    current = one.fields.get(name)
    if aggregation is Aggregation.UNIQUE_COUNT:
        members = one.members.setdefault(name, set())
        if reading.item not in members:
            members.add(reading.item)
            one.added.setdefault(name, set()).add(reading.item)
            one.fields[name] = str(int(current or "0") + 1)
            one.changed.add(name)
        if reading.item not in one.all_members:
            one.all_members.add(reading.item)
            one.all_added.add(reading.item)
            one.all_count += 1
        return
    if aggregation is Aggregation.LATEST:
        order = (_epoch_us(reading.timestamp), reading.event_id)
        if current is not None:
            at_us, event_id, _ = json.loads(current)
            if (int(at_us), str(event_id)) >= order:
                return
        one.fields[name] = json.dumps(
            [order[0], order[1], _plain(reading.value)], separators=(",", ":")
        )
        one.changed.add(name)
        return
    value = Decimal(1) if aggregation is Aggregation.COUNT else reading.value
    if current is None:
        updated = value
    elif aggregation in (Aggregation.COUNT, Aggregation.SUM):
        updated = _EXACT.add(Decimal(current), value)
    elif aggregation is Aggregation.MAX:
        updated = max(Decimal(current), value)
    else:
        updated = min(Decimal(current), value)
    text = _plain(updated)
    if text != current:
        one.fields[name] = text
        one.changed.add(name)


def _group_value(meter: MeterDefinition, stored: str) -> Decimal:
    if meter.aggregation is Aggregation.LATEST:
        return Decimal(str(json.loads(stored)[2]))
    return Decimal(stored)


def _period_value(one: _Series) -> Decimal:
    """The value of the whole period, over all groups, from the state after the batch."""
    aggregation = one.meter.aggregation
    if aggregation is Aggregation.UNIQUE_COUNT:
        return Decimal(one.all_count)
    if not one.fields:
        return _ZERO
    if aggregation is Aggregation.LATEST:
        latest = max(
            (json.loads(stored) for stored in one.fields.values()),
            key=lambda entry: (int(entry[0]), str(entry[1])),
        )
        return Decimal(str(latest[2]))
    values = [Decimal(stored) for stored in one.fields.values()]
    if aggregation in (Aggregation.COUNT, Aggregation.SUM):
        total = _ZERO
        for value in values:
            total = _EXACT.add(total, value)
        return canonical_quantity(total)
    return canonical_quantity(max(values) if aggregation is Aggregation.MAX else min(values))


# -- checks and encodings -------------------------------------------------------------------


def _check_batch(batch: Iterable[SourcedReadings]) -> None:
    last: dict[tuple[str, int], int] = {}
    for message in batch:
        where = (message.topic, message.partition)
        if message.offset < 0:
            raise ValueError(f"offset {message.offset} of {where} is negative")
        if where in last and message.offset <= last[where]:
            raise ValueError(
                f"offsets of {message.topic}[{message.partition}] must increase within a "
                f"batch: {message.offset} follows {last[where]}"
            )
        last[where] = message.offset
        if not message.tenant:
            raise ValueError("a message's tenant must not be empty")
        for meter, reading in message.readings:
            if reading.meter != meter.key:
                raise ValueError(
                    f"reading {reading.event_id!r} is for meter {reading.meter!r}, "
                    f"not {meter.key!r}"
                )


def _group_predicate(
    meter: MeterDefinition, group_filter: Mapping[str, Collection[str]]
) -> Callable[[tuple[str, ...]], bool]:
    """A test of a group tuple for `group_filter`, checked as `UsageStore.usage` checks it."""
    wanted: list[tuple[int, frozenset[str]]] = []
    for dimension, allowed in group_filter.items():
        if dimension not in meter.group_by:
            raise InvalidUsageQuery(
                f"meter {meter.key!r} does not group by {dimension!r}", dimension=dimension
            )
        if isinstance(allowed, str) or not allowed:
            raise InvalidUsageQuery(
                f"the filter on {dimension!r} lists the values to keep", dimension=dimension
            )
        wanted.append((meter.group_by.index(dimension), frozenset(allowed)))

    def accepts(group: tuple[str, ...]) -> bool:
        # Like ClickHouse's `group_values[i]`, a group too short for a dimension reads "".
        return all(
            (group[index] if index < len(group) else "") in allowed for index, allowed in wanted
        )

    return accepts


def _month_start(instant: datetime) -> datetime:
    start = period_start(instant)
    if instant != start:
        raise ValueError(f"{instant.isoformat()} is not the first instant of a month in UTC")
    return start


def _encode_group(group: tuple[str, ...]) -> str:
    return json.dumps(list(group), ensure_ascii=False, separators=(",", ":"))


def _decode_group(encoded: str) -> tuple[str, ...]:
    return tuple(str(value) for value in json.loads(encoded))


def _part(text: str) -> str:
    return quote(text, safe="")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _plain(value: Decimal) -> str:
    text = canonical_text(value)
    assert text is not None
    return text


def _known(items: Sequence[str], flags: Sequence[Any]) -> set[str]:
    """The `items` an `SMISMEMBER` reply (`flags`, one per item) says are members."""
    return {item for item, known in zip(items, flags, strict=True) if known}


def _epoch_us(instant: datetime) -> int:
    delta = instant - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
