"""Wiring of the invoicing service."""

from billing_common.runtime import ServiceDefinition
from billing_invoicing.events import PRODUCES

definition = ServiceDefinition(
    name="invoicing",
    package="billing_invoicing",
    produces=PRODUCES,
    has_migrations=False,
)
