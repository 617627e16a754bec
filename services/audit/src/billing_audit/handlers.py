"""Subscribers: every audited topic appends one entry."""

from __future__ import annotations

from typing import Any

from billing_audit import service
from billing_audit.events import CONSUMES
from billing_common.db import Connection
from billing_common.events import CloudEvent
from billing_common.runtime import ServiceRuntime


async def setup(runtime: ServiceRuntime) -> None:
    async def on_event(conn: Connection, event: CloudEvent[Any]) -> None:
        await service.record(conn, event, now=runtime.clock())

    for topic in CONSUMES:
        runtime.consumer.handle(topic, on_event)
