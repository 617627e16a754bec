"""Wiring of the customers service."""

from billing_common.runtime import ServiceDefinition
from billing_customers import api
from billing_customers.events import PRODUCES

definition = ServiceDefinition(
    name="customers",
    package="billing_customers",
    produces=PRODUCES,
    routes=api.routes,
)
