"""Wiring of the rating service."""

from billing_common.runtime import ServiceDefinition
from billing_rating.events import PRODUCES

definition = ServiceDefinition(
    name="rating",
    package="billing_rating",
    produces=PRODUCES,
    has_migrations=False,
)
