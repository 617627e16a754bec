"""The usage store: metered events in ClickHouse, a per-minute rollup, exact queries.

One code path for both backends: `clickhouse-connect`'s client speaks to a
ClickHouse server (`CLICKHOUSE_URL`, `http(s)://...`) and, through its chdb
interface (`chdb:///path`), to chdb, the ClickHouse engine in this process.
The DDL, the queries and their bound parameters are the same text on both.
chdb holds one data directory per process: only the metering service opens
it (ARCHITECTURE.md section 5).

Tables (`SCHEMA`, created by `migrate`):

- `usage_events`: one row per (event, meter that counts it), written at
  ingestion with the meter as it was then, so a later change to a meter's
  filters never rewrites history. A `ReplacingMergeTree` ordered by
  (tenant, customer, meter, event id). Values are `Decimal(38, 12)`: an
  Int128 of 10^-12 units, as money is kept, with 26 digits before the point.
- `usage_rollup_minute`, filled by the materialized view
  `usage_rollup_minute_mv`: per (tenant, meter, customer, group, minute) the
  states `countState`, `sumState` (in `Decimal(76, 12)`, which no sum of
  stored values overflows), `maxState`, `minState`, `uniqExactState` and
  `argMaxState(value, (timestamp, event_id))`, in an `AggregatingMergeTree`.

Exactness under duplicates, which never waits for a merge:

1. Nothing is inserted twice. `insert_events` drops an event whose
   (customer, id) repeats within the batch (the first wins) or is already in
   `usage_events` (an exact lookup, not `FINAL`-dependent: any copy in any
   part counts), then inserts. The materialized view sees each insert once,
   so the rollup holds each event once. This relies on one writer per
   customer at a time, which the Kafka partitioning by customer gives, and on
   synchronous inserts (`async_insert=0`, set on every insert), so the next
   batch's lookup sees this one. The window is the table's whole history,
   stronger than the 35 days the issue asks for. An event no meter counted
   writes no row, so its redelivery is metered again, by the meters of then.
2. Reads from `usage_events` deduplicate again, at query time: `LIMIT 1 BY
   customer, event_id` after `ORDER BY ingested_at` keeps the first accepted
   copy, whatever merges have or have not happened. A copy that slipped past
   step 1 (two writers racing on one customer) cannot change a result read
   from `usage_events`.
3. Per aggregation, `usage` reads the rollup only where it is exact:
   - `max`, `min`, `unique_count` (no operations), `latest` (no carry-over):
     idempotent states: a duplicate cannot change them, step 1 or not;
   - `count`, `sum`: exact because of step 1, and only as exact as step 1: a
     racing writer's copy would count twice, and ClickHouse writes a table
     and its views non-atomically, so a failure between the two can leave
     the rollup short of an event the table holds (its retry is a repeat);
   - all of these only when the range starts and ends on a whole minute (the
     rollup's grain); otherwise the same SQL runs on the deduplicated rows;
   - `weighted_sum`, `unique_count` with operations and every carry-over
     meter need the ordered events and the state at the range's start: the
     state comes from SQL (`argMax` by (timestamp, event id); per item, the
     last operation) and the ordered events of the range are folded by
     `domain.usage_by_window`, the reference itself.
   `period_aggregates`, which invoices are made of, always reads the
   deduplicated `usage_events` (step 2): exact by construction, at the cost
   of reading one customer's period.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import clickhouse_connect

from billing_common.errors import ValidationFailed
from billing_metering.domain import (
    CarriedLevel,
    Window,
    WindowSize,
    canonical_quantity,
    epoch_ms,
    usage_by_window,
    windows,
)
from billing_metering.meters import (
    Aggregation,
    MeterDefinition,
    MeteredEvent,
    SetOperation,
    UsageEvent,
    measure_all,
    meters_by_key,
)

__all__ = [
    "SCHEMA",
    "IngestOutcome",
    "InvalidUsageQuery",
    "MeasuredEvent",
    "UsagePoint",
    "UsageStore",
]

_DATABASE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Event ids looked up per query when checking a batch for repeats.
_LOOKUP_CHUNK = 1000
#: Settings of every insert: synchronous, so the next batch's repeat check sees it.
_INSERT_SETTINGS = {"async_insert": 0}

#: The DDL, in order; `$db` is the database. Every statement is idempotent.
SCHEMA: tuple[str, ...] = (
    "CREATE DATABASE IF NOT EXISTS $db",
    """
    CREATE TABLE IF NOT EXISTS $db.usage_events
    (
        tenant       LowCardinality(String),
        customer     String,
        meter        LowCardinality(String),
        event_id     String,
        timestamp    DateTime64(3, 'UTC'),
        group_values Array(String),
        value        Decimal(38, 12),
        item         String,
        operation    Enum8('none' = 0, 'add' = 1, 'remove' = 2),
        ingested_at  DateTime64(3, 'UTC'),
        source       String DEFAULT '',
        INDEX event_id_bloom event_id TYPE bloom_filter(0.01) GRANULARITY 4
    )
    ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(timestamp)
    ORDER BY (tenant, customer, meter, event_id)
    """,
    """
    CREATE TABLE IF NOT EXISTS $db.usage_rollup_minute
    (
        tenant       LowCardinality(String),
        meter        LowCardinality(String),
        customer     String,
        group_values Array(String),
        minute       DateTime('UTC'),
        events       AggregateFunction(count),
        total        AggregateFunction(sum, Decimal(76, 12)),
        maximum      AggregateFunction(max, Decimal(38, 12)),
        minimum      AggregateFunction(min, Decimal(38, 12)),
        items        AggregateFunction(uniqExact, String),
        latest       AggregateFunction(argMax, Decimal(38, 12), Tuple(DateTime64(3, 'UTC'), String))
    )
    ENGINE = AggregatingMergeTree
    PARTITION BY toYYYYMM(minute)
    ORDER BY (tenant, meter, customer, group_values, minute)
    """,
    """
    CREATE MATERIALIZED VIEW IF NOT EXISTS $db.usage_rollup_minute_mv
    TO $db.usage_rollup_minute
    AS SELECT
        tenant,
        meter,
        customer,
        group_values,
        toStartOfMinute(toDateTime(timestamp, 'UTC')) AS minute,
        countState() AS events,
        sumState(toDecimal256(value, 12)) AS total,
        maxState(value) AS maximum,
        minState(value) AS minimum,
        uniqExactState(item) AS items,
        argMaxState(value, (timestamp, event_id)) AS latest
    FROM $db.usage_events
    GROUP BY tenant, meter, customer, group_values, minute
    """,
    # Stores made before `source` existed gain it (a no-op on new ones).
    "ALTER TABLE $db.usage_events ADD COLUMN IF NOT EXISTS source String DEFAULT ''",
)

_EVENT_COLUMNS = (
    "tenant",
    "customer",
    "meter",
    "event_id",
    "timestamp",
    "group_values",
    "value",
    "item",
    "operation",
    "ingested_at",
    "source",
)

#: Per aggregation done in SQL: the expression over deduplicated rows, and over the rollup.
_SQL_AGGREGATES: dict[Aggregation, tuple[str, str]] = {
    Aggregation.COUNT: ("count()", "countMerge(events)"),
    Aggregation.SUM: ("sum(toDecimal256(value, 12))", "sumMerge(total)"),
    Aggregation.MAX: ("max(value)", "maxMerge(maximum)"),
    Aggregation.MIN: ("min(value)", "minMerge(minimum)"),
    Aggregation.UNIQUE_COUNT: ("uniqExact(item)", "uniqExactMerge(items)"),
    Aggregation.LATEST: ("argMax(value, (timestamp, event_id))", "argMaxMerge(latest)"),
}

#: The rows of one meter, customers and range, each (customer, event id) once: the first
#: accepted copy, whatever ClickHouse has merged so far.
_DEDUPLICATED = """
    SELECT customer, group_values, event_id, timestamp, value, item, operation
    FROM $db.usage_events
    WHERE tenant = {tenant:String}
      AND meter = {meter:String}
      AND timestamp >= fromUnixTimestamp64Milli({lower_ms:Int64}, 'UTC')
      AND timestamp < fromUnixTimestamp64Milli({upper_ms:Int64}, 'UTC')
      $groups
    ORDER BY ingested_at
    LIMIT 1 BY customer, event_id
