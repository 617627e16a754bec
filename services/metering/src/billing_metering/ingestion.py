"""What one consumed batch of usage events becomes. Pure: no I/O, no clock.

The usage consumer (`usage.py`) reads a batch of Kafka messages, each holding
events of one customer reference, and asks this module:

- `plan_batch`: which events are metered (their customer is known: readings
  per meter), which wait for their customer (parked), and which no meter can
  read (rejected, with the reason);
- `usage_summaries`: the compact `usage_recorded` facts of what the batch
  added, per customer and meter and accumulator period.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from billing_common.errors import InvalidEvent
from billing_common.usage_events import UsageEvent
from billing_metering.domain import period_start
from billing_metering.meters import Aggregation, MeterDefinition, MeteredEvent, measure_all
from billing_metering.store import MeasuredEvent


@dataclass(frozen=True, slots=True)
class Source:
    """The Kafka message an event arrived in."""

    topic: str
    partition: int
    offset: int

    @property
    def text(self) -> str:
        """How the usage store records it: a redelivered message finds its own rows."""
        return f"{self.topic}/{self.partition}/{self.offset}"


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    source: Source
    tenant: str
    event: UsageEvent


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    incoming: IncomingEvent
    reason: str


@dataclass
class BatchPlan:
    measured: dict[str, list[MeasuredEvent]] = field(default_factory=dict)
    """Per tenant, the events whose customer is known, as their meters read them."""
    parked: list[IncomingEvent] = field(default_factory=list)
    """Events whose customer is not known yet: kept until it is."""
    rejected: list[RejectedEvent] = field(default_factory=list)
    """Events a meter cannot read (a value that is not a number, ...): dead letters."""


def plan_batch(
    incoming: Iterable[IncomingEvent],
    customers: Mapping[tuple[str, str], str],
    meters: Mapping[str, Sequence[MeterDefinition]],
) -> BatchPlan:
    """Split a batch: `customers` maps (tenant, reference as sent) to our customer id,
    `meters` each tenant's active meters."""
    plan = BatchPlan()
    for item in incoming:
        customer_id = customers.get((item.tenant, item.event.customer))
        if customer_id is None:
            plan.parked.append(item)
            continue
        event = item.event
        try:
            readings = measure_all(meters.get(item.tenant, ()), event, customer=customer_id)
        except InvalidEvent as exc:
            plan.rejected.append(RejectedEvent(item, f"{exc.code}: {exc.detail}"))
            continue
        plan.measured.setdefault(item.tenant, []).append(
            MeasuredEvent(customer_id, event.id, item.source.text, tuple(readings))
        )
    return plan


PeriodKey = tuple[str, str, str, datetime]
"""(tenant, customer id, meter key, accumulator period start)."""


@dataclass
class MeterUsageSummary:
    events: int
    value_delta: Decimal | None
    first_event_at: datetime
    last_event_at: datetime


def usage_summaries(
    readings: Iterable[tuple[str, MeteredEvent]],
    meters: Mapping[tuple[str, str], MeterDefinition],
) -> dict[PeriodKey, MeterUsageSummary]:
    """Per (tenant, customer, meter, period) what `readings` (tenant, reading) add: events,
    the sum of values where the aggregation is additive (count, sum), first and last
    event times. `meters` maps (tenant, meter key) to the meter."""
    summaries: dict[PeriodKey, MeterUsageSummary] = {}
    for tenant, reading in readings:
        key = (tenant, reading.customer, reading.meter, period_start(reading.timestamp))
        meter = meters[(tenant, reading.meter)]
        summary = summaries.get(key)
        if summary is None:
            additive = meter.aggregation in (Aggregation.COUNT, Aggregation.SUM)
            summaries[key] = MeterUsageSummary(
                events=1,
                value_delta=reading.value if additive else None,
                first_event_at=reading.timestamp,
                last_event_at=reading.timestamp,
            )
            continue
        summary.events += 1
        if summary.value_delta is not None:
            summary.value_delta += reading.value
        summary.first_event_at = min(summary.first_event_at, reading.timestamp)
        summary.last_event_at = max(summary.last_event_at, reading.timestamp)
    return summaries
