"""Wiring of the audit service."""

from billing_audit import api, handlers
from billing_audit.events import PRODUCES
from billing_common.runtime import ServiceDefinition

definition = ServiceDefinition(
    name="audit",
    package="billing_audit",
    produces=PRODUCES,
    routes=api.routes,
    setup=handlers.setup,
)
