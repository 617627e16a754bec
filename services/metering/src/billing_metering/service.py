"""Meter use cases and usage queries: each runs in the transaction its caller opened."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from billing_common.db import Connection
from billing_common.errors import Conflict, NotFound, ValidationFailed
from billing_common.outbox import OutboxWriter
from billing_metering import repository
from billing_metering.accumulators import UsageAccumulators, supports
from billing_metering.domain import period_end, period_start
from billing_metering.events import (
    METER_ARCHIVED,
    METER_CREATED,
    METER_UPDATED,
    MeterChanged,
    PeriodUsage,
)
from billing_metering.meters import MeterDefinition
from billing_metering.schemas import (
    Meter,
    MeterCreate,
    MeterList,
    MeterUpdate,
    Usage,
    UsageQuery,
    UsageValue,
)
from billing_metering.store import UsageStore


class MeterKeyTaken(Conflict):
    code = "meter_key_taken"
    title = "A meter with this key exists"


class MeterNotFound(NotFound):
    code = "meter_not_found"
    title = "Meter not found"


class MeterInUse(Conflict):
    code = "meter_in_use"
    title = "The meter is used by a plan"


class MeterArchived(Conflict):
    code = "meter_archived"
    title = "The meter is archived"


class UnknownCustomer(NotFound):
    code = "customer_not_found"
    title = "Customer not found"


class AccumulatorNotApplicable(ValidationFailed):
    code = "accumulator_not_applicable"
    title = "The accumulators cannot answer this query"


def _public(stored: repository.StoredMeter, plans: list[str] | None = None) -> Meter:
    return Meter.of(
        stored.definition,
        version=stored.version,
        archived=stored.archived_at is not None,
        created_at=stored.created_at,
        updated_at=stored.updated_at,
        plans=plans,
    )


async def _announce(
    conn: Connection, outbox: OutboxWriter, tenant_id: str, meter: Meter, now: datetime
) -> None:
    topic = METER_CREATED if meter.version == 1 else METER_UPDATED
    if meter.archived:
        topic = METER_ARCHIVED
    await outbox.add(
        conn,
        topic,
        MeterChanged(
            meter=meter.definition(),
            version=meter.version,
            archived=meter.archived,
            changed_at=now,
        ),
        subject=meter.key,
        tenant_id=tenant_id,
    )


async def create_meter(
    conn: Connection, outbox: OutboxWriter, tenant_id: str, request: MeterCreate, *, now: datetime
) -> Meter:
    definition = MeterDefinition.model_validate(request.model_dump())
    try:
        await repository.insert_meter(conn, tenant_id, definition, now)
    except repository.DuplicateMeterKey as exc:
        raise MeterKeyTaken(
            f"meter key {definition.key!r} is already used (archived meters keep their key)",
            key=definition.key,
        ) from exc
    meter = Meter.of(definition, version=1, archived=False, created_at=now, updated_at=now)
    await _announce(conn, outbox, tenant_id, meter, now)
    return meter


async def get_meter(conn: Connection, tenant_id: str, key: str) -> Meter:
    stored = await repository.get_meter(conn, tenant_id, key)
    if stored is None:
        raise MeterNotFound(f"no meter {key!r}", key=key)
    return _public(stored, await repository.plans_using(conn, tenant_id, key))


async def list_meters(conn: Connection, tenant_id: str, *, include_archived: bool) -> MeterList:
    stored = await repository.list_meters(conn, tenant_id, include_archived=include_archived)
    plans = await repository.plans_by_meter(conn, tenant_id)
    return MeterList(data=[_public(meter, plans.get(meter.definition.key, [])) for meter in stored])


async def update_meter(
    conn: Connection,
    outbox: OutboxWriter,
    tenant_id: str,
    key: str,
    request: MeterUpdate,
    *,
    now: datetime,
) -> Meter:
    """Change what future events count; recorded usage keeps the meter it was recorded with."""
    stored = await repository.get_meter(conn, tenant_id, key, for_update=True)
    if stored is None:
        raise MeterNotFound(f"no meter {key!r}", key=key)
    if stored.archived_at is not None:
        raise MeterArchived(f"meter {key!r} is archived and cannot change", key=key)
    changes = request.model_dump(exclude_none=True)
    definition = MeterDefinition.parse({**stored.definition.model_dump(), **changes})
    version = stored.version + 1
    await repository.update_meter(
        conn, tenant_id, definition, version=version, archived_at=None, now=now
    )
    meter = Meter.of(
        definition, version=version, archived=False, created_at=stored.created_at, updated_at=now
    )
    await _announce(conn, outbox, tenant_id, meter, now)
    return meter


async def archive_meter(
    conn: Connection, outbox: OutboxWriter, tenant_id: str, key: str, *, now: datetime
) -> Meter:
    """Delete a meter: it counts no new events, its history stays; refused while a plan
    charges on it."""
    stored = await repository.get_meter(conn, tenant_id, key, for_update=True)
    if stored is None:
        raise MeterNotFound(f"no meter {key!r}", key=key)
    if stored.archived_at is not None:
        return _public(stored)
    plans = await repository.plans_using(conn, tenant_id, key)
    if plans:
        raise MeterInUse(
            f"meter {key!r} is charged by plan(s) {', '.join(plans)}; archive those first",
            key=key,
            plans=plans,
        )
    version = stored.version + 1
    await repository.update_meter(
        conn, tenant_id, stored.definition, version=version, archived_at=now, now=now
    )
    meter = Meter.of(
        stored.definition,
        version=version,
        archived=True,
        created_at=stored.created_at,
        updated_at=now,
    )
    await _announce(conn, outbox, tenant_id, meter, now)
    return meter


# -- usage ----------------------------------------------------------------------------------


async def resolve_customer(conn: Connection, tenant_id: str, reference: str) -> str:
    resolved = await repository.resolve_customers(conn, tenant_id, [reference])
    if reference not in resolved:
        raise UnknownCustomer(f"no customer {reference!r}", customer=reference)
    return resolved[reference]


def _group_filter(meter: MeterDefinition, query: UsageQuery) -> dict[str, set[str]]:
    wanted: dict[str, set[str]] = defaultdict(set)
    for item in query.group:
        dimension, _, value = item.partition(":")
        wanted[dimension].add(value)
    return dict(wanted)


async def usage(
    store: UsageStore,
    accumulators: UsageAccumulators,
    tenant_id: str,
    meter: Meter,
    customer_id: str | None,
    query: UsageQuery,
) -> Usage:
    """A meter's usage over `[from, to)`: from the accumulators when the range is one whole
    accumulator period and no windows are asked (and `source` allows), else from the store."""
    definition = meter.definition()
    group_filter = _group_filter(definition, query)
    start, end = query.from_, query.to
    whole_period = (
        query.window_size is None
        and start == period_start(start)
        and end == period_end(period_start(start))
    )
    can_accumulate = whole_period and customer_id is not None and supports(definition)
    if query.source == "accumulator" and not can_accumulate:
        raise AccumulatorNotApplicable(
            "the accumulators answer one customer, one whole UTC month (from its first instant "
            "to the next month's), no window_size, on count, sum, max, min, latest and "
            "unique_count meters without carry-over",
        )
    values: list[UsageValue] = []
    if can_accumulate and query.source != "store":
        assert customer_id is not None
        groups = await accumulators.read(
            tenant_id, definition, customer_id, start, group_filter=group_filter
        )
        for group, value in groups or []:
            values.append(
                UsageValue(
                    customer_id=customer_id,
                    group=dict(zip(definition.group_by, group, strict=True)),
                    window_start=start,
                    window_end=end,
                    value=value,
                )
            )
        source = "accumulator"
    else:
        points = await asyncio.to_thread(
            store.usage,
            tenant_id,
            definition,
            None if customer_id is None else [customer_id],
            start,
            end,
            window=query.window_size,
            group_filter=group_filter,
        )
        values = [
            UsageValue(
                customer_id=point.customer,
                group=dict(zip(definition.group_by, point.group, strict=True)),
                window_start=point.window_start,
                window_end=point.window_end,
                value=point.value,
            )
            for point in points
        ]
        source = "store"
    return Usage(
        meter=definition.key,
        aggregation=definition.aggregation,
        from_=start,
        to=end,
        window_size=query.window_size,
        source=source,
        data=values,
    )


async def period_usage(
    store: UsageStore,
    conn: Connection,
    tenant_id: str,
    customer_id: str,
    start: datetime,
    end: datetime,
) -> list[PeriodUsage]:
    """The quantities rating prices: each meter's value for the customer over the billing
    period `[start, end)`, per group, read exactly from the deduplicated events (the
    contract of the billing cycle). Archived meters count too: the period may have used
    one before it was archived."""
    stored = await repository.list_meters(conn, tenant_id, include_archived=True)
    meters = {meter.definition.key: meter.definition for meter in stored}
    aggregates = await asyncio.to_thread(
        store.period_aggregates, tenant_id, customer_id, list(meters.values()), start, end
    )
    transactions: dict[str, dict[tuple[str, ...], list[Decimal]]] = {}
    for key in sorted(await repository.per_transaction_meters(conn, tenant_id) & set(meters)):
        transactions[key] = await asyncio.to_thread(
            store.period_transactions, tenant_id, customer_id, meters[key], start, end
        )
    return [
        PeriodUsage(
            meter_key=key,
            group=dict(zip(meters[key].group_by, group, strict=True)),
            quantity=value,
            transactions=transactions.get(key, {}).get(group, []),
        )
        for (key, group), value in sorted(aggregates.items())
    ]
