"""The audit log as the API returns it (GET /api/v1/audit)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from api.openapi import UUID_SCHEMA
from db.queries import audit as q

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


_ACTOR = q.ACTOR_NAME.pattern
_RESOURCE = q.RESOURCE_TYPE.pattern


def _checked_by(name: str) -> Callable[[Any], Any]:
    """db/queries/audit.py's check of one filter (the CLI's too), as a validator."""

    def check(raw: Any) -> Any:
        if isinstance(raw, str):
            try:
                q.Filters.parse(**{name: raw})
            except q.FilterError as exc:
                raise PydanticCustomError("invalid", exc.message) from None
        return raw

    return check


class AuditFilters(BaseModel):
    """Query filters of the audit log (api/query.py: parse_query)."""

    actor: Annotated[
        str | None,
        BeforeValidator(_checked_by("actor")),
        WithJsonSchema({"anyOf": [UUID_SCHEMA, {"type": "string", "pattern": _ACTOR}]}),
    ] = Field(
        None,
        description="An actor id (API key or staff user) or name (key prefix or username).",
    )
    resource: Annotated[
        str | None,
        BeforeValidator(_checked_by("resource")),
        WithJsonSchema({"anyOf": [UUID_SCHEMA, {"type": "string", "pattern": _RESOURCE}]}),
    ] = Field(None, description="A resource id, or a resource type such as `campaign`.")
    action: Annotated[
        str | None,
        BeforeValidator(_checked_by("action")),
        WithJsonSchema({"type": "string", "pattern": q.ACTION.pattern}),
    ] = Field(None, description="One action, e.g. `campaign.create`.")

    def filters(self) -> q.Filters:
        return q.Filters.parse(actor=self.actor, resource=self.resource, action=self.action)
