"""billing_local: the embedded stack launcher and process supervisor for bill.sh.

- EmbeddedStack starts Tansu (Kafka), PostgreSQL, Valkey (Redis) and localstripe
  on free ports of 127.0.0.1, unless the environment already names them.
- ServiceSupervisor runs the platform's services as processes (make dev, e2e).
- `python -m billing_local` starts the stack and prints `export KEY=value` lines.
"""

from billing_local.stack import (
    POSTGRES_SETTINGS,
    EmbeddedStack,
    StackError,
    StackStartError,
    StackUrls,
)
from billing_local.supervisor import ServiceSpec, ServiceStartError, ServiceSupervisor

__all__ = [
    "POSTGRES_SETTINGS",
    "EmbeddedStack",
    "ServiceSpec",
    "ServiceStartError",
    "ServiceSupervisor",
    "StackError",
    "StackStartError",
    "StackUrls",
]
