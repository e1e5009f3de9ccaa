"""Donations for the CSV export: the list's filters and order, every row, through a
server-side cursor (the caller's tenant transaction), so memory stays constant
however many rows the tenant has.

Each row is a donation (db/queries/donations.py: DONATION_COLUMNS, so the API's
own reading of it applies) with its campaign's slug and title and its item's name
and unit, which a spreadsheet needs and the donation alone does not carry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from uuid import UUID

import asyncpg

from db.queries.donations import DONATION_COLUMNS, EARLIEST

_JOINED = """
SELECT d.*, c.slug AS campaign_slug, c.title AS campaign_title,
       i.name AS item_name, i.unit AS item_unit
FROM ({donations}) d
JOIN campaign c ON c.id = d.campaign_id AND c.tenant_id = $1
JOIN campaign_item i ON i.id = d.item_id AND i.tenant_id = $1
ORDER BY d.created_at DESC, d.id DESC
"""
# Newest first like the list, each driven by the same index as the list's pages
# (donation_tenant_recent_idx; donation_campaign_recent_idx for one campaign).
EXPORT_DONATIONS = _JOINED.format(
    donations=f"""SELECT {DONATION_COLUMNS} FROM donation
    WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2::text) AND created_at >= $3"""
)
EXPORT_CAMPAIGN_DONATIONS = _JOINED.format(
    donations=f"""SELECT {DONATION_COLUMNS} FROM donation
    WHERE campaign_id = $4 AND tenant_id = $1
      AND ($2::text IS NULL OR status = $2::text) AND created_at >= $3"""
)
# Rows per round trip: a few hundred kilobytes in flight at most.
PREFETCH = 500


def export_donations(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    campaign_id: UUID | None,
    status: str | None,
    since: datetime | None,
) -> AsyncIterator[asyncpg.Record]:
    """Every matching donation, newest first, `PREFETCH` rows at a time; iterate it
    inside a transaction (a server-side cursor lives only in one)."""
    lower = since or EARLIEST
    if campaign_id is None:
        cursor = conn.cursor(EXPORT_DONATIONS, tenant_id, status, lower, prefetch=PREFETCH)
    else:
        cursor = conn.cursor(
            EXPORT_CAMPAIGN_DONATIONS, tenant_id, status, lower, campaign_id, prefetch=PREFETCH
        )
    rows: AsyncIterator[asyncpg.Record] = cursor.__aiter__()
    return rows
