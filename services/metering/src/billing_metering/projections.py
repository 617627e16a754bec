"""What metering learns from other services: customers (to resolve usage events and release
the events that waited for them) and the plans that charge on meters."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from decimal import Decimal

from billing_common.db import Connection
from billing_common.events import CloudEvent
from billing_common.ids import uuid7
from billing_common.outbox import OutboxWriter
from billing_common.runtime import ServiceContext
from billing_common.usage_events import MAX_EVENTS_PER_MESSAGE, UsageEvent, encode_usage_events
from billing_customers.events import CustomerCreated, CustomerUpdated
from billing_metering import repository
from billing_metering.events import PARKED_EVENTS_RELEASED, PlanMeters

logger = logging.getLogger(__name__)


async def customer_known(
    runtime: ServiceContext,
    conn: Connection,
    event: CloudEvent[CustomerCreated] | CloudEvent[CustomerUpdated],
) -> None:
    """Learn the customer (or its new external id), then release the events that waited for
    it by either name."""
    data = event.data
    await repository.upsert_customer(conn, event.tenantid, data.customer_id, data.external_id)
    for reference in {data.customer_id, data.external_id}:
        await release_parked(
            conn, runtime.outbox, event.tenantid, reference, data.customer_id, runtime.clock()
        )


async def plan_published(conn: Connection, event: CloudEvent[PlanMeters]) -> None:
    """Remember the meters a plan version charges on: they cannot be deleted."""
    data = event.data
    await repository.add_plan_references(
        conn, event.tenantid, data.plan_id, data.meter_keys, data.per_transaction_meters
    )


async def release_parked(
    conn: Connection,
    outbox: OutboxWriter,
    tenant_id: str,
    reference: str,
    customer_id: str,
    now: datetime,
) -> int:
    """Move the parked events of `reference` into the usage stream, named by `customer_id`;
    the removal and the messages commit together. Returns how many were released."""
    released = 0
    while True:
        parked = await repository.take_parked_events(
            conn, tenant_id, reference, MAX_EVENTS_PER_MESSAGE
        )
        if not parked:
            return released
        events = [
            UsageEvent.model_validate(
                {**json.loads(raw, parse_float=Decimal), "customer": customer_id}
            )
            for raw in parked
        ]
        event_id = uuid7()
        payload = encode_usage_events(
            PARKED_EVENTS_RELEASED,
            events,
            event_id=event_id,
            source="metering",
            subject=customer_id,
            tenant_id=tenant_id,
            time=now,
            received_at=now,
        )
        await outbox.add_encoded(
            conn,
            PARKED_EVENTS_RELEASED,
            payload,
            event_id=event_id,
            subject=customer_id,
            traceparent=None,
        )
        released += len(events)


async def release_known_customers(runtime: ServiceContext, *, limit: int = 100) -> int:
    """Release parked events whose customer is known by now: the safety net for an event
    parked while its customer's creation was being applied."""
    async with runtime.pool.acquire() as conn:
        waiting = await repository.parked_customers_now_known(conn, limit)
    released = 0
    for parked in waiting:
        async with runtime.unit_of_work() as conn:
            released += await release_parked(
                conn,
                runtime.outbox,
                parked.tenant_id,
                parked.customer_ref,
                parked.customer_id,
                runtime.clock(),
            )
    return released


async def sweep_parked_events(runtime: ServiceContext, interval_seconds: float) -> None:
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            released = await release_known_customers(runtime)
            if released:
                logger.info("released %d parked usage events", released)
        except Exception:
            logger.warning("releasing parked usage events failed", exc_info=True)
