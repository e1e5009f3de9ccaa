"""A data subject's donations across every tenant (LGPD / GDPR requests), and the
retention of contacts. Run as the owner role (it reads every tenant's rows): the
operator CLI only.

A person is found by contact, compared trimmed and case-insensitively (an e-mail
typed once as Ana@Example.org and once as ana@example.org is one person): by the
contact's keyed hash under any listed key (db/crypto.py: Keyring.contact_hashes),
or, for a row written before migration 0018 and not yet encrypted, by its plaintext
column as before."""

from __future__ import annotations

from uuid import UUID

import asyncpg

# $1 the contact's hashes (one per listed HMAC key), $2 the contact itself (for rows
# still in plaintext: the partial index of migration 0018, empty once `donor
# rotate-keys` has run).
_SAME_CONTACT = """(d.donor_contact_hmac = ANY($1::bytea[])
     OR (d.donor_contact <> '' AND lower(btrim(d.donor_contact)) = lower(btrim($2))))"""

SELECT_BY_CONTACT = f"""
SELECT d.id, d.tenant_id, t.slug AS tenant, c.slug AS campaign, c.title AS campaign_title,
       i.name AS item, i.unit, d.quantity, d.status, d.source, d.donor_name,
       d.donor_contact, d.donor_contact_enc, d.anonymous, d.message, d.message_enc,
       d.created_at, d.confirmed_at, d.delivered_at, d.cancelled_at
FROM donation d
JOIN tenant t ON t.id = d.tenant_id
JOIN campaign c ON c.id = d.campaign_id
JOIN campaign_item i ON i.id = d.item_id
WHERE {_SAME_CONTACT}
ORDER BY d.created_at, d.id
"""

# Name, contact and message go (sealed, hashed and plaintext columns); quantities,
# statuses and dates stay, so every total stays exact (the totals trigger fires on
# status, quantity and item only).
ERASE_BY_CONTACT = f"""
UPDATE donation d
SET donor_name = '', donor_contact = '', message = '', anonymous = true,
    donor_contact_enc = NULL, donor_contact_hmac = NULL, message_enc = NULL
WHERE {_SAME_CONTACT}
RETURNING d.tenant_id
"""

# One batch by primary key, so each statement holds its row locks briefly.
ERASE_EXPIRED_CONTACTS = """
UPDATE donation SET donor_contact = '', donor_contact_enc = NULL, donor_contact_hmac = NULL
WHERE id IN (
    SELECT id FROM donation
    WHERE (donor_contact <> '' OR donor_contact_enc IS NOT NULL)
      AND created_at < now() - make_interval(days => $1)
    LIMIT $2
)
"""

# Key rotation and the encryption of rows from before migration 0018: every row in
# primary-key order, a batch at a time (the caller skips the rows already sealed
# under the newest key).
SELECT_SEAL_BATCH = """
SELECT id, tenant_id, donor_contact, donor_contact_enc, donor_contact_hmac,
       message, message_enc
FROM donation
WHERE id > $1
ORDER BY id
LIMIT $2
"""
# Only if the row still holds what was read: a write meanwhile (an erasure, an
# anonymization) wins, and the row is left as that write made it.
UPDATE_SEALED = """
UPDATE donation
SET donor_contact = '', message = '',
    donor_contact_enc = $2, donor_contact_hmac = $3, message_enc = $4
WHERE id = $1
  AND donor_contact = $5 AND message = $6
  AND donor_contact_enc IS NOT DISTINCT FROM $7
  AND message_enc IS NOT DISTINCT FROM $8
"""
COUNT_PLAINTEXT = "SELECT count(*) FROM donation WHERE donor_contact <> '' OR message <> ''"


async def select_by_contact(
    conn: asyncpg.Connection, *, contact: str, contact_hashes: list[bytes]
) -> list[asyncpg.Record]:
    if not contact_hashes:
        return []
    rows: list[asyncpg.Record] = await conn.fetch(SELECT_BY_CONTACT, contact_hashes, contact)
    return rows


async def erase_by_contact(
    conn: asyncpg.Connection, *, contact: str, contact_hashes: list[bytes]
) -> dict[UUID, int]:
    """Donations erased, by tenant."""
    erased: dict[UUID, int] = {}
    if not contact_hashes:
        return erased
    for row in await conn.fetch(ERASE_BY_CONTACT, contact_hashes, contact):
        erased[row["tenant_id"]] = erased.get(row["tenant_id"], 0) + 1
    return erased


async def erase_expired_contacts(conn: asyncpg.Connection, *, days: int, limit: int) -> int:
    status: str = await conn.execute(ERASE_EXPIRED_CONTACTS, days, limit)
    return int(status.rsplit(" ", 1)[1])


# Stored idempotent answers (api/idempotency.py), sealed since migration 0018: the
# sealed ones, a batch at a time in primary-key order; replaced only if unchanged.
SELECT_ANSWER_BATCH = """
SELECT tenant_id, key, scope, body FROM idempotency_record
WHERE (tenant_id, key, scope) > ($1, $2, $3) AND substring(body FROM 1 FOR 1) = $4
ORDER BY tenant_id, key, scope
LIMIT $5
"""
# A row's lookup hash rewritten under the newest HMAC key, only if it still holds the
# contact and hash that were read.
UPDATE_HASH = """
UPDATE donation SET donor_contact_hmac = $2
WHERE id = $1 AND donor_contact_enc = $3 AND donor_contact_hmac IS NOT DISTINCT FROM $4
"""
UPDATE_ANSWER = """
UPDATE idempotency_record SET body = $4
WHERE tenant_id = $1 AND key = $2 AND scope = $3 AND body = $5
"""


async def select_seal_batch(
    conn: asyncpg.Connection, *, after: UUID, limit: int
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(SELECT_SEAL_BATCH, after, limit)
    return rows


async def update_sealed(
    conn: asyncpg.Connection,
    *,
    row: asyncpg.Record,
    contact_enc: bytes | None,
    contact_hmac: bytes | None,
    message_enc: bytes | None,
) -> bool:
    """Whether the row was still as `row` read it (and is now sealed as given)."""
    status: str = await conn.execute(
        UPDATE_SEALED,
        row["id"],
        contact_enc,
        contact_hmac,
        message_enc,
        row["donor_contact"],
        row["message"],
        row["donor_contact_enc"],
        row["message_enc"],
    )
    return status == "UPDATE 1"


async def count_plaintext(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval(COUNT_PLAINTEXT)
    return count


async def select_answer_batch(
    conn: asyncpg.Connection, *, after: tuple[UUID, str, str], marker: bytes, limit: int
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(SELECT_ANSWER_BATCH, *after, marker, limit)
    return rows


async def update_answer(conn: asyncpg.Connection, *, row: asyncpg.Record, body: bytes) -> bool:
    """Whether the stored answer was still as `row` read it (and now holds `body`)."""
    status: str = await conn.execute(
        UPDATE_ANSWER, row["tenant_id"], row["key"], row["scope"], body, row["body"]
    )
    return status == "UPDATE 1"


async def update_hash(
    conn: asyncpg.Connection, *, row: asyncpg.Record, contact_hmac: bytes | None
) -> bool:
    """Whether the row still held the contact and hash `row` read (and now has this
    hash)."""
    status: str = await conn.execute(
        UPDATE_HASH, row["id"], contact_hmac, row["donor_contact_enc"], row["donor_contact_hmac"]
    )
    return status == "UPDATE 1"
