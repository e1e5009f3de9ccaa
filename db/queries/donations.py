"""Donations of one tenant: record, list, read, and atomic status transitions.

Totals are not written here: the `donation_totals` trigger updates the item's
counter slots in the same statement, so every change below keeps them exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple
from uuid import UUID, uuid4

import asyncpg

from db import crypto
from db.crypto import Keyring
from db.queries.idempotency import KeyLookup, StoredAnswer, live_record, stored_answer

# donor_contact and message are '' on every row written since migration 0018: the
# values are in the sealed columns (db/crypto.py: Keyring.donor_contact_of, message_of
# read either). tenant_id is part of what a sealed value is bound to.
DONATION_COLUMNS = (
    "id, tenant_id, campaign_id, item_id, quantity, donor_name, donor_contact, "
    "donor_contact_enc, anonymous, message, message_enc, "
    "status, source, created_at, confirmed_at, delivered_at, cancelled_at"
)


def with_campaign_slug(statement: str) -> str:
    """`statement` (a write … RETURNING the donation's columns) answering its
    campaign's slug too, as `campaign_slug`: the invalidation of the public pages
    needs it, and a second query for it was one more round trip in the write's
    transaction."""
    return (
        f"WITH d AS ({statement}) SELECT d.*, c.slug AS campaign_slug FROM d "
        "JOIN campaign c ON c.tenant_id = d.tenant_id AND c.id = d.campaign_id"
    )


def unless_stored(insert: str) -> str:
    """`insert` (INSERT_DONATION's or INSERT_PLEDGE's text, `{unless}` at the end of
    its WHERE) under an idempotency key, with the key's stored answer read in the
    same statement ($13 key, $14 scope, $15 TTL seconds: db/queries/idempotency.py,
    `live_record`): nothing is inserted when the key has a live answer. Always one
    row: the stored answer (`stored_status`, `stored_fingerprint`, `stored_body`),
    or the new donation with its campaign's slug, or neither (the insert's own
    conditions refused it). It was a round trip of its own before every keyed
    donation and pledge."""
    stored = live_record("$1", "$13", "$14", "$15")
    return f"""WITH stored AS ({stored}),
d AS ({insert.format(unless=" AND NOT EXISTS (SELECT 1 FROM stored)")})
SELECT s.fingerprint AS stored_fingerprint, s.status_code AS stored_status,
       s.body AS stored_body, x.*
FROM (SELECT) one
LEFT JOIN stored s ON true
LEFT JOIN (SELECT d.*, c.slug AS campaign_slug FROM d JOIN campaign c
           ON c.tenant_id = d.tenant_id AND c.id = d.campaign_id) x ON true"""


# One statement that also proves the item belongs to this campaign and tenant:
# no row comes back (and nothing is written) when it does not. Donations recorded
# as already confirmed or delivered get those timestamps at creation time. The id
# comes from the caller: the sealed contact and message are bound to it.
INSERT_DONATION = f"""
INSERT INTO donation (id, tenant_id, campaign_id, item_id, quantity, donor_name,
                      donor_contact_enc, donor_contact_hmac, anonymous, message_enc,
                      status, source, created_at, confirmed_at, delivered_at)
SELECT $11, i.tenant_id, i.campaign_id, i.id, $4, $5, $6, $12, $7, $8, $9::text, $10, n.ts,
       CASE WHEN $9::text IN ('confirmed', 'delivered') THEN n.ts END,
       CASE WHEN $9::text = 'delivered' THEN n.ts END
FROM campaign_item i CROSS JOIN (SELECT clock_timestamp() AS ts) n
WHERE i.tenant_id = $1 AND i.campaign_id = $2 AND i.id = $3{{unless}}
RETURNING {DONATION_COLUMNS}
"""
INSERT_DONATION_KEYED = unless_stored(INSERT_DONATION)
INSERT_DONATION = with_campaign_slug(INSERT_DONATION.format(unless=""))

# A public pledge, in one statement that also proves what a pledge needs: the
# organization still active (`public_tenant`: a suspension stops pledges at once,
# whatever a worker's memo of the tenant holds), the campaign, by slug, accepting
# (published, started, not past its deadline: as SELECT_CAMPAIGN's `accepting` in
# db/queries/public.py), and the item one of its own. Nothing written when one of
# them fails; `pledge_refusal` in api/routes/public.py says which. The parameters
# are INSERT_DONATION_KEYED's, with the slug as $2: a pledge always has a key.
INSERT_PLEDGE = f"""
INSERT INTO donation (id, tenant_id, campaign_id, item_id, quantity, donor_name,
                      donor_contact_enc, donor_contact_hmac, anonymous, message_enc,
                      status, source, created_at)
