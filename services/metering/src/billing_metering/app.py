"""Wiring of the metering service."""

from billing_common.runtime import ServiceDefinition
from billing_metering.events import PRODUCES

definition = ServiceDefinition(
    name="metering",
    package="billing_metering",
    produces=PRODUCES,
    has_migrations=False,
)
