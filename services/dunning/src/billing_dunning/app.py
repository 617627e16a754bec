"""Wiring of the dunning service."""

from billing_common.runtime import ServiceDefinition
from billing_dunning.events import PRODUCES

definition = ServiceDefinition(
    name="dunning",
    package="billing_dunning",
    produces=PRODUCES,
    has_migrations=False,
)
