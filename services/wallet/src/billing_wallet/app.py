"""Wiring of the wallet service."""

from billing_common.runtime import ServiceDefinition
from billing_wallet.events import PRODUCES

definition = ServiceDefinition(
    name="wallet",
    package="billing_wallet",
    produces=PRODUCES,
    has_migrations=False,
)
