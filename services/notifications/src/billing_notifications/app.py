"""Wiring of the notifications service."""

from billing_common.runtime import ServiceDefinition
from billing_notifications.events import PRODUCES

definition = ServiceDefinition(
    name="notifications",
    package="billing_notifications",
    produces=PRODUCES,
    has_migrations=False,
)
