"""The public API shapes of the audit log."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from billing_common.ids import AuditEventId


class AuditEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    object: str = "audit_event"
    id: AuditEventId
    event_id: str = Field(description="The id of the event that caused this entry")
    type: str
    source: str
    subject: str
    occurred_at: AwareDatetime
    recorded_at: AwareDatetime
    data: dict[str, Any]


class AuditEventList(BaseModel):
    object: str = "list"
    data: list[AuditEvent]
    has_more: bool
    next_cursor: str | None


class AuditEventQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str | None = Field(default=None, max_length=255)
    type: str | None = Field(default=None, max_length=255)
    limit: int = Field(default=50, ge=1, le=200)
    starting_after: AuditEventId | None = None
