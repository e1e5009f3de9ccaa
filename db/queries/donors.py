"""A data subject's donations across every tenant (LGPD / GDPR requests), and the
retention of contacts. Run as the owner role (it reads every tenant's rows): the
operator CLI only.

A person is found by contact, compared trimmed and case-insensitively (an e-mail
typed once as Ana@Example.org and once as ana@example.org is one person)."""

from __future__ import annotations

from uuid import UUID

import asyncpg

_SAME_CONTACT = "lower(btrim(d.donor_contact)) = lower(btrim($1)) AND btrim($1) <> ''"

SELECT_BY_CONTACT = f"""
SELECT d.id, t.slug AS tenant, c.slug AS campaign, c.title AS campaign_title,
       i.name AS item, i.unit, d.quantity, d.status, d.source, d.donor_name,
       d.donor_contact, d.anonymous, d.message, d.created_at, d.confirmed_at,
       d.delivered_at, d.cancelled_at
FROM donation d
JOIN tenant t ON t.id = d.tenant_id
JOIN campaign c ON c.id = d.campaign_id
JOIN campaign_item i ON i.id = d.item_id
WHERE {_SAME_CONTACT}
ORDER BY d.created_at, d.id
"""

# Name, contact and message go; quantities, statuses and dates stay, so every total
# stays exact (the totals trigger fires on status, quantity and item only).
ERASE_BY_CONTACT = f"""
UPDATE donation d
SET donor_name = '', donor_contact = '', message = '', anonymous = true
WHERE {_SAME_CONTACT}
RETURNING d.tenant_id
"""

# One batch by primary key, so each statement holds its row locks briefly.
ERASE_EXPIRED_CONTACTS = """
UPDATE donation SET donor_contact = ''
WHERE id IN (
    SELECT id FROM donation
    WHERE donor_contact <> '' AND created_at < now() - make_interval(days => $1)
    LIMIT $2
)
"""


async def select_by_contact(conn: asyncpg.Connection, *, contact: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(SELECT_BY_CONTACT, contact)
    return rows


async def erase_by_contact(conn: asyncpg.Connection, *, contact: str) -> dict[UUID, int]:
    """Donations erased, by tenant."""
    erased: dict[UUID, int] = {}
    for row in await conn.fetch(ERASE_BY_CONTACT, contact):
        erased[row["tenant_id"]] = erased.get(row["tenant_id"], 0) + 1
    return erased


async def erase_expired_contacts(conn: asyncpg.Connection, *, days: int, limit: int) -> int:
    status: str = await conn.execute(ERASE_EXPIRED_CONTACTS, days, limit)
    return int(status.rsplit(" ", 1)[1])
