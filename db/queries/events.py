"""The events outbox (migration 0015): `record` writes one event inside the caller's
tenant transaction, so it commits or rolls back with the change it describes.

`data` is the resource as the API returns it (the handler's response body), so a
partner reading the feed or a webhook sees the same shape as a GET."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import orjson

INSERT_EVENT = """
INSERT INTO event (tenant_id, type, resource_type, resource_id, data)
VALUES (app_current_tenant(), $1, $2, $3, $4::jsonb)
RETURNING id, occurred_at
"""

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


async def record(
    conn: asyncpg.Connection,
    event_type: str,
    resource_type: str,
    resource_id: UUID | None,
    data: Any,
) -> asyncpg.Record:
    """One event, in the current tenant transaction (the tenant comes from it)."""
    payload = orjson.dumps(data).decode()
    row: asyncpg.Record = await conn.fetchrow(
        INSERT_EVENT, event_type, resource_type, resource_id, payload
    )
    return row
