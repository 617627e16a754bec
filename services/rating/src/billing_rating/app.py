"""Wiring of the rating service."""

from billing_common.runtime import ServiceDefinition, ServiceRuntime
from billing_pricing.events import PLAN_PUBLISHED, PRICE_OVERRIDE_SET
from billing_rating import api, service
from billing_rating.events import PRODUCES


async def setup(runtime: ServiceRuntime) -> None:
    """Project the catalog pricing announces (every topic of `events.CONSUMES`)."""
    runtime.consumer.handle(PLAN_PUBLISHED, service.project_plan_published)
    runtime.consumer.handle(PRICE_OVERRIDE_SET, service.project_price_override)


definition = ServiceDefinition(
    name="rating",
    package="billing_rating",
    produces=PRODUCES,
    routes=api.routes,
    setup=setup,
)
