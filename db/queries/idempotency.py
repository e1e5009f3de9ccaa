"""Idempotency records: (tenant, key, credential scope) → request fingerprint and the
stored response. Scope '' marks records from before migration 0012 (any credential)."""

from __future__ import annotations

from uuid import UUID

import asyncpg

TRY_LOCK = "SELECT pg_try_advisory_xact_lock($1)"
SELECT_RECORD = """
SELECT fingerprint, status_code, body FROM idempotency_record
WHERE tenant_id = $1 AND key = $2 AND scope IN ($3, '')
  AND created_at > now() - make_interval(secs => $4)
ORDER BY scope DESC
LIMIT 1
"""
UPSERT_RECORD = """
INSERT INTO idempotency_record (tenant_id, key, scope, fingerprint, status_code, body)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (tenant_id, key, scope) DO UPDATE
SET fingerprint = EXCLUDED.fingerprint, status_code = EXCLUDED.status_code,
    body = EXCLUDED.body, created_at = now()
WHERE idempotency_record.created_at <= now() - make_interval(secs => $7)
"""
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


async def try_lock(conn: asyncpg.Connection, lock_id: int) -> bool:
    got: bool = await conn.fetchval(TRY_LOCK, lock_id)
    return got


async def select_record(
    conn: asyncpg.Connection, *, tenant_id: UUID, key: str, scope: str, ttl: float
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(SELECT_RECORD, tenant_id, key, scope, ttl)
    return row


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
) -> None:
    await conn.execute(UPSERT_RECORD, tenant_id, key, scope, fingerprint, status_code, body, ttl)


async def delete_expired(conn: asyncpg.Connection, *, ttl: float, limit: int) -> int:
    """Owner-role maintenance (all tenants): at most `limit` records older than `ttl`
    seconds; how many went."""
    status: str = await conn.execute(DELETE_EXPIRED, ttl, limit)
    return int(status.split()[-1])
