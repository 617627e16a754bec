"""Wiring of the invoicing service: its API, its projections, the period's invoice (the
saga step after rating), the test clocks (their advances finalize their customers' drafts)
and the loop that finalizes drafts whose grace period ended on the real clock."""

from __future__ import annotations

import asyncio
import logging

from billing_common.cycle import PERIOD_CLOSING, TEST_CLOCK_ADVANCED, TEST_CLOCK_CUSTOMER_ATTACHED
from billing_common.errors import ServiceUnavailable
from billing_common.runtime import ServiceDefinition, ServiceRuntime
from billing_customers.events import CUSTOMER_CREATED, CUSTOMER_UPDATED
from billing_invoicing import api, projections, service
from billing_invoicing.events import PRODUCES
from billing_pricing.events import COUPON_CREATED
from billing_rating.events import PERIOD_RATED
from billing_subscriptions.events import (
    BILLING_EFFECTS_RECORDED,
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_UPDATED,
)

logger = logging.getLogger(__name__)

#: How often drafts whose grace period ended are looked for, in seconds.
FINALIZE_INTERVAL_SECONDS = 30.0


async def finalize_drafts_periodically(
    runtime: ServiceRuntime, interval: float = FINALIZE_INTERVAL_SECONDS
) -> None:
    """Finalize the drafts whose grace period ended, on the runtime's clock (those of
    customers on a test clock are finalized when their clock advances)."""
    while True:
        try:
            count = await service.finalize_due(runtime, now=runtime.clock())
            if count:
                logger.info("finalized %d drafts whose grace period ended", count)
        except ServiceUnavailable:
            pass  # still starting
        except Exception:
            logger.warning("finalizing due drafts failed", exc_info=True)
        await asyncio.sleep(interval)


async def setup(runtime: ServiceRuntime) -> None:
    """Project every topic of `events.CONSUMES`; bill rated periods; start the grace loop."""
    invoicing = service.Invoicing(runtime.outbox, runtime.clock)
    consumer = runtime.consumer
    # A rated period whose projections lag is parked (not retried in place); each
    # projection of a customer then bills the periods parked for it.
    resuming = invoicing.resuming
    consumer.handle(CUSTOMER_CREATED, resuming(projections.customer_created))
    consumer.handle(CUSTOMER_UPDATED, resuming(projections.customer_updated))
    consumer.handle(SUBSCRIPTION_CREATED, resuming(projections.subscription_created))
    consumer.handle(SUBSCRIPTION_UPDATED, resuming(projections.subscription_updated))
    consumer.handle(BILLING_EFFECTS_RECORDED, resuming(projections.billing_effects_recorded))
    consumer.handle(PERIOD_CLOSING, resuming(projections.period_closing))
    consumer.handle(COUPON_CREATED, invoicing.coupon_created)
    consumer.handle(PERIOD_RATED, invoicing.bill_or_park)
    consumer.handle(TEST_CLOCK_CUSTOMER_ATTACHED, projections.test_clock_customer_attached)
    consumer.handle(TEST_CLOCK_ADVANCED, invoicing.test_clock_advanced)
    runtime.spawn(finalize_drafts_periodically(runtime), name="finalize-drafts")


definition = ServiceDefinition(
    name="invoicing",
    package="billing_invoicing",
    produces=PRODUCES,
    routes=api.routes,
    setup=setup,
)
