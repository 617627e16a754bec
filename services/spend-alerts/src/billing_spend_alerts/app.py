"""Wiring of the spend-alerts service."""

from billing_common.runtime import ServiceDefinition
from billing_spend_alerts.events import PRODUCES

definition = ServiceDefinition(
    name="spend-alerts",
    package="billing_spend_alerts",
    produces=PRODUCES,
    has_migrations=False,
)
