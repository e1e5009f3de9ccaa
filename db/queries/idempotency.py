"""Idempotency records: (tenant, key, credential scope) → request fingerprint and the
stored response. Scope '' marks records from before migration 0012 (any credential)."""

from __future__ import annotations

from typing import NamedTuple
from uuid import UUID

import asyncpg

from db.queries.events import PendingEvent, event_payload, insert_event


def live_record(tenant: str, key: str, scope: str, ttl: str) -> str:
    """The statement reading a key's stored answer (its scope's, or one from before
    the scopes), when younger than `ttl` seconds; the arguments are its parameters."""
    return f"""SELECT fingerprint, status_code, body FROM idempotency_record
WHERE tenant_id = {tenant} AND key = {key} AND scope IN ({scope}, '')
  AND created_at > now() - make_interval(secs => {ttl})
ORDER BY scope DESC
LIMIT 1"""


class KeyLookup(NamedTuple):
    """Which stored answer a keyed write looks for in its own statement (see
    db/queries/donations.py: `unless_stored`): $13-$15 of the keyed inserts."""

    key: str
    scope: str
    ttl: float


class StoredAnswer(NamedTuple):
    """A key's stored answer, found instead of writing."""

    fingerprint: bytes
    status_code: int
    body: bytes


def stored_answer(row: asyncpg.Record) -> StoredAnswer | None:
    """The stored answer a keyed insert's row carries (`stored_*` columns), if any."""
    if row["stored_status"] is None:
        return None
    return StoredAnswer(
        bytes(row["stored_fingerprint"]), row["stored_status"], bytes(row["stored_body"])
    )


UPSERT_RECORD = """
INSERT INTO idempotency_record (tenant_id, key, scope, fingerprint, status_code, body)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (tenant_id, key, scope) DO UPDATE
SET fingerprint = EXCLUDED.fingerprint, status_code = EXCLUDED.status_code,
    body = EXCLUDED.body, created_at = now()
WHERE idempotency_record.created_at <= now() - make_interval(secs => $7)
"""
# The same with the write's event (db/queries/events.py) in one statement: a
# data-modifying WITH runs to completion whether or not the query reads it, and the
# event's own trigger (webhook deliveries) fires as for a plain INSERT. One round
# trip fewer for every keyed donation.
UPSERT_RECORD_WITH_EVENT = f"WITH event AS ({insert_event(8)})\n{UPSERT_RECORD}"
# One batch by primary key, so each statement holds its row locks briefly. The
# condition is checked again on the row deleted: a key reused meanwhile (the upsert
# above renews an expired record in place) is kept.
DELETE_EXPIRED = """
DELETE FROM idempotency_record
WHERE (tenant_id, key, scope) IN (
    SELECT tenant_id, key, scope FROM idempotency_record
    WHERE created_at <= now() - make_interval(secs => $1)
    LIMIT $2
) AND created_at <= now() - make_interval(secs => $1)
"""


async def upsert_record(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    key: str,
    scope: str,
    fingerprint: bytes,
    status_code: int,
    body: bytes,
    ttl: float,
    event: PendingEvent | None = None,
) -> None:
    """The record, and `event` (if any) in the same statement."""
    args = (tenant_id, key, scope, fingerprint, status_code, body, ttl)
    if event is None:
        await conn.execute(UPSERT_RECORD, *args)
    else:
        await conn.execute(UPSERT_RECORD_WITH_EVENT, *args, *event_payload(event))


async def delete_expired(conn: asyncpg.Connection, *, ttl: float, limit: int) -> int:
    """Owner-role maintenance (all tenants): at most `limit` records older than `ttl`
    seconds; how many went."""
    status: str = await conn.execute(DELETE_EXPIRED, ttl, limit)
    return int(status.split()[-1])
