"""All SQL of the audit schema."""

from __future__ import annotations

import json
from typing import Any

from billing_audit.schemas import AuditEvent
from billing_common.db import Connection
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
    clauses = ["tenant_id = $1"]
    args: list[Any] = [tenant_id]
    for column, value in (("subject", subject), ("type", type_)):
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    if starting_after is not None:
        args.append(starting_after)
        clauses.append(f"id > ${len(args)}")
    args.append(limit + 1)
    rows = await conn.fetch(
        f"SELECT * FROM audit_events WHERE {' AND '.join(clauses)} ORDER BY id LIMIT ${len(args)}",
        *args,
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
        for row in rows[:limit]
    ]
    return entries, len(rows) > limit
