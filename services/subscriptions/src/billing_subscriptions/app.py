"""Wiring of the subscriptions service: its API, the projections of plan versions and
coupons (from pricing), customers (from customers) and test clocks (from the engine) it consumes,
and the billing clock's steps (period closes and trial ends from the engine, see `cycle`)."""

from billing_common.cycle import (
    PERIOD_CLOSING,
    TEST_CLOCK_ADVANCED,
    TEST_CLOCK_CUSTOMER_ATTACHED,
    PeriodClosing,
)
from billing_common.db import Connection
from billing_common.events import CloudEvent
from billing_common.runtime import ServiceDefinition, ServiceRuntime
from billing_customers.events import CUSTOMER_CREATED, CUSTOMER_UPDATED
from billing_pricing.events import COUPON_CREATED, PLAN_PUBLISHED
from billing_subscriptions import api, cycle, projections
from billing_subscriptions.events import PRODUCES, TRIAL_END_REQUESTED, TrialEndRequested


async def setup(runtime: ServiceRuntime) -> None:
    """Handle every topic of `events.CONSUMES`."""
    runtime.consumer.handle(PLAN_PUBLISHED, projections.plan_published)
    runtime.consumer.handle(COUPON_CREATED, projections.coupon_created)
    runtime.consumer.handle(CUSTOMER_CREATED, projections.customer_created)
    runtime.consumer.handle(CUSTOMER_UPDATED, projections.customer_updated)

    async def on_period_closing(conn: Connection, event: CloudEvent[PeriodClosing]) -> None:
        await cycle.period_closing(conn, runtime.outbox, event)

    async def on_trial_end_requested(
        conn: Connection, event: CloudEvent[TrialEndRequested]
    ) -> None:
        await cycle.trial_end_requested(conn, runtime.outbox, event)

    runtime.consumer.handle(PERIOD_CLOSING, on_period_closing)
    runtime.consumer.handle(TRIAL_END_REQUESTED, on_trial_end_requested)
    runtime.consumer.handle(TEST_CLOCK_CUSTOMER_ATTACHED, projections.test_clock_customer_attached)
    runtime.consumer.handle(TEST_CLOCK_ADVANCED, projections.test_clock_advanced)


definition = ServiceDefinition(
    name="subscriptions",
    package="billing_subscriptions",
    produces=PRODUCES,
    routes=api.routes,
    setup=setup,
)
