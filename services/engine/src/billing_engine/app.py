"""Wiring of the engine service."""

from billing_common.runtime import ServiceDefinition
from billing_engine.events import PRODUCES

definition = ServiceDefinition(
    name="engine",
    package="billing_engine",
    produces=PRODUCES,
    has_migrations=False,
)
