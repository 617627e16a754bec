"""Wiring of the pricing service."""

from billing_common.runtime import ServiceDefinition, ServiceRuntime
from billing_pricing import api, service
from billing_pricing.events import CONSUMES, PRODUCES


async def setup(runtime: ServiceRuntime) -> None:
    """Project the meters metering announces (every topic of `CONSUMES`)."""
    for topic in CONSUMES:
        runtime.consumer.handle(topic, service.project_meter)


definition = ServiceDefinition(
    name="pricing",
    package="billing_pricing",
    produces=PRODUCES,
    routes=api.routes,
    setup=setup,
)