"""

_FROM_EVENTS = """
    SELECT customer, group_values, $window AS window_ms, $aggregate AS value
    FROM ($deduplicated)
    GROUP BY customer, group_values, window_ms
"""

_FROM_ROLLUP = """
    SELECT customer, group_values, $window AS window_ms, $aggregate AS value
    FROM $db.usage_rollup_minute
    WHERE tenant = {tenant:String}
      AND meter = {meter:String}
      AND minute >= toDateTime({lower_s:Int64}, 'UTC')
      AND minute < toDateTime({upper_s:Int64}, 'UTC')
      $groups
    GROUP BY customer, group_values, window_ms
"""

_ORDERED_EVENTS = """
    SELECT customer, group_values, event_id, toUnixTimestamp64Milli(timestamp), value, item,
           toString(operation)
    FROM ($deduplicated)
"""

_OPENING_LEVELS = """
    SELECT customer, group_values, argMax(value, (timestamp, event_id))
    FROM ($deduplicated)
    GROUP BY customer, group_values
"""

_OPENING_SETS = """
    SELECT customer, group_values, groupArrayIf(item, last_operation = 'add')
    FROM (
        SELECT customer, group_values, item,
               argMax(operation, (timestamp, event_id)) AS last_operation
        FROM ($deduplicated)
        GROUP BY customer, group_values, item
    )
    GROUP BY customer, group_values
