"""Rating's step of a period's close: rate the period's usage with the subscription's plan
version and the customer's overrides, and publish the lines for invoicing.

Idempotent per saga: rating the same usage again gives the same lines, and invoicing
keeps the first `period_rated` of a saga. A percentage charge rates each event's amount:
metering's period usage carries them (`transactions`) for the meters a plan prices so.
"""

from __future__ import annotations

from billing_common.db import Connection
from billing_common.events import CloudEvent
from billing_common.runtime import ServiceContext
from billing_metering.events import PeriodUsageComputed
from billing_rating.domain import Period, Usage, UsageRecord, rate_all
from billing_rating.events import PERIOD_RATED, PeriodRated
from billing_rating.service import public_line, rating_plan


async def period_usage_computed(
    runtime: ServiceContext, conn: Connection, event: CloudEvent[PeriodUsageComputed]
) -> None:
    computed = event.data
    plan = await rating_plan(
        conn, event.tenantid, computed.plan_id, computed.plan_version, computed.customer_id
    )
    usage = Usage(
        [
            UsageRecord(
                meter_key=record.meter_key,
                group=record.group,
                quantity=record.quantity,
                transactions=record.transactions,
            )
            for record in computed.usage
        ]
    )
    lines = rate_all(plan.sheet, usage, Period(computed.period_start, computed.period_end))
    await runtime.outbox.add(
        conn,
        PERIOD_RATED,
        PeriodRated(
            saga_id=computed.saga_id,
            subscription_id=computed.subscription_id,
            customer_id=computed.customer_id,
            plan_id=computed.plan_id,
            plan_version=computed.plan_version,
            period_start=computed.period_start,
            period_end=computed.period_end,
            currency=plan.sheet.currency,
            lines=[public_line(line, line.charge_id in plan.overridden) for line in lines],
            minimum_commitment=(
                None
                if plan.plan.minimum_commitment is None
                else plan.plan.minimum_commitment.to_money().to_public()
            ),
            rated_at=runtime.clock(),
        ),
        subject=computed.customer_id,
        tenant_id=event.tenantid,
    )