SELECT $11, i.tenant_id, i.campaign_id, i.id, $4, $5, $6, $12, $7, $8, $9::text, $10, n.ts
FROM campaign c
JOIN campaign_item i ON i.tenant_id = c.tenant_id AND i.campaign_id = c.id AND i.id = $3
CROSS JOIN (SELECT clock_timestamp() AS ts) n
WHERE c.tenant_id = $1 AND c.slug = $2
  AND c.status = 'published'
  AND (c.starts_at IS NULL OR c.starts_at <= now())
  AND (c.ends_at IS NULL OR c.ends_at > now())
  AND EXISTS (SELECT 1 FROM public_tenant t WHERE t.id = $1){{unless}}
RETURNING {DONATION_COLUMNS}
"""
INSERT_PLEDGE = unless_stored(INSERT_PLEDGE)

SELECT_DONATION = f"SELECT {DONATION_COLUMNS} FROM donation WHERE tenant_id = $1 AND id = $2"
SELECT_DONATION_STATUS = "SELECT status FROM donation WHERE tenant_id = $1 AND id = $2"
CAMPAIGN_EXISTS = "SELECT EXISTS (SELECT 1 FROM campaign WHERE tenant_id = $1 AND id = $2)"
SELECT_CAMPAIGN_SLUG = "SELECT slug FROM campaign WHERE tenant_id = $1 AND id = $2"

# Keyset pages on (created_at DESC, id DESC). The bounds are always values (the
# first page passes sentinels, not NULL), so they stay index conditions in the
# generic plan asyncpg's prepared statements end up with: a deep page costs the
# same as the first.
SELECT_DONATIONS = f"""
SELECT {DONATION_COLUMNS} FROM donation
WHERE tenant_id = $1
  AND ($2::text IS NULL OR status = $2::text)
  AND created_at >= $3
  AND (created_at, id) < ($4, $5)
ORDER BY created_at DESC, id DESC
LIMIT $6
"""
# The same page for one campaign, driven by the per-campaign index.
SELECT_CAMPAIGN_DONATIONS = f"""
SELECT {DONATION_COLUMNS} FROM donation
WHERE campaign_id = $2 AND tenant_id = $1
  AND ($3::text IS NULL OR status = $3::text)
  AND created_at >= $4
  AND (created_at, id) < ($5, $6)
ORDER BY created_at DESC, id DESC
LIMIT $7
"""
# Sentinels for absent bounds: before and after any stored timestamp and id.
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = (datetime(9999, 12, 31, tzinfo=UTC), UUID(int=(1 << 128) - 1))

# A transition is one conditional UPDATE: the status check and the write cannot
# be separated by another writer. $3 is the new status, $4 the statuses it may
# come from. The timestamp of the new status is set; earlier ones are kept.
TRANSITION_DONATION = f"""
UPDATE donation SET
    status = $3::text,
    confirmed_at = CASE WHEN $3::text = 'confirmed' THEN clock_timestamp()
                        ELSE confirmed_at END,
    delivered_at = CASE WHEN $3::text = 'delivered' THEN clock_timestamp()
                        ELSE delivered_at END,
    cancelled_at = CASE WHEN $3::text = 'cancelled' THEN clock_timestamp()
                        ELSE cancelled_at END