"""

_KNOWN_IDS = """
    SELECT DISTINCT customer, event_id, source
    FROM $db.usage_events
    WHERE tenant = {tenant:String}
      AND customer IN {customers:Array(String)}
      AND event_id IN {ids:Array(String)}
"""

#: The start of the window (epoch ms) holding the instant `$ms` (epoch ms, Int64).
_WINDOW_START: dict[WindowSize | None, str] = {
    None: "{lower_ms:Int64}",
    WindowSize.MINUTE: "greatest(intDiv($ms, 60000) * 60000, {lower_ms:Int64})",
    WindowSize.HOUR: "greatest(intDiv($ms, 3600000) * 3600000, {lower_ms:Int64})",
    WindowSize.DAY: "greatest(intDiv($ms, 86400000) * 86400000, {lower_ms:Int64})",
    WindowSize.MONTH: (
        "greatest(toInt64(toUnixTimestamp(toDateTime(toStartOfMonth("
        "fromUnixTimestamp64Milli($ms, 'UTC')), 'UTC'))) * 1000, {lower_ms:Int64})"
    ),
}


class InvalidUsageQuery(ValidationFailed):
    code = "invalid_usage_query"
    title = "Invalid usage query"


@dataclass(frozen=True, slots=True)
class UsagePoint:
    """A meter's value for one customer and group over one window."""

    customer: str
    group: tuple[str, ...]
    window_start: datetime
    window_end: datetime
    value: Decimal


@dataclass(frozen=True, slots=True)
class MeasuredEvent:
    """One usage event as the meters of its tenant read it, and where it came from."""

    customer: str
    event_id: str
    source: str
    """The Kafka message it arrived in (`topic/partition/offset`); "" when not from Kafka."""
    readings: tuple[MeteredEvent, ...]


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """What `record` did: the (customer, event id) pairs it accepted and the ones it
    dropped as repeats, and how many metered rows it wrote."""

    accepted: tuple[tuple[str, str], ...]
    duplicates: tuple[tuple[str, str], ...]
    rows_written: int


UsageKey = tuple[str, tuple[str, ...]]


