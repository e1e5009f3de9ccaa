"""Public (anonymous) reads and pledges.

The directory reads the owner-owned views `public_tenant` and `public_campaign`
(migration 0002), which expose only published campaigns of active tenants and
only public columns. One campaign's items and donations are read inside that
tenant's transaction (RLS); pledges are written with
db/queries/donations.insert_donation. Statements are assembled from the fixed fragments
below, never from values: every value is a `$n` parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg

Order = Literal["recent", "oldest", "deadline", "progress"]
Status = Literal["active", "ended", "all"]

SELECT_PUBLIC_TENANT = "SELECT id, slug, name FROM public_tenant WHERE slug = $1"

_DIRECTORY_COLUMNS = """
SELECT id, tenant_id, tenant_slug, tenant_name, slug, title, subtitle, description,
       image_url, categories, location, contact, starts_at, ends_at, created_at,
       deadline_key, progress
FROM public_campaign
"""

# LIKE patterns from user text: folded like the indexed column, then \ % _ escaped.
_LIKE_TEXT = "replace(replace(replace(f_fold(${n}), '\\', '\\\\'), '%', '\\%'), '_', '\\_')"

# Order → (ORDER BY, keyset condition on the last row's (sort value, id)).
# deadline_key is coalesce(ends_at, 'infinity'): campaigns without a deadline last.
_ORDERS: dict[str, tuple[str, str]] = {
    "recent": ("created_at DESC, id DESC", "(created_at, id) < (${a}, ${b})"),
    "oldest": ("created_at ASC, id ASC", "(created_at, id) > (${a}, ${b})"),
    "deadline": ("deadline_key ASC, id ASC", "(deadline_key, id) > (${a}, ${b})"),
    "progress": ("progress DESC, id DESC", "(progress, id) < (${a}::numeric, ${b})"),
}

_STATUS = {
    "active": "deadline_key > now()",
    "ended": "deadline_key <= now()",
}


@dataclass(frozen=True)
class DirectoryFilter:
    order: Order = "recent"
    status: Status = "active"
    q: str | None = None
    category: str | None = None
    location: str | None = None
    tenant_id: UUID | None = None


def directory_query(
    f: DirectoryFilter, *, after: tuple[Any, UUID] | None, limit: int
) -> tuple[str, list[Any]]:
    """The directory statement for these filters; `after` = the last row's sort key."""
    where: list[str] = []
    args: list[Any] = []

    def param(value: Any) -> int:
        args.append(value)
        return len(args)

    if f.tenant_id is not None:
        where.append(f"tenant_id = ${param(f.tenant_id)}")
    if f.status in _STATUS:
        where.append(_STATUS[f.status])
    if f.q:
        n = param(f.q)
        where.append("search_text LIKE '%' || " + _LIKE_TEXT.format(n=n) + " || '%'")
    if f.category:
        where.append(f"categories @> ARRAY[${param(f.category)}::text]")
    if f.location:
        n = param(f.location)
        where.append("location_key LIKE " + _LIKE_TEXT.format(n=n) + " || '%'")
    order_by, keyset = _ORDERS[f.order]
    if after is not None:
        a = param(after[0])
        b = param(after[1])
        where.append(keyset.format(a=a, b=b))
    sql = _DIRECTORY_COLUMNS
    if where:
        sql += "WHERE " + "\n  AND ".join(where) + "\n"
    sql += f"ORDER BY {order_by}\nLIMIT ${param(limit)}"
    return sql, args


async def select_public_tenant(conn: asyncpg.Connection, slug: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(SELECT_PUBLIC_TENANT, slug)
    return row


# The progress order computes every candidate's progress; its plan cost crosses the
# JIT threshold and compiling then costs more than the query (measured: +0.5 s).
DISABLE_JIT = "SET LOCAL jit = off"


async def disable_jit(conn: asyncpg.Connection) -> None:
    """For the rest of the current transaction."""
    await conn.execute(DISABLE_JIT)


async def select_directory(
    conn: asyncpg.Connection, f: DirectoryFilter, *, after: tuple[Any, UUID] | None, limit: int
) -> list[asyncpg.Record]:
    sql, args = directory_query(f, after=after, limit=limit)
    rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
    return rows


# One tenant's campaign, read inside that tenant's transaction (RLS applies). Drafts
# come back too (a pledge to one is a 409); the public reads treat them as absent.
SELECT_CAMPAIGN = """
SELECT id, slug, title, subtitle, description, image_url, categories, location, contact,
       starts_at, ends_at, status, created_at,
       (status = 'published'
        AND (starts_at IS NULL OR starts_at <= now())
        AND (ends_at IS NULL OR ends_at > now())) AS accepting
FROM campaign
WHERE tenant_id = $1 AND slug = $2
"""
SELECT_ITEMS = """
SELECT i.id, i.name, i.unit, i.quantity_requested,
       coalesce(t.pending_quantity, 0) AS pending_quantity,
       coalesce(t.pending_count, 0) AS pending_count,
       coalesce(t.confirmed_quantity, 0) AS confirmed_quantity,
       coalesce(t.delivered_quantity, 0) AS delivered_quantity,
       coalesce(t.confirmed_count, 0) AS confirmed_count,
       coalesce(t.delivered_count, 0) AS delivered_count
FROM campaign_item i
-- Per item through item_total_slot's key (see db/queries/items.py): a plain join
-- with the view aggregated every slot of the tenant (8.8 ms a page in the load run).
LEFT JOIN LATERAL (SELECT * FROM item_totals s WHERE s.item_id = i.id OFFSET 0) t ON true
WHERE i.tenant_id = $1 AND i.campaign_id = $2
ORDER BY i.created_at, i.id
"""
# Never donor_contact; cancelled pledges are not shown. The page of donations is
# taken first, alone, down donation_campaign_recent_idx; only then are its rows joined
# to their items (of this campaign: the foreign key (campaign_id, item_id) says they
# are). Written as one join, the planner misjudged the row count (the tenant appears
# twice, once here and once in the RLS policy) and sorted every donation of the
# campaign for each page: 3.4 ms against 0.3 ms for a campaign with 3,300 donations.
SELECT_DONATIONS = """
SELECT d.id, d.item_id, i.name AS item_name, i.unit, d.quantity, d.status, d.message,
       CASE WHEN d.anonymous OR btrim(d.donor_name) = '' THEN NULL
            ELSE d.donor_name END AS donor_name,
       d.created_at
FROM (
    SELECT id, item_id, quantity, status, message, anonymous, donor_name, created_at
    FROM donation
    WHERE tenant_id = $1 AND campaign_id = $2 AND status <> 'cancelled'
      AND (created_at, id) < (coalesce($3::timestamptz, 'infinity'::timestamptz),
                              coalesce($4::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid))
    ORDER BY created_at DESC, id DESC
    LIMIT $5
) d
JOIN campaign_item i ON i.id = d.item_id AND i.campaign_id = $2
ORDER BY d.created_at DESC, d.id DESC
"""


async def select_campaign(
    conn: asyncpg.Connection, *, tenant_id: UUID, slug: str
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(SELECT_CAMPAIGN, tenant_id, slug)
    return row


async def select_items(
    conn: asyncpg.Connection, *, tenant_id: UUID, campaign_id: UUID
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(SELECT_ITEMS, tenant_id, campaign_id)
    return rows


async def select_donations(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    campaign_id: UUID,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    created, last_id = after if after is not None else (None, None)
    rows: list[asyncpg.Record] = await conn.fetch(
        SELECT_DONATIONS, tenant_id, campaign_id, created, last_id, limit
    )
    return rows
