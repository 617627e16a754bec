"""The usage consumer: batches of usage events into ClickHouse, Redis and `usage_recorded`.

Per fetched batch (many Kafka messages, each the events of one customer
reference), in this order:

1. resolve customer references and load the tenants' meters (cached; one
   query per batch tells whether a meter changed);
2. meter the events whose customer is known; keep the others aside (parked)
   and dead-letter, one by one, the events no meter can read;
3. record the metered events in the usage store: repeats are dropped there,
   and events of a message that was already recorded once (a redelivery after
   a crash) are reported accepted without a second insert;
4. add the accepted events to the Redis accumulators (idempotent per
   partition offset);
5. in one PostgreSQL transaction: park the unknown customers' events, write
   one `usage_recorded` per customer, and move this consumer's offset marks,
   skipping the messages at or below them (they were applied before a crash).

Kafka offsets are committed after all of it. A crash anywhere repeats the
batch, and every step recognises what it already did: totals stay exact.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from billing_common import exact_json
from billing_common.consumer import ConsumedEvent, DeadLetter
from billing_common.db import Connection
from billing_common.events import Topic
from billing_common.runtime import ServiceContext
from billing_common.usage_events import (
    USAGE_EVENTS_RECEIVED,
    UsageEvent,
    UsageEventsReceived,
    encode_usage_events,
    usage_event_json,
)
from billing_metering import repository
from billing_metering.accumulators import AccumulatorKey, SourcedReadings, UsageAccumulators
from billing_metering.events import (
    PARKED_EVENTS_RELEASED,
    USAGE_RECORDED,
    MeterUsage,
    UsageRecorded,
)
from billing_metering.ingestion import (
    IncomingEvent,
    MeterUsageSummary,
    PeriodKey,
    Source,
    plan_batch,
    usage_summaries,
)
from billing_metering.meters import MeterDefinition, MeteredEvent
from billing_metering.store import UsageStore

logger = logging.getLogger(__name__)

#: The topics the usage consumer reads.
USAGE_TOPICS: tuple[Topic[UsageEventsReceived], ...] = (
    USAGE_EVENTS_RECEIVED,
    PARKED_EVENTS_RELEASED,
)
_TOPICS = {topic.name: topic for topic in USAGE_TOPICS}


@dataclass
class _MeterCache:
    revision: int = -1
    by_tenant: dict[str, list[MeterDefinition]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Accepted:
    tenant: str
    source: Source
    reading: MeteredEvent


class UsageConsumer:
    """Handles batches of `usage_events_received` and `parked_events_released`."""

    def __init__(
        self,
        runtime: ServiceContext,
        store: UsageStore,
        accumulators: UsageAccumulators,
        *,
        group: str,
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.accumulators = accumulators
        self.group = group
        self._meters = _MeterCache()
        # Customer ids never change, so a resolved reference stays resolved; an unknown one
        # is asked again each batch (it may exist by now).
        self._customers: dict[tuple[str, str], str] = {}

    async def handle(self, batch: Sequence[ConsumedEvent[UsageEventsReceived]]) -> list[DeadLetter]:
        incoming: list[IncomingEvent] = []
        message_of: dict[Source, ConsumedEvent[UsageEventsReceived]] = {}
        for message in batch:
            source = Source(message.topic, message.partition, message.offset)
            message_of[source] = message
            incoming.extend(
                IncomingEvent(source, message.event.tenantid, event)
                for event in message.event.data.events
            )
        async with self.runtime.pool.acquire() as conn:
            meters = await self._current_meters(conn)
            await self._resolve(conn, incoming)
        plan = plan_batch(incoming, self._customers, meters)
        now = self.runtime.clock()
        sources = {source.text: source for source in message_of}

        accepted: list[_Accepted] = []
        for tenant, measured in plan.measured.items():
            outcome = await asyncio.to_thread(self.store.record, tenant, measured, ingested_at=now)
            keep = set(outcome.accepted)
            accepted.extend(
                _Accepted(tenant, sources[event.source], reading)
                for event in measured
                if (event.customer, event.event_id) in keep
                for reading in event.readings
            )
        by_key = {(tenant, meter.key): meter for tenant, defs in meters.items() for meter in defs}
        per_message = _per_message(accepted, by_key)
        period_values = await self.accumulators.apply(per_message) if per_message else {}

        async with self.runtime.unit_of_work() as conn:
            partitions = {(m.topic, m.partition) for m in batch}
            applied = await repository.applied_offsets(conn, self.group, partitions)

            def fresh(source: Source) -> bool:
                return source.offset > applied.get((source.topic, source.partition), -1)

            await repository.park_events(
                conn,
                [
                    (item.tenant, item.event.customer, item.event.id, _exact(item.event))
                    for item in plan.parked
                    if fresh(item.source)
                ],
                now,
            )
            summaries = usage_summaries(
                ((item.tenant, item.reading) for item in accepted if fresh(item.source)), by_key
            )
            await self._usage_recorded(conn, summaries, period_values, now)
            last: dict[tuple[str, int], int] = {}
            for message in batch:
                key = (message.topic, message.partition)
                last[key] = max(last.get(key, -1), message.offset)
            await repository.mark_applied(conn, self.group, last)
        return [
            DeadLetter(
                source=message_of[rejected.incoming.source],
                payload=_narrowed(message_of[rejected.incoming.source], rejected.incoming.event),
                reason=rejected.reason,
            )
            for rejected in plan.rejected
        ]

    async def _current_meters(self, conn: Connection) -> dict[str, list[MeterDefinition]]:
        revision = await repository.meters_revision(conn)
        if revision != self._meters.revision:
            self._meters = _MeterCache(revision, await repository.active_meters(conn))
        return self._meters.by_tenant

    async def _resolve(self, conn: Connection, incoming: Sequence[IncomingEvent]) -> None:
        unknown: dict[str, set[str]] = defaultdict(set)
        for item in incoming:
            if (item.tenant, item.event.customer) not in self._customers:
                unknown[item.tenant].add(item.event.customer)
        for tenant, references in unknown.items():
            resolved = await repository.resolve_customers(conn, tenant, sorted(references))
            for reference, customer_id in resolved.items():
                self._customers[(tenant, reference)] = customer_id

    async def _usage_recorded(
        self,
        conn: Connection,
        summaries: Mapping[PeriodKey, MeterUsageSummary],
        period_values: Mapping[AccumulatorKey, Decimal],
        now: datetime,
    ) -> None:
        per_customer: dict[tuple[str, str], list[MeterUsage]] = defaultdict(list)
        for key in sorted(summaries):
            tenant, customer, meter_key, start = key
            summary = summaries[key]
            per_customer[(tenant, customer)].append(
                MeterUsage(
                    meter_key=meter_key,
                    events=summary.events,
                    value_delta=summary.value_delta,
                    period_start=start,
                    period_value=period_values.get(AccumulatorKey(*key)),
                    first_event_at=summary.first_event_at,
                    last_event_at=summary.last_event_at,
                )
            )
        for (tenant, customer), usage in per_customer.items():
            await self.runtime.outbox.add(
                conn,
                USAGE_RECORDED,
                UsageRecorded(customer_id=customer, usage=usage, recorded_at=now),
                subject=customer,
                tenant_id=tenant,
            )


def _per_message(
    accepted: Iterable[_Accepted], meters: Mapping[tuple[str, str], MeterDefinition]
) -> list[SourcedReadings]:
    """The accepted readings per message and tenant, in offset order per partition."""
    grouped: dict[tuple[Source, str], list[tuple[MeterDefinition, MeteredEvent]]] = defaultdict(
        list
    )
    for item in accepted:
        grouped[(item.source, item.tenant)].append(
            (meters[(item.tenant, item.reading.meter)], item.reading)
        )
    return sorted(
        (
            SourcedReadings(source.topic, source.partition, source.offset, tenant, readings)
            for (source, tenant), readings in grouped.items()
        ),
        key=lambda item: (item.topic, item.partition, item.offset),
    )


def _exact(event: UsageEvent) -> bytes:
    return exact_json.dumps(usage_event_json(event))


def _narrowed(message: ConsumedEvent[UsageEventsReceived], event: UsageEvent) -> bytes:
    """The dead letter of one event: its message's envelope holding that event alone."""
    envelope = message.event
    return encode_usage_events(
        _TOPICS[message.topic],
        [event],
        event_id=envelope.id,
        source=envelope.source,
        subject=envelope.subject,
        tenant_id=envelope.tenantid,
        time=envelope.time,
        received_at=envelope.data.received_at,
        traceparent=envelope.traceparent,
    )
