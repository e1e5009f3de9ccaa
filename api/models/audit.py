"""The audit log as the API returns it (GET /api/v1/audit)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel

ActorKind = Literal["api_key", "staff_user", "cli", "public"]


class AuditEntry(BaseModel):
    """Who did what, when, from where, and how it ended. Never a request body, a
    secret or a donor's contact."""

    id: UUID
    occurred_at: datetime
    actor_kind: ActorKind
    actor_id: UUID | None
    actor_display: str
    action: str
    resource_type: str
    resource_id: UUID | None
    method: str | None
    path: str | None
    client_ip: str | None
    request_id: str | None
    status: int | None
    success: bool


class AuditPage(BaseModel):
    data: list[AuditEntry]
    next_cursor: str | None