class UsageStore:
    """Metered events and their aggregates, in one ClickHouse database.

    Synchronous: the service calls it from a worker thread
    (`asyncio.to_thread`). `client` is a `clickhouse_connect` client; use
    `connect` or `embedded` to make one.
    """

    def __init__(self, client: Any, database: str = "metering", *, serialize: bool = False) -> None:
        if not _DATABASE.fullmatch(database):
            raise ValueError(f"{database!r} is not a plain ClickHouse database name")
        self._client = client
        self.database = database
        # chdb runs in this process behind one session: calls from several threads (the
        # consumer's inserts, the API's queries) take turns. A server takes them at once.
        self._guard: AbstractContextManager[Any] = threading.Lock() if serialize else nullcontext()

    @classmethod
    def connect(cls, url: str, database: str = "metering") -> UsageStore:
        """A store on the ClickHouse at `url`: `http(s)://user:password@host:8123` for a
        server, `chdb:///absolute/path` for chdb in this process."""
        return cls(
            clickhouse_connect.get_client(dsn=url), database, serialize=url.startswith("chdb:")
        )

    @classmethod
    def embedded(cls, path: Path | str, database: str = "metering") -> UsageStore:
        """A store on chdb with its data in the directory `path` (one per process)."""
        return cls.connect(f"chdb://{Path(path).resolve()}", database)

    def close(self) -> None:
        """Release the connection (for chdb, the engine, so another path may be opened)."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def migrate(self) -> None:
        """Create the database, tables and view when absent (every statement is idempotent)."""
        for statement in SCHEMA:
            with self._guard:
                self._client.command(self._sql(statement))

    # -- ingestion ------------------------------------------------------------------------

    def insert_events(
        self,
        tenant: str,
        events: Sequence[UsageEvent],
        meters: Sequence[MeterDefinition],
        *,
        ingested_at: datetime,
        source: str = "",
    ) -> IngestOutcome:
        """Meter `events` with `meters` and record them (see `record`).

        An event a meter cannot read raises (`InvalidEvent` subclasses) before
        anything is written: validate events one by one with
        `meters.measure_all` first to dead-letter only the bad ones.
        """
        by_key = meters_by_key(meters)
        measured = [
            MeasuredEvent(
                event.customer, event.id, source, tuple(measure_all(by_key.values(), event))
            )
            for event in events
        ]
        return self.record(tenant, measured, ingested_at=ingested_at)

    def record(
        self, tenant: str, events: Sequence[MeasuredEvent], *, ingested_at: datetime
    ) -> IngestOutcome:
        """Record a batch of metered events: drop repeats, insert the rest.

        A (customer, event id) seen earlier in the batch, or already stored from
        another source, is a repeat and changes nothing. One already stored from
        the same `source` (the Kafka message it came in) is this message
        redelivered after a crash: it is reported accepted again, without a
        second insert, so the caller can finish the effects that the crash
        interrupted. An event no meter counts writes no row.
        """
        _require_text(tenant, "tenant")
        now = ingested_at.astimezone(UTC)
        now = now.replace(microsecond=now.microsecond - now.microsecond % 1000)
        first: dict[tuple[str, str], MeasuredEvent] = {}
        duplicates: list[tuple[str, str]] = []
        for event in events:
            key = (event.customer, event.event_id)
            if key in first:
                duplicates.append(key)
            else:
                first[key] = event
        known = self._known_sources(tenant, list(first))
        accepted: list[tuple[str, str]] = []
        rows: list[list[Any]] = []
        for key, event in first.items():
            sources = known.get(key)
            if sources is None:
                accepted.append(key)
                rows.extend(
                    _event_row(tenant, reading, now, event.source) for reading in event.readings
                )
            elif event.source and event.source in sources:
                accepted.append(key)
            else:
                duplicates.append(key)
        if rows:
            with self._guard:
                self._client.insert(
                    "usage_events",
                    rows,
                    column_names=list(_EVENT_COLUMNS),
                    database=self.database,
                    settings=_INSERT_SETTINGS,
                )
        return IngestOutcome(tuple(accepted), tuple(duplicates), len(rows))

    def _known_sources(
        self, tenant: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], set[str]]:
        known: dict[tuple[str, str], set[str]] = defaultdict(set)
        for chunk in _chunks(keys, _LOOKUP_CHUNK):
            rows = self._rows(
                _KNOWN_IDS,
                {
                    "tenant": tenant,
                    "customers": sorted({customer for customer, _ in chunk}),
                    "ids": sorted({event_id for _, event_id in chunk}),
                },
            )
            wanted = set(chunk)
            for customer, event_id, source in rows:
                if (key := (customer, event_id)) in wanted:
                    known[key].add(source)
        return known

    # -- queries --------------------------------------------------------------------------

    def usage(
        self,
        tenant: str,
        meter: MeterDefinition,
        customers: Sequence[str] | None,
        start: datetime,
        end: datetime,
        *,
        window: WindowSize | None = None,
        group_filter: Mapping[str, Collection[str]] | None = None,
        from_rollup: bool = True,
    ) -> list[UsagePoint]:
        """`meter`'s value per customer, group and window of `[start, end)`.

        `window` splits the range at UTC minute, hour, day or month boundaries
        (`None`: one window). `group_filter` keeps the groups whose value of
        each named `group_by` dimension is among the given ones. A point is
        reported for each window an event of its series falls in, and, for a
        recurring meter, each window its series already had a level at. Points
        come ordered by customer, group, window. `customers=None` reads every
        customer of the tenant. `from_rollup=False` reads the deduplicated events
        even where the rollup is exact.
        """
        _require_text(tenant, "tenant")
        if customers is not None and (not customers or any(not c for c in customers)):
            raise InvalidUsageQuery("a usage query names at least one customer, or none for all")
        window_size = None if window is None else WindowSize(window)
        in_windows = windows(start, end, window_size)
        groups_sql, group_params = _group_filter(meter, group_filter or {})
        lower, upper = in_windows[0].start, in_windows[-1].end
        params: dict[str, Any] = {"tenant": tenant, "meter": meter.key, **group_params}
        if customers is not None:
            groups_sql = f"AND customer IN {{customers:Array(String)}}\n      {groups_sql}"
            params["customers"] = sorted(set(customers))
        if _needs_ordered_events(meter):
            points = self._usage_from_ordered_events(meter, params, groups_sql, in_windows)
        else:
            on_minutes = epoch_ms(lower) % 60_000 == 0 and epoch_ms(upper) % 60_000 == 0
            points = self._usage_in_sql(
                meter,
                params,
                groups_sql,
                in_windows,
                window_size,
                rollup=from_rollup and on_minutes,
            )
        return sorted(points, key=lambda point: (point.customer, point.group, point.window_start))

    def period_aggregates(
        self,
        tenant: str,
        customer: str,
        meters: Sequence[MeterDefinition],
        start: datetime,
        end: datetime,
    ) -> dict[UsageKey, Decimal]:
        """Each meter's value for `customer` over the billing period `[start, end)`, per
        (meter key, group): the quantities rating prices.

        A recurring meter reports each group with a level at the period's start
        even when no event arrived in the period. Read from the deduplicated
        events, never from the rollup: exact whatever reached ClickHouse.
        """
        result: dict[UsageKey, Decimal] = {}
        for meter in meters_by_key(meters).values():
            for point in self.usage(tenant, meter, [customer], start, end, from_rollup=False):
                result[(meter.key, point.group)] = point.value
        return result

    def period_transactions(
        self,
        tenant: str,
        customer: str,
        meter: MeterDefinition,
        start: datetime,
        end: datetime,
    ) -> dict[tuple[str, ...], list[Decimal]]:
        """Each event's value of `meter` for `customer` over `[start, end)`, per group, in
        the order the events happened (timestamp, then event id): what a percentage price
        rates transaction by transaction. Read from the deduplicated events."""
        params: dict[str, Any] = {
            "tenant": tenant,
            "meter": meter.key,
            "customers": [customer],
            "lower_ms": epoch_ms(start),
            "upper_ms": epoch_ms(end),
        }
        deduplicated = _DEDUPLICATED.replace("$groups", "AND customer IN {customers:Array(String)}")
        sql = _ORDERED_EVENTS.replace("$deduplicated", deduplicated)
        ordered: dict[tuple[str, ...], list[tuple[int, str, Decimal]]] = defaultdict(list)
        for _, group, event_id, at_ms, value, _, _ in self._rows(sql, params):
            ordered[tuple(group)].append((int(at_ms), event_id, _quantity(value)))
        return {
            group: [value for _, _, value in sorted(events)] for group, events in ordered.items()
        }

    def _usage_in_sql(
        self,
        meter: MeterDefinition,
        params: dict[str, Any],
        groups_sql: str,
        in_windows: Sequence[Window],
        window_size: WindowSize | None,
        *,
        rollup: bool,
    ) -> list[UsagePoint]:
        from_events, from_rollup = _SQL_AGGREGATES[meter.aggregation]
        lower_ms, upper_ms = epoch_ms(in_windows[0].start), epoch_ms(in_windows[-1].end)
        params = {**params, "lower_ms": lower_ms, "upper_ms": upper_ms}
        if rollup:
            params.update(lower_s=lower_ms // 1000, upper_s=upper_ms // 1000)
            minute_ms = "(toInt64(toUnixTimestamp(minute)) * 1000)"
            sql = (
                _FROM_ROLLUP.replace("$window", _WINDOW_START[window_size])
                .replace("$ms", minute_ms)
                .replace("$aggregate", from_rollup)
            )
        else:
            sql = (
                _FROM_EVENTS.replace("$deduplicated", _DEDUPLICATED)
                .replace("$window", _WINDOW_START[window_size])
                .replace("$ms", "toUnixTimestamp64Milli(timestamp)")
                .replace("$aggregate", from_events)
            )
        by_start = {epoch_ms(window.start): window for window in in_windows}
        points = []
        rows = self._rows(sql.replace("$groups", groups_sql), params)
        for customer, group, window_ms, value in rows:
            window = by_start[int(window_ms)]
            points.append(
                UsagePoint(customer, tuple(group), window.start, window.end, _quantity(value))
            )
        return points

    def _usage_from_ordered_events(
        self,
        meter: MeterDefinition,
        params: dict[str, Any],
        groups_sql: str,
        in_windows: Sequence[Window],
    ) -> list[UsagePoint]:
        lower_ms, upper_ms = epoch_ms(in_windows[0].start), epoch_ms(in_windows[-1].end)
        deduplicated = _DEDUPLICATED.replace("$groups", groups_sql)
        series: dict[tuple[str, tuple[str, ...]], list[MeteredEvent]] = defaultdict(list)
        sql = _ORDERED_EVENTS.replace("$deduplicated", deduplicated)
        in_range = {**params, "lower_ms": lower_ms, "upper_ms": upper_ms}
        for customer, group, event_id, at_ms, value, item, operation in self._rows(sql, in_range):
            series[(customer, tuple(group))].append(
                MeteredEvent(
                    meter=meter.key,
                    customer=customer,
                    event_id=event_id,
                    timestamp=_EPOCH + timedelta(milliseconds=int(at_ms)),
                    group=tuple(group),
                    value=_quantity(value),
                    item=item,
                    operation=None if operation == "none" else SetOperation(operation),
                )
            )
        opening: dict[tuple[str, tuple[str, ...]], CarriedLevel] = {}
        if meter.carry_over:
            before = {**params, "lower_ms": 0, "upper_ms": lower_ms}
            if meter.tracks_set:
                sql = _OPENING_SETS.replace("$deduplicated", deduplicated)
                for customer, group, items in self._rows(sql, before):
                    opening[(customer, tuple(group))] = frozenset(items)
            else:
                sql = _OPENING_LEVELS.replace("$deduplicated", deduplicated)
                for customer, group, level in self._rows(sql, before):
                    opening[(customer, tuple(group))] = _quantity(level)
        points = []
        for key in set(series) | set(opening):
            customer, group = key
            for window, value in usage_by_window(
                meter, series.get(key, ()), in_windows, carried_level=opening.get(key)
            ):
                points.append(UsagePoint(customer, group, window.start, window.end, value))
        return points

    # -- plumbing -------------------------------------------------------------------------

    def _sql(self, template: str) -> str:
        return template.replace("$db", self.database)

    def _rows(self, template: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        with self._guard:
            result = self._client.query(self._sql(template), parameters=dict(params))
        return [tuple(row) for row in result.result_rows]


def _needs_ordered_events(meter: MeterDefinition) -> bool:
    """Whether the meter's value depends on the order of events or on what came before."""
    return meter.carry_over or meter.tracks_set or meter.aggregation is Aggregation.WEIGHTED_SUM


