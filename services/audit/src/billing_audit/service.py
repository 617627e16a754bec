"""Audit use cases."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from billing_audit import repository
from billing_audit.schemas import AuditEvent, AuditEventList, AuditEventQuery
from billing_common.db import Connection
from billing_common.events import CloudEvent
from billing_common.ids import AuditEventId


async def record(conn: Connection, event: CloudEvent[Any], *, now: datetime) -> AuditEvent:
    """Append the entry for one consumed event (the inbox has already deduplicated it)."""
    entry = AuditEvent(
        id=AuditEventId.new(),
        event_id=str(event.id),
        type=event.type,
        source=event.source,
        subject=event.subject,
        occurred_at=event.time,
        recorded_at=now,
        data=event.data.model_dump(mode="json"),
    )
    await repository.append(conn, event.tenantid, entry)
    return entry


async def list_entries(conn: Connection, tenant_id: str, query: AuditEventQuery) -> AuditEventList:
    entries, has_more = await repository.list_page(
        conn,
        tenant_id,
        subject=query.subject,
        type_=query.type,
        limit=query.limit,
        starting_after=query.starting_after,
    )
    return AuditEventList(
        data=entries, has_more=has_more, next_cursor=entries[-1].id if has_more else None
    )