WHERE tenant_id = $1 AND id = $2 AND status = ANY($4::text[])
RETURNING {DONATION_COLUMNS}
"""
TRANSITION_DONATION = with_campaign_slug(TRANSITION_DONATION)


@dataclass(frozen=True)
class NewDonation:
    """What a donation is made of, as the request gave it (contact and message in
    clear: `insert_donation` and `insert_pledge` seal them)."""

    item_id: UUID
    quantity: int
    donor_name: str
    donor_contact: str
    anonymous: bool
    message: str


class Inserted(NamedTuple):
    """What an insert did: the new donation (with `campaign_slug`), or the key's
    stored answer (nothing written), or neither (refused: nothing written)."""

    donation: asyncpg.Record | None
    stored: StoredAnswer | None = None


async def insert_donation(
    conn: asyncpg.Connection,
    *,
    keyring: Keyring,
    tenant_id: UUID,
    campaign_id: UUID,
    donation: NewDonation,
    status: str,
    source: str,
    lookup: KeyLookup | None = None,
) -> Inserted:
    """The new donation, unless the item is not one of this campaign's or (with
    `lookup`) the key has a stored answer. The contact and message are stored
    sealed (and the contact's lookup hash), never as text."""
    statement = INSERT_DONATION if lookup is None else INSERT_DONATION_KEYED
    return await _insert(
        conn, statement, keyring, tenant_id, campaign_id, donation, status, source, lookup
    )


async def insert_pledge(
    conn: asyncpg.Connection,
    *,
    keyring: Keyring,
    tenant_id: UUID,
    slug: str,
    donation: NewDonation,
    lookup: KeyLookup,
) -> Inserted:
    """A pending public pledge to the campaign `slug` (INSERT_PLEDGE), unless the
    key has a stored answer or the organization, the campaign or the item does not
    take it."""
    return await _insert(
        conn, INSERT_PLEDGE, keyring, tenant_id, slug, donation, "pending", "public", lookup
    )


async def _insert(
    conn: asyncpg.Connection,
    statement: str,
    keyring: Keyring,
    tenant_id: UUID,
    campaign: UUID | str,
    d: NewDonation,
    status: str,
    source: str,
    lookup: KeyLookup | None,
) -> Inserted:
    donation_id = uuid4()
    place = {"tenant_id": tenant_id, "row_id": donation_id}
    row: asyncpg.Record | None = await conn.fetchrow(
        statement,
        tenant_id,
        campaign,
        d.item_id,
        d.quantity,
        d.donor_name,
        keyring.seal(d.donor_contact, column=crypto.CONTACT, **place),
        d.anonymous,
        keyring.seal(d.message, column=crypto.MESSAGE, **place),
        status,
        source,
        donation_id,
        keyring.contact_hash(d.donor_contact),
        *(() if lookup is None else lookup),
    )
    if lookup is None or row is None:
        return Inserted(row)
    stored = stored_answer(row)
    return Inserted(None if stored is not None or row["id"] is None else row, stored)


async def select_donation(
    conn: asyncpg.Connection, *, tenant_id: UUID, donation_id: UUID
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(SELECT_DONATION, tenant_id, donation_id)
    return row


async def select_donation_status(
    conn: asyncpg.Connection, *, tenant_id: UUID, donation_id: UUID
) -> str | None:
    status: str | None = await conn.fetchval(SELECT_DONATION_STATUS, tenant_id, donation_id)
    return status


async def campaign_slug(
    conn: asyncpg.Connection, *, tenant_id: UUID, campaign_id: UUID
) -> str | None:
    slug: str | None = await conn.fetchval(SELECT_CAMPAIGN_SLUG, tenant_id, campaign_id)
    return slug


async def campaign_exists(conn: asyncpg.Connection, *, tenant_id: UUID, campaign_id: UUID) -> bool:
    found: bool = await conn.fetchval(CAMPAIGN_EXISTS, tenant_id, campaign_id)
    return found


async def select_donations(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    campaign_id: UUID | None,
    status: str | None,
    since: datetime | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """A page of donations, newest first; across campaigns unless `campaign_id` is set."""
    created, last_id = after or LATEST
    lower = since or EARLIEST
    rows: list[asyncpg.Record]
    if campaign_id is None:
        rows = await conn.fetch(SELECT_DONATIONS, tenant_id, status, lower, created, last_id, limit)
    else:
        rows = await conn.fetch(
            SELECT_CAMPAIGN_DONATIONS,
            tenant_id,
            campaign_id,
            status,
            lower,
            created,
            last_id,
            limit,
        )
    return rows


async def transition_donation(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    donation_id: UUID,
    to_status: str,
    from_statuses: Sequence[str],
) -> asyncpg.Record | None:
    """The updated donation (with `campaign_slug`), or None if it is unknown or not
    in one of `from_statuses`."""
    row: asyncpg.Record | None = await conn.fetchrow(
        TRANSITION_DONATION, tenant_id, donation_id, to_status, list(from_statuses)
    )
    return row


# What a data subject's erasure leaves: the quantities, statuses and dates (totals
# stay exact: the totals trigger fires on status, quantity and item only), nothing
# that names or reaches the person.
ANONYMIZE_DONATION = f"""
UPDATE donation SET donor_name = '', donor_contact = '', message = '', anonymous = true,
    donor_contact_enc = NULL, donor_contact_hmac = NULL, message_enc = NULL
WHERE tenant_id = $1 AND id = $2
RETURNING {DONATION_COLUMNS}
"""


async def anonymize_donation(
    conn: asyncpg.Connection, *, tenant_id: UUID, donation_id: UUID
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(ANONYMIZE_DONATION, tenant_id, donation_id)
    return row
