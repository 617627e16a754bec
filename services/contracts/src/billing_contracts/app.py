"""Wiring of the contracts service."""

from billing_common.runtime import ServiceDefinition
from billing_contracts.events import PRODUCES

definition = ServiceDefinition(
    name="contracts",
    package="billing_contracts",
    produces=PRODUCES,
    has_migrations=False,
)
