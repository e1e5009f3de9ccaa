"""The audit log (migration 0017): one row per write through the partner API and per
operator command. Rows hold identifiers and outcomes only, never request bodies,
secrets or donor contacts; `detail` carries an operator command's counts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

# One call, outside any transaction: the function sets the tenant for its own
# statement (migration 0027) and takes the actor's display from the key's or the
# staff user's row when the caller has none.
INSERT_ENTRY = (
    "SELECT audit_api_entry($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::inet, $11, $12, $13)"
)

INSERT_OPERATOR_ENTRY = """
INSERT INTO audit_log (tenant_id, actor_kind, actor_display, action, resource_type,
                       resource_id, success, detail)
VALUES ($1, 'cli', $2, $3, $4, $5, true, $6::jsonb)
"""

_COLUMNS = """
a.id, a.tenant_id, a.occurred_at, a.actor_kind, a.actor_id, a.actor_display, a.action,
a.resource_type, a.resource_id, a.method, a.path, host(a.client_ip) AS client_ip,
a.request_id, a.status, a.success, a.detail
"""
_FILTERS = """
  AND ($2::uuid IS NULL OR a.actor_id = $2)
  AND ($3::text IS NULL OR a.actor_display = $3)
  AND ($4::uuid IS NULL OR a.resource_id = $4)
  AND ($5::text IS NULL OR a.resource_type = $5)
  AND ($6::text IS NULL OR a.action = $6)
  AND ($7::timestamptz IS NULL OR (a.occurred_at, a.id) < ($7, $8::uuid))
ORDER BY a.occurred_at DESC, a.id DESC
LIMIT $9
"""
SELECT_ENTRIES = f"SELECT {_COLUMNS} FROM audit_log a WHERE a.tenant_id = $1 {_FILTERS}"
# The operator's view: every tenant's rows and the tenant-less ones, with the slug
# (NULL once the tenant is deleted or for a tenant-less row).
SELECT_OPERATOR_ENTRIES = f"""
SELECT {_COLUMNS}, t.slug AS tenant
FROM audit_log a LEFT JOIN tenant t ON t.id = a.tenant_id
WHERE ($1::uuid IS NULL OR a.tenant_id = $1) {_FILTERS}
"""

# One batch by primary key, so each statement holds its locks briefly.
DELETE_EXPIRED = """
DELETE FROM audit_log WHERE id IN (
    SELECT id FROM audit_log
    WHERE occurred_at < now() - make_interval(days => $1)
    LIMIT $2
)
"""


@dataclass(frozen=True)
class Entry:
    """One write through the API, as api/audit.py saw it."""

    actor_kind: str
    actor_id: UUID | None
    action: str
    resource_type: str
    resource_id: UUID | None
    method: str
    path: str
    client_ip: str | None
    request_id: str | None
    status: int
    actor_display: str | None = None

    @property
    def success(self) -> bool:
        return self.status < 400


ACTOR_NAME = re.compile(r"^[A-Za-z0-9_.@+ ()-]{1,200}$")
RESOURCE_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
ACTION = re.compile(r"^[a-z][a-z0-9_]{0,48}\.[a-z][a-z0-9_]{0,48}$")


class FilterError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _as_uuid(raw: str) -> UUID | None:
    try:
        return UUID(raw)
    except ValueError:
        return None


@dataclass(frozen=True)
class Filters:
    actor_id: UUID | None = None
    actor_display: str | None = None
    resource_id: UUID | None = None
    resource_type: str | None = None
    action: str | None = None
    after: tuple[datetime, UUID] | None = None

    @classmethod
    def parse(
        cls, *, actor: str | None = None, resource: str | None = None, action: str | None = None
    ) -> Filters:
        """The API's and the CLI's filters: `actor` an actor id (API key or staff user)
        or name (key prefix, username, OS user); `resource` a resource id or type
        (`campaign`); `action` one action (`campaign.create`). FilterError if malformed."""
        actor_id = resource_id = None
        actor_name = resource_type = None
        if actor:
            actor_id = _as_uuid(actor)
            if actor_id is None:
                if not ACTOR_NAME.match(actor):
                    raise FilterError(
                        "actor", "must be a key or user id, a key prefix or a username"
                    )
                actor_name = actor
        if resource:
            resource_id = _as_uuid(resource)
            if resource_id is None:
                if not RESOURCE_TYPE.match(resource):
                    raise FilterError(
                        "resource", "must be a resource id or a resource type, e.g. campaign"
                    )
                resource_type = resource
        if action and not ACTION.match(action):
            raise FilterError("action", "must be an action such as campaign.create")
        return cls(
            actor_id=actor_id,
            actor_display=actor_name,
            resource_id=resource_id,
            resource_type=resource_type,
            action=action or None,
        )

    def args(self) -> tuple[Any, ...]:
        at, last = self.after or (None, None)
        return (
            self.actor_id,
            self.actor_display,
            self.resource_id,
            self.resource_type,
            self.action,
            at,
            last,
        )


async def insert_entry(conn: asyncpg.Connection, tenant_id: UUID, entry: Entry) -> UUID:
    """One API row of `tenant_id`, on a connection outside any transaction."""
    entry_id: UUID = await conn.fetchval(
        INSERT_ENTRY,
        tenant_id,
        entry.actor_kind,
        entry.actor_id,
        entry.actor_display,
        entry.action,
        entry.resource_type,
        entry.resource_id,
        entry.method,
        entry.path[:500],
        entry.client_ip,
        entry.request_id,
        entry.status,
        entry.success,
    )
    return entry_id


async def insert_operator_entry(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID | None,
    actor_display: str,
    action: str,
    resource_type: str,
    resource_id: UUID | None,
    detail: dict[str, Any],
) -> None:
    """One CLI row (a command that succeeded) of a tenant, or tenant-less (None)."""
    await conn.execute(
        INSERT_OPERATOR_ENTRY,
        tenant_id,
        actor_display[:200],
        action,
        resource_type,
        resource_id,
        orjson.dumps(detail, default=str).decode(),
    )


async def select_entries(
    conn: asyncpg.Connection, *, tenant_id: UUID, filters: Filters, limit: int
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(SELECT_ENTRIES, tenant_id, *filters.args(), limit)
    return rows


async def select_operator_entries(
    conn: asyncpg.Connection, *, tenant_id: UUID | None, filters: Filters, limit: int
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        SELECT_OPERATOR_ENTRIES, tenant_id, *filters.args(), limit
    )
    return rows


async def delete_expired(conn: asyncpg.Connection, *, days: int, limit: int) -> int:
    status: str = await conn.execute(DELETE_EXPIRED, days, limit)
    return int(status.rsplit(" ", 1)[1])
