"""Campaigns of one tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

# Names of the constraints the API turns into field errors.
SLUG_UNIQUE = "campaign_tenant_id_slug_key"
PERIOD_CHECK = "campaign_check"

CAMPAIGN_COLUMNS = (
    "id, slug, title, subtitle, description, image_url, categories, location, contact, "
    "starts_at, ends_at, status, created_at, updated_at"
)
# Fields a PATCH may set; the UPDATE below takes the set ones as a text[] mask.
UPDATABLE = (
    "slug",
    "title",
    "subtitle",
    "description",
    "image_url",
    "categories",
    "location",
    "contact",
    "starts_at",
    "ends_at",
    "status",
)

INSERT_CAMPAIGN = f"""
INSERT INTO campaign (tenant_id, slug, title, subtitle, description, image_url, categories,
                      location, contact, starts_at, ends_at, status)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
RETURNING {CAMPAIGN_COLUMNS}
"""
SELECT_CAMPAIGN = f"SELECT {CAMPAIGN_COLUMNS} FROM campaign WHERE tenant_id = $1 AND id = $2"
# The tenant's slugs that a slug derived from `base` ($2: [a-z0-9-] only, so no LIKE
# wildcards) would collide with: `base` itself and `base-<n>`.
SELECT_TAKEN_SLUGS = """
SELECT slug FROM campaign
WHERE tenant_id = $1 AND (slug = $2 OR (slug LIKE $2 || '-%' AND slug ~ ('^' || $2 || '-[0-9]+$')))
"""
# Held until the transaction ends: creates deriving the same slug base in one tenant
# take turns, so each sees the slug the one before it committed.
LOCK_SLUG_BASE = (
    "SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text || '/' || $2::text, 0))"
)
# Keyset page on (created_at DESC, id DESC); filters are optional ($n IS NULL = no filter).
# The first page compares with (infinity, max uuid), so the keyset condition is always an
# index range on campaign_tenant_recent_idx, even in a generic prepared plan.
SELECT_CAMPAIGNS = f"""
SELECT {CAMPAIGN_COLUMNS} FROM campaign
WHERE tenant_id = $1
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR title ILIKE $3)
  AND ($4::text IS NULL OR categories @> ARRAY[$4::text])
  AND ($5::text IS NULL OR location ILIKE $5)
  AND (created_at, id) < (coalesce($6::timestamptz, 'infinity'),
                          coalesce($7::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
ORDER BY created_at DESC, id DESC
LIMIT $8
"""
UPDATE_CAMPAIGN = f"""
UPDATE campaign SET
    slug        = CASE WHEN 'slug' = ANY($3) THEN $4 ELSE slug END,
    title       = CASE WHEN 'title' = ANY($3) THEN $5 ELSE title END,
    subtitle    = CASE WHEN 'subtitle' = ANY($3) THEN $6 ELSE subtitle END,
    description = CASE WHEN 'description' = ANY($3) THEN $7 ELSE description END,
    image_url   = CASE WHEN 'image_url' = ANY($3) THEN $8 ELSE image_url END,
    categories  = CASE WHEN 'categories' = ANY($3) THEN $9::text[] ELSE categories END,
    location    = CASE WHEN 'location' = ANY($3) THEN $10 ELSE location END,
    contact     = CASE WHEN 'contact' = ANY($3) THEN $11 ELSE contact END,
    starts_at   = CASE WHEN 'starts_at' = ANY($3) THEN $12::timestamptz ELSE starts_at END,
    ends_at     = CASE WHEN 'ends_at' = ANY($3) THEN $13::timestamptz ELSE ends_at END,
    status      = CASE WHEN 'status' = ANY($3) THEN $14 ELSE status END,
    updated_at  = clock_timestamp()
WHERE tenant_id = $1 AND id = $2
RETURNING {CAMPAIGN_COLUMNS}
"""
# Bumps updated_at when the campaign's items change; also locks the campaign row, so
# item changes of one campaign are serialised (the item cap holds under concurrency).
TOUCH_CAMPAIGN = """
UPDATE campaign SET updated_at = clock_timestamp()
WHERE tenant_id = $1 AND id = $2
RETURNING id
"""
# Fails with a foreign-key violation when the campaign has donations (no cascade).
DELETE_CAMPAIGN = "DELETE FROM campaign WHERE tenant_id = $1 AND id = $2 RETURNING id"


def like_pattern(value: str) -> str:
    """An ILIKE pattern matching `value` anywhere, with its wildcards taken literally."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def insert_campaign(
    conn: asyncpg.Connection, *, tenant_id: UUID, fields: dict[str, Any]
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        INSERT_CAMPAIGN,
        tenant_id,
        *(fields[name] for name in UPDATABLE),
    )
    return row


async def insert_campaign_unless_slug_taken(
    conn: asyncpg.Connection, *, tenant_id: UUID, fields: dict[str, Any]
) -> asyncpg.Record | None:
    """`insert_campaign` in a savepoint: None when the slug is taken (the caller's
    transaction goes on; db/tenancy.py's is not asyncpg's, so no nested transaction())."""
    await conn.execute("SAVEPOINT campaign_slug")
    try:
        row = await insert_campaign(conn, tenant_id=tenant_id, fields=fields)
    except asyncpg.UniqueViolationError as exc:
        await conn.execute("ROLLBACK TO SAVEPOINT campaign_slug")
        if exc.constraint_name != SLUG_UNIQUE:
            raise
        return None
    await conn.execute("RELEASE SAVEPOINT campaign_slug")
    return row


async def lock_slug_base(conn: asyncpg.Connection, *, tenant_id: UUID, base: str) -> None:
    await conn.execute(LOCK_SLUG_BASE, tenant_id, base)


async def taken_slugs(conn: asyncpg.Connection, *, tenant_id: UUID, base: str) -> set[str]:
    rows = await conn.fetch(SELECT_TAKEN_SLUGS, tenant_id, base)
    return {r["slug"] for r in rows}


async def select_campaign(
    conn: asyncpg.Connection, *, tenant_id: UUID, campaign_id: UUID
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(SELECT_CAMPAIGN, tenant_id, campaign_id)
    return row


async def select_campaigns(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    status: str | None,
    q: str | None,
    category: str | None,
    location: str | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    created, last_id = after if after else (None, None)
    rows: list[asyncpg.Record] = await conn.fetch(
        SELECT_CAMPAIGNS,
        tenant_id,
        status,
        like_pattern(q) if q is not None else None,
        category,
        like_pattern(location) if location is not None else None,
        created,
        last_id,
        limit,
    )
    return rows


async def update_campaign(
    conn: asyncpg.Connection, *, tenant_id: UUID, campaign_id: UUID, changes: dict[str, Any]
) -> asyncpg.Record | None:
    """Set the fields in `changes` (others keep their value); None if not found."""
    unknown = set(changes) - set(UPDATABLE)
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    row: asyncpg.Record | None = await conn.fetchrow(
        UPDATE_CAMPAIGN,
        tenant_id,
        campaign_id,
        list(changes),
        *(changes.get(name) for name in UPDATABLE),
    )
    return row


async def touch_campaign(conn: asyncpg.Connection, *, tenant_id: UUID, campaign_id: UUID) -> bool:
    found: UUID | None = await conn.fetchval(TOUCH_CAMPAIGN, tenant_id, campaign_id)
    return found is not None


async def delete_campaign(conn: asyncpg.Connection, *, tenant_id: UUID, campaign_id: UUID) -> bool:
    """True if deleted; raises asyncpg.ForeignKeyViolationError if it has donations."""
    found: UUID | None = await conn.fetchval(DELETE_CAMPAIGN, tenant_id, campaign_id)
    return found is not None
