"""Wiring of the subscriptions service: its API, and the projections of plan versions
(from pricing) and customers (from customers) it consumes."""

from billing_common.runtime import ServiceDefinition, ServiceRuntime
from billing_customers.events import CUSTOMER_CREATED, CUSTOMER_UPDATED
from billing_pricing.events import PLAN_PUBLISHED
from billing_subscriptions import api, projections
from billing_subscriptions.events import PRODUCES


async def setup(runtime: ServiceRuntime) -> None:
    """Project every topic of `events.CONSUMES`."""
    runtime.consumer.handle(PLAN_PUBLISHED, projections.plan_published)
    runtime.consumer.handle(CUSTOMER_CREATED, projections.customer_created)
    runtime.consumer.handle(CUSTOMER_UPDATED, projections.customer_updated)


definition = ServiceDefinition(
    name="subscriptions",
    package="billing_subscriptions",
    produces=PRODUCES,
    routes=api.routes,
    setup=setup,
)
