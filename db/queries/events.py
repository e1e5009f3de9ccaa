"""The events outbox (migration 0015): `record` writes one event inside the caller's
tenant transaction, so it commits or rolls back with the change it describes.

`data` is the resource as the API returns it (the handler's response body), minus
personal data: see api/models/events.py for what each type carries.

The feed (`select_events`) pages forward on (xid, seq) over the rows whose
transaction is older than every transaction still running; see the migration for
why a cursor on `seq` or on `occurred_at` alone would skip late commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

import asyncpg
import orjson


def insert_event(first: int) -> str:
    """The INSERT of one event of the current tenant, its four parameters
    (`event_payload`) numbered from `first`: alone, or inside another statement
    (db/queries/idempotency.py: UPSERT_RECORD_WITH_EVENT)."""
    a, b, c, d = (f"${n}" for n in range(first, first + 4))
    return (
        "INSERT INTO event (tenant_id, type, resource_type, resource_id, data)\n"
        f"VALUES (app_current_tenant(), {a}, {b}, {c}, {d}::jsonb)"
    )


INSERT_EVENT = insert_event(1) + "\nRETURNING id, occurred_at"

EVENT_TYPES = (
    "donation.created",
    "donation.confirmed",
    "donation.delivered",
    "donation.cancelled",
    "campaign.created",
    "campaign.updated",
    "campaign.deleted",
    "item.updated",
)
# Notices the system itself writes (worker/webhooks.py: an endpoint disabled after
# persistent failure); the feed lists and filters them like the changes above.
NOTICE_TYPES = ("webhook.disabled",)
FEED_TYPES = (*EVENT_TYPES, *NOTICE_TYPES)

# Forward from a position: rows of ended transactions only (`xid` below the
# horizon, taken by the caller just before), after (xid, seq), optionally of some
# types and occurred after an instant. The bounds are always values (the first
# page passes (0, 0)), so the row comparison stays an index condition on
# (tenant_id, xid, seq).
SELECT_EVENTS = """
SELECT e.id, e.seq, e.xid::text AS xid, e.type, e.resource_type, e.resource_id,
       e.occurred_at, e.data::text AS data
FROM event e
WHERE e.tenant_id = $1
  AND e.xid < $4::text::xid8
  AND (e.xid, e.seq) > ($2::text::xid8, $3::bigint)
  AND ($5::text[] IS NULL OR e.type = ANY($5::text[]))
  AND ($6::timestamptz IS NULL OR e.occurred_at > $6::timestamptz)
ORDER BY e.xid, e.seq
LIMIT $7
"""
# The position every reader has seen past: no transaction below it is still running.
SELECT_HORIZON = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text"

# One batch by primary key per statement (short row locks while the API writes).
DELETE_OLD_EVENTS = """
DELETE FROM event WHERE id IN (
    SELECT id FROM event WHERE occurred_at < now() - make_interval(days => $1) LIMIT $2
)
"""


def _default(obj: Any) -> Any:
    # asyncpg returns its own UUID subclass, which orjson does not take natively.
    if isinstance(obj, uuid.UUID):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


class PendingEvent(NamedTuple):
    """An event to write later in the same transaction, together with another
    statement (db/queries/idempotency.py: `upsert_record`), or alone (`write`)."""

    type: str
    resource_type: str
    resource_id: UUID | None
    data: Any


def event_payload(event: PendingEvent) -> tuple[str, str, UUID | None, str]:
    """INSERT_EVENT's parameters for `event`."""
    payload = orjson.dumps(event.data, default=_default).decode()
    return event.type, event.resource_type, event.resource_id, payload


async def record(
    conn: asyncpg.Connection,
    event_type: str,
    resource_type: str,
    resource_id: UUID | None,
    data: Any,
) -> asyncpg.Record:
    """One event, in the current tenant transaction (the tenant comes from it)."""
    return await write(conn, PendingEvent(event_type, resource_type, resource_id, data))


async def write(conn: asyncpg.Connection, event: PendingEvent) -> asyncpg.Record:
    """`event`, in the current tenant transaction."""
    row: asyncpg.Record = await conn.fetchrow(INSERT_EVENT, *event_payload(event))
    return row


async def select_events(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    after: tuple[int, int],
    below: int,
    types: Sequence[str] | None,
    occurred_after: datetime | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Up to `limit` events after the position `after` = (xid, seq) whose xid is below
    `below` (`horizon()`), oldest first."""
    xid, seq = after
    rows: list[asyncpg.Record] = await conn.fetch(
        SELECT_EVENTS,
        tenant_id,
        str(xid),
        seq,
        str(below),
        list(types) if types else None,
        occurred_after,
        limit,
    )
    return rows


async def horizon(conn: asyncpg.Connection) -> int:
    """The xid below which every transaction has ended (their events are all visible)."""
    value: str = await conn.fetchval(SELECT_HORIZON)
    return int(value)


async def delete_older_than(conn: asyncpg.Connection, *, days: int, limit: int) -> int:
    """Owner-role maintenance (all tenants): at most `limit` events that occurred more
    than `days` days ago; how many went."""
    status: str = await conn.execute(DELETE_OLD_EVENTS, days, limit)
    return int(status.split()[-1])
