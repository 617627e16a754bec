"""Wiring of the pricing service."""

from billing_common.runtime import ServiceDefinition
from billing_pricing.events import PRODUCES

definition = ServiceDefinition(
    name="pricing",
    package="billing_pricing",
    produces=PRODUCES,
    has_migrations=False,
)
