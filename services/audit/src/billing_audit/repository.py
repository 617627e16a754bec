"""All SQL of the audit schema."""

from __future__ import annotations

import json

from billing_audit.schemas import AuditEvent
from billing_common.db import Connection, fetch_page
from billing_common.ids import AuditEventId


async def append(conn: Connection, tenant_id: str, entry: AuditEvent) -> None:
    await conn.execute(
        "INSERT INTO audit_events (id, event_id, tenant_id, type, source, subject, occurred_at,"
        " recorded_at, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        entry.id,
        entry.event_id,
        tenant_id,
        entry.type,
        entry.source,
        entry.subject,
        entry.occurred_at,
        entry.recorded_at,
        json.dumps(entry.data),
    )


async def list_page(
    conn: Connection,
    tenant_id: str,
    *,
    subject: str | None,
    type_: str | None,
    limit: int,
    starting_after: str | None,
) -> tuple[list[AuditEvent], bool]:
    rows, has_more = await fetch_page(
        conn,
        table="audit_events",
        columns="*",
        tenant_id=tenant_id,
        limit=limit,
        starting_after=starting_after,
        equal={"subject": subject, "type": type_},
    )
    entries = [
        AuditEvent(
            id=AuditEventId(row["id"]),
            event_id=str(row["event_id"]),
            type=row["type"],
            source=row["source"],
            subject=row["subject"],
            occurred_at=row["occurred_at"],
            recorded_at=row["recorded_at"],
            data=json.loads(row["data"]),
        )
        for row in rows
    ]
    return entries, has_more
