"""Wiring of the subscriptions service."""

from billing_common.runtime import ServiceDefinition
from billing_subscriptions.events import PRODUCES

definition = ServiceDefinition(
    name="subscriptions",
    package="billing_subscriptions",
    produces=PRODUCES,
    has_migrations=False,
)
