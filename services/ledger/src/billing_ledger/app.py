"""Wiring of the ledger service."""

from billing_common.runtime import ServiceDefinition
from billing_ledger.events import PRODUCES

definition = ServiceDefinition(
    name="ledger",
    package="billing_ledger",
    produces=PRODUCES,
    has_migrations=False,
)
