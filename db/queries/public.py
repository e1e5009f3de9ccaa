"""Public (anonymous) reads and pledges.

The directory reads the owner-owned views `public_tenant` and `public_campaign`
(migrations 0002, 0014), which expose only published campaigns of active tenants
and only public columns (across tenants, of listed tenants only). One campaign's
items and donations are read inside that tenant's transaction (RLS); pledges are
written with db/queries/donations.insert_donation. Statements are assembled from
the fixed fragments below, never from values: every value is a `$n` parameter.
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
TENANT_IS_PUBLIC = "SELECT EXISTS (SELECT 1 FROM public_tenant WHERE id = $1)"

_DIRECTORY_COLUMNS = """
SELECT id, tenant_id, tenant_slug, tenant_name, slug, title, subtitle, description,
       image_url, categories, location, contact, starts_at, ends_at, created_at,
       deadline_key{progress}
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
    # The whole location (folded), not a prefix: the old API's `localizacao` id.
    exact_location: bool = False


def directory_query(
    f: DirectoryFilter, *, after: tuple[Any, UUID] | None, limit: int, progress: bool = True
) -> tuple[str, list[Any]]:
    """The directory statement for these filters; `after` = the last row's sort key.

    progress=False leaves the `progress` column out (unless the order needs it): the
    view then sums no item's slots (a caller that reads the items anyway computes it
    from them, api/routes/legacy.py)."""
    where: list[str] = []
    args: list[Any] = []

    def param(value: Any) -> int:
        args.append(value)
        return len(args)

    if f.tenant_id is not None:
        where.append(f"tenant_id = ${param(f.tenant_id)}")
    else:
        # The cross-tenant directory leaves unlisted tenants out (seeded ones by
        # default, migration 0014); their own directory still shows them.
        where.append("tenant_listed")
    if f.status in _STATUS:
        where.append(_STATUS[f.status])
    if f.q:
        n = param(f.q)
        where.append("search_text LIKE '%' || " + _LIKE_TEXT.format(n=n) + " || '%'")
    if f.category:
        where.append(f"categories @> ARRAY[${param(f.category)}::text]")
    if f.location and f.exact_location:
        where.append(f"location_key = f_fold(${param(f.location)})")
    elif f.location:
        n = param(f.location)
        where.append("location_key LIKE " + _LIKE_TEXT.format(n=n) + " || '%'")
    order_by, keyset = _ORDERS[f.order]
    if after is not None:
        a = param(after[0])
        b = param(after[1])
        where.append(keyset.format(a=a, b=b))
    with_progress = progress or f.order == "progress"
    sql = _DIRECTORY_COLUMNS.format(progress=", progress" if with_progress else "")
    if where:
        sql += "WHERE " + "\n  AND ".join(where) + "\n"
    sql += f"ORDER BY {order_by}\nLIMIT ${param(limit)}"
    return sql, args


