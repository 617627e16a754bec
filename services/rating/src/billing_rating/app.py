"""Wiring of the rating service."""

from typing import Any

from billing_common.events import CloudEvent
from billing_common.runtime import ServiceDefinition, ServiceRuntime
from billing_metering.events import PERIOD_USAGE_COMPUTED, PeriodUsageComputed
from billing_pricing.events import PLAN_PUBLISHED, PRICE_OVERRIDE_SET
from billing_rating import api, cycle, service
from billing_rating.events import PRODUCES


async def setup(runtime: ServiceRuntime) -> None:
    """Project the catalog pricing announces, and rate closing periods (every topic of
    `events.CONSUMES`)."""
    runtime.consumer.handle(PLAN_PUBLISHED, service.project_plan_published)
    runtime.consumer.handle(PRICE_OVERRIDE_SET, service.project_price_override)

    async def on_period_usage(conn: Any, event: CloudEvent[PeriodUsageComputed]) -> None:
        await cycle.period_usage_computed(runtime, conn, event)

    runtime.consumer.handle(PERIOD_USAGE_COMPUTED, on_period_usage)


definition = ServiceDefinition(
    name="rating",
    package="billing_rating",
    produces=PRODUCES,
    routes=api.routes,
    setup=setup,
)