def _group_filter(
    meter: MeterDefinition, group_filter: Mapping[str, Collection[str]]
) -> tuple[str, dict[str, list[str]]]:
    clauses: list[str] = []
    params: dict[str, list[str]] = {}
    for dimension, allowed in group_filter.items():
        if dimension not in meter.group_by:
            raise InvalidUsageQuery(
                f"meter {meter.key!r} does not group by {dimension!r}",
                dimension=dimension,
            )
        if isinstance(allowed, str) or not allowed:
            raise InvalidUsageQuery(
                f"the filter on {dimension!r} lists the values to keep", dimension=dimension
            )
        index = meter.group_by.index(dimension)
        clauses.append(f"AND has({{group_{index}:Array(String)}}, group_values[{index + 1}])")
        params[f"group_{index}"] = sorted(allowed)
    return "\n      ".join(clauses), params


def _event_row(tenant: str, reading: MeteredEvent, ingested_at: datetime, source: str) -> list[Any]:
    return [
        tenant,
        reading.customer,
        reading.meter,
        reading.event_id,
        reading.timestamp,
        list(reading.group),
        reading.value,
        reading.item,
        "none" if reading.operation is None else reading.operation.value,
        ingested_at,
        source,
    ]


def _quantity(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise TypeError(f"ClickHouse returned {value!r} for a quantity")
    return canonical_quantity(Decimal(value))


def _require_text(value: str, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidUsageQuery(f"{what} must be a non-empty string")


def _chunks(items: Sequence[tuple[str, str]], size: int) -> Iterator[Sequence[tuple[str, str]]]:
    for offset in range(0, len(items), size):
        yield items[offset : offset + size]
