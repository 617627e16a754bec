"""Wiring of the demo service."""

from billing_common.runtime import ServiceDefinition
from billing_demo.events import PRODUCES

definition = ServiceDefinition(
    name="demo",
    package="billing_demo",
    produces=PRODUCES,
    has_migrations=False,
)
