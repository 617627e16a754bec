"""Wiring of the engine service: the test clock and billing run routes, the consumers of
subscriptions, customers and finalized invoices, and the billing clock's loop."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.routing import BaseRoute

from billing_common.runtime import ServiceDefinition, ServiceRuntime
from billing_engine import api, handlers
from billing_engine.clock import BillingClock
from billing_engine.events import PRODUCES
from billing_engine.settings import EngineSettings

SETTINGS = EngineSettings()
BILLING_CLOCK = BillingClock(SETTINGS)


async def setup(runtime: ServiceRuntime) -> None:
    handlers.register(runtime)
    runtime.spawn(BILLING_CLOCK.run(runtime), name="billing-clock")


def routes(runtime: ServiceRuntime) -> Sequence[BaseRoute]:
    return api.routes(runtime, BILLING_CLOCK, SETTINGS)


definition = ServiceDefinition(
    name="engine",
    package="billing_engine",
    produces=PRODUCES,
    routes=routes,
    setup=setup,
)
