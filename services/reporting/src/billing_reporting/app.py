"""Wiring of the reporting service."""

from billing_common.runtime import ServiceDefinition
from billing_reporting.events import PRODUCES

definition = ServiceDefinition(
    name="reporting",
    package="billing_reporting",
    produces=PRODUCES,
    has_migrations=False,
)
