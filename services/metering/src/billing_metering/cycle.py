"""Metering's step of a period's close: the usage of the closing period, for rating.

Idempotent per saga: a repeated `period_closing` (redelivered, or re-emitted by the
engine after a timeout) computes the same usage again and publishes it again; rating
and invoicing keep the first per saga id.
"""

from __future__ import annotations

from billing_common.cycle import PeriodClosing
from billing_common.db import Connection
from billing_common.events import CloudEvent
from billing_common.runtime import ServiceContext
from billing_metering import service
from billing_metering.events import PERIOD_USAGE_COMPUTED, PeriodUsageComputed
from billing_metering.store import UsageStore


async def period_closing(
    runtime: ServiceContext, store: UsageStore, conn: Connection, event: CloudEvent[PeriodClosing]
) -> None:
    closing = event.data
    usage = await service.period_usage(
        store, conn, event.tenantid, closing.customer_id, closing.period_start, closing.period_end
    )
    await runtime.outbox.add(
        conn,
        PERIOD_USAGE_COMPUTED,
        PeriodUsageComputed(
            saga_id=closing.saga_id,
            subscription_id=closing.subscription_id,
            customer_id=closing.customer_id,
            plan_id=closing.plan_id,
            plan_version=closing.plan_version,
            period_start=closing.period_start,
            period_end=closing.period_end,
            usage=usage,
            computed_at=runtime.clock(),
        ),
        subject=closing.customer_id,
        tenant_id=event.tenantid,
    )