async def select_public_tenant(conn: asyncpg.Connection, slug: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(SELECT_PUBLIC_TENANT, slug)
    return row


async def tenant_is_public(conn: asyncpg.Connection, tenant_id: UUID) -> bool:
    found: bool = await conn.fetchval(TENANT_IS_PUBLIC, tenant_id)
    return found


# The progress order computes every candidate's progress; its plan cost crosses the
# JIT threshold and compiling then costs more than the query (measured: +0.5 s).
DISABLE_JIT = "SET LOCAL jit = off"


async def disable_jit(conn: asyncpg.Connection) -> None:
    """For the rest of the current transaction."""
    await conn.execute(DISABLE_JIT)


async def select_directory(
    conn: asyncpg.Connection,
    f: DirectoryFilter,
    *,
    after: tuple[Any, UUID] | None,
    limit: int,
    progress: bool = True,
) -> list[asyncpg.Record]:
    sql, args = directory_query(f, after=after, limit=limit, progress=progress)
    rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
    return rows


# One tenant's campaign, read inside that tenant's transaction (RLS applies): the
# pledge's check. Drafts come back too (a pledge to one is a 409).
SELECT_CAMPAIGN = """
SELECT id, slug, title, subtitle, description, image_url, categories, location, contact,
       starts_at, ends_at, status, created_at,
       (status = 'published'
        AND (starts_at IS NULL OR starts_at <= now())
        AND (ends_at IS NULL OR ends_at > now())) AS accepting
FROM campaign
WHERE tenant_id = $1 AND slug = $2
"""


async def select_campaign(
    conn: asyncpg.Connection, *, tenant_id: UUID, slug: str
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(SELECT_CAMPAIGN, tenant_id, slug)
    return row


# One statement each (migration 0008): the functions set the tenant for their own
# statement and read as the API role, so RLS applies as in tenant_transaction. Run
# them on a connection outside any transaction.
SELECT_CAMPAIGN_PAGE = "SELECT * FROM public_campaign_page($1, $2)"
SELECT_CAMPAIGN_DONATIONS = "SELECT * FROM public_campaign_donations($1, $2, $3, $4, $5)"
ITEM_COLUMNS = (
    "id", "name", "unit", "quantity_requested", "pending_quantity", "pending_count",
    "confirmed_quantity", "delivered_quantity", "confirmed_count", "delivered_count",
)  # fmt: skip


# Both functions in one statement, for the donor page (campaign and recent donations):
# each result comes back as an array of anonymous records (asyncpg: tuples), in the
# functions' own row order, named here by their RETURNS TABLE columns (0008, 0018;
# tests/db/test_public_functions.py checks these names against the functions).
SELECT_CAMPAIGN_VIEW = """
SELECT (SELECT array_agg(p ORDER BY p.ordinality)
        FROM public_campaign_page($1, $2) WITH ORDINALITY AS p) AS page,
       (SELECT array_agg(d ORDER BY d.ordinality)
        FROM public_campaign_donations($1, $2, NULL, NULL, $3) WITH ORDINALITY AS d) AS donations
"""
PAGE_COLUMNS = (
    "id", "slug", "title", "subtitle", "description", "image_url", "categories", "location",
    "contact", "starts_at", "ends_at", "status", "created_at", "accepting",
    *(f"item_{name}" for name in ITEM_COLUMNS),
)  # fmt: skip
DONATION_COLUMNS = (
    "campaign_status", "id", "item_id", "item_name", "unit", "quantity", "status", "message",
    "message_enc", "donor_name", "created_at",
)  # fmt: skip


def _campaign_and_items(rows: list[Any]) -> tuple[Any, list[dict[str, Any]]]:
    if not rows:
        return None, []
    items = [
        {name: r[f"item_{name}"] for name in ITEM_COLUMNS} for r in rows if r["item_id"] is not None
    ]
    return rows[0], items


async def select_campaign_page(
    conn: asyncpg.Connection, *, tenant_id: UUID, slug: str
) -> tuple[asyncpg.Record | None, list[dict[str, Any]]]:
    """The campaign (None if there is none; drafts included) and its items with
    their totals (columns ITEM_COLUMNS)."""
    rows: list[asyncpg.Record] = await conn.fetch(SELECT_CAMPAIGN_PAGE, tenant_id, slug)
    return _campaign_and_items(rows)


@dataclass(frozen=True, slots=True)
class CampaignView:
    """select_campaign_page's and select_campaign_donations' answers, first page."""

    campaign: dict[str, Any] | None
    items: list[dict[str, Any]]
    donation_status: str | None
    donations: list[dict[str, Any]]


async def select_campaign_view(
    conn: asyncpg.Connection, *, tenant_id: UUID, slug: str, limit: int
) -> CampaignView:
    """The campaign with its items, and its newest `limit` donations: one statement
    where select_campaign_page + select_campaign_donations are two."""
    row = await conn.fetchrow(SELECT_CAMPAIGN_VIEW, tenant_id, slug, limit)
    page = [dict(zip(PAGE_COLUMNS, r, strict=False)) for r in row["page"] or ()]
    given = [dict(zip(DONATION_COLUMNS, r, strict=False)) for r in row["donations"] or ()]
    campaign, items = _campaign_and_items(page)
    status = given[0]["campaign_status"] if given else None
    return CampaignView(campaign, items, status, [d for d in given if d["id"] is not None])


async def select_campaign_donations(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    slug: str,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> tuple[str | None, list[asyncpg.Record]]:
    """The campaign's status (None if there is none) and a page of its donations
    (id, item_id, item_name, unit, quantity, status, message, donor_name: None when
    anonymous, created_at)."""
    created, last_id = after if after is not None else (None, None)
    rows: list[asyncpg.Record] = await conn.fetch(
        SELECT_CAMPAIGN_DONATIONS, tenant_id, slug, created, last_id, limit
    )
    if not rows:
        return None, []
    status: str = rows[0]["campaign_status"]
    return status, [r for r in rows if r["id"] is not None]


# A new connection's warm-up (db/pool.py: warmed): the public reads'
# statements, each once: the campaign functions for the nil tenant (no tenant has
# it: no row) and the directories with a limit of one row.
_NIL = UUID(int=0)
_WARM_DIRECTORIES = (
    DirectoryFilter(),
    DirectoryFilter(order="progress", q="a"),
    DirectoryFilter(tenant_id=_NIL),
)


async def warm_public_reads(conn: asyncpg.Connection) -> None:
    """Run the donor pages' and the directory's statements once on `conn`."""
    await conn.fetchrow(SELECT_CAMPAIGN_VIEW, _NIL, "", 1)
    await conn.fetch(SELECT_CAMPAIGN_PAGE, _NIL, "")
    await conn.fetch(SELECT_CAMPAIGN_DONATIONS, _NIL, "", None, None, 1)
    for f in _WARM_DIRECTORIES:
        sql, args = directory_query(f, after=None, limit=1)
        await conn.fetch(sql, *args)
