"""Items (needs) of a campaign, with their exact totals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

ITEM_COLUMNS = "id, campaign_id, name, unit, quantity_requested"
ZERO_TOTALS = (
    "0::bigint AS pending_quantity, 0::bigint AS pending_count, "
    "0::bigint AS confirmed_quantity, 0::bigint AS confirmed_count, "
    "0::bigint AS delivered_quantity, 0::bigint AS delivered_count"
)

# Items with their totals in one statement; an item without donations has no row in
# item_totals (hence LEFT JOIN + coalesce). LATERAL + OFFSET 0 (which stops the planner
# from flattening it into a join with the whole view) makes the view's GROUP BY run per
# item through item_total_slot's primary key, instead of aggregating every slot.
SELECT_ITEMS_WITH_TOTALS = """
SELECT i.id, i.campaign_id, i.name, i.unit, i.quantity_requested,
       coalesce(t.pending_quantity, 0)   AS pending_quantity,
       coalesce(t.pending_count, 0)      AS pending_count,
       coalesce(t.confirmed_quantity, 0) AS confirmed_quantity,
       coalesce(t.confirmed_count, 0)    AS confirmed_count,
       coalesce(t.delivered_quantity, 0) AS delivered_quantity,
       coalesce(t.delivered_count, 0)    AS delivered_count
FROM campaign_item i
LEFT JOIN LATERAL (SELECT * FROM item_totals s WHERE s.item_id = i.id OFFSET 0) t ON true
WHERE i.tenant_id = $1 AND i.campaign_id = ANY($2::uuid[])
  AND ($3::uuid IS NULL OR i.id = $3)
ORDER BY i.campaign_id, i.created_at, i.id
"""
# Inserts several items at once (arrays of equal length, kept in order).
INSERT_ITEMS = f"""
INSERT INTO campaign_item (tenant_id, campaign_id, name, unit, quantity_requested, created_at)
SELECT $1, $2, n, u, q, clock_timestamp()
FROM unnest($3::text[], $4::text[], $5::bigint[]) WITH ORDINALITY AS x(n, u, q, o)
ORDER BY o
RETURNING {ITEM_COLUMNS}, {ZERO_TOTALS}
"""
COUNT_ITEMS = "SELECT count(*) FROM campaign_item WHERE tenant_id = $1 AND campaign_id = $2"
# FOR UPDATE conflicts with the KEY SHARE lock a donation insert takes on its item:
# after this, no donation to the item can commit until our transaction ends, and one
# that committed while we waited is seen by the next statement (ITEM_HAS_DONATIONS).
LOCK_ITEM = f"""
SELECT {ITEM_COLUMNS} FROM campaign_item
WHERE tenant_id = $1 AND campaign_id = $2 AND id = $3
FOR UPDATE
"""
ITEM_HAS_DONATIONS = """
SELECT EXISTS (SELECT 1 FROM donation WHERE tenant_id = $1 AND item_id = $2)
"""
UPDATE_ITEM = """
UPDATE campaign_item SET
    name = coalesce($4, name),
    unit = coalesce($5, unit),
    quantity_requested = coalesce($6::bigint, quantity_requested)
WHERE tenant_id = $1 AND campaign_id = $2 AND id = $3
RETURNING id
"""
# Fails with a foreign-key violation when the item has donations (no cascade).
DELETE_ITEM = """
DELETE FROM campaign_item WHERE tenant_id = $1 AND campaign_id = $2 AND id = $3 RETURNING id
"""


async def select_items(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    campaign_ids: Sequence[UUID],
    item_id: UUID | None = None,
) -> list[asyncpg.Record]:
    """Items of these campaigns with their totals, in creation order per campaign."""
    rows: list[asyncpg.Record] = await conn.fetch(
        SELECT_ITEMS_WITH_TOTALS, tenant_id, list(campaign_ids), item_id
    )
    return rows


async def insert_items(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    campaign_id: UUID,
    items: Sequence[dict[str, Any]],
) -> list[asyncpg.Record]:
    if not items:
        return []
    rows: list[asyncpg.Record] = await conn.fetch(
        INSERT_ITEMS,
        tenant_id,
        campaign_id,
        [i["name"] for i in items],
        [i["unit"] for i in items],
        [i["quantity_requested"] for i in items],
    )
    return rows


async def count_items(conn: asyncpg.Connection, *, tenant_id: UUID, campaign_id: UUID) -> int:
    count: int = await conn.fetchval(COUNT_ITEMS, tenant_id, campaign_id)
    return count


async def lock_item(
    conn: asyncpg.Connection, *, tenant_id: UUID, campaign_id: UUID, item_id: UUID
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(LOCK_ITEM, tenant_id, campaign_id, item_id)
    return row


async def item_has_donations(conn: asyncpg.Connection, *, tenant_id: UUID, item_id: UUID) -> bool:
    found: bool = await conn.fetchval(ITEM_HAS_DONATIONS, tenant_id, item_id)
    return found


async def update_item(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    campaign_id: UUID,
    item_id: UUID,
    changes: dict[str, Any],
) -> bool:
    """Set the given fields (none of them nullable); False if not found."""
    found: UUID | None = await conn.fetchval(
        UPDATE_ITEM,
        tenant_id,
        campaign_id,
        item_id,
        changes.get("name"),
        changes.get("unit"),
        changes.get("quantity_requested"),
    )
    return found is not None


async def delete_item(
    conn: asyncpg.Connection, *, tenant_id: UUID, campaign_id: UUID, item_id: UUID
) -> bool:
    """True if deleted; raises asyncpg.ForeignKeyViolationError if it has donations."""
    found: UUID | None = await conn.fetchval(DELETE_ITEM, tenant_id, campaign_id, item_id)
    return found is not None


# Folds the item slots of at most $1 items into slot 0 (migration 0028); the worker
# calls it every TOTALS_COMPACT_INTERVAL seconds.
COMPACT_TOTALS = "SELECT compact_item_totals($1)"


# A round takes about 0.1 ms an item; past this asyncpg cancels the statement (its
# locks go with it) and raises, instead of the pool's 10 s command timeout.
COMPACT_TIMEOUT = 5.0


async def compact_totals(conn: asyncpg.Connection, *, max_items: int) -> int:
    """How many items' slots were folded (0: nothing to fold, or another round ran)."""
    folded: int = await conn.fetchval(COMPACT_TOTALS, max_items, timeout=COMPACT_TIMEOUT)
    return folded
