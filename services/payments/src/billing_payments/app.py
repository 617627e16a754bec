"""Wiring of the payments service."""

from billing_common.runtime import ServiceDefinition
from billing_payments.events import PRODUCES

definition = ServiceDefinition(
    name="payments",
    package="billing_payments",
    produces=PRODUCES,
    has_migrations=False,
)
