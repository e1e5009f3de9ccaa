"""Webhook endpoints and their deliveries (migration 0016).

The API manages endpoints and reads deliveries; the worker (worker/webhooks.py)
claims due deliveries with `claim` and writes each outcome with `succeed`/`fail`,
all but the claim in tenant transactions."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from db.queries import fetch_all, fetch_one

ENDPOINT_COLUMNS = (
    "id, url, description, event_types, enabled, created_at, updated_at, "
    "failing_since, consecutive_dead, disabled_at, disabled_reason, "
    "CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END "
    "AS previous_secret_expires_at"
)

INSERT_ENDPOINT = f"""
INSERT INTO webhook_endpoint (tenant_id, url, description, event_types, enabled, secret)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING {ENDPOINT_COLUMNS}
"""
SELECT_ENDPOINTS = f"""
SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoint
WHERE tenant_id = $1
  AND ($2::timestamptz IS NULL OR (created_at, id) < ($2::timestamptz, $3::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $4
"""
SELECT_ENDPOINT = (
    f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoint WHERE tenant_id = $1 AND id = $2"
)
# Re-enabling clears the failure state (the partner says the endpoint works again).
UPDATE_ENDPOINT = f"""
UPDATE webhook_endpoint SET
    url = coalesce($3, url),
    description = coalesce($4, description),
    event_types = coalesce($5, event_types),
    enabled = coalesce($6, enabled),
    disabled_at = CASE WHEN $6 IS NULL THEN disabled_at
                       WHEN $6 THEN NULL ELSE coalesce(disabled_at, now()) END,
    disabled_reason = CASE WHEN $6 IS NULL THEN disabled_reason WHEN $6 THEN NULL
                           ELSE coalesce(disabled_reason, 'disabled by a user') END,
    failing_since = CASE WHEN $6 THEN NULL ELSE failing_since END,
    consecutive_dead = CASE WHEN $6 THEN 0 ELSE consecutive_dead END,
    updated_at = now()
WHERE tenant_id = $1 AND id = $2
RETURNING {ENDPOINT_COLUMNS}
"""
DELETE_ENDPOINT = "DELETE FROM webhook_endpoint WHERE tenant_id = $1 AND id = $2 RETURNING id"
ROTATE_SECRET = f"""
UPDATE webhook_endpoint SET
    previous_secret = secret,
    previous_secret_expires_at = now() + make_interval(secs => $4),
    secret = $3,
    updated_at = now()
WHERE tenant_id = $1 AND id = $2
RETURNING {ENDPOINT_COLUMNS}
"""

DELIVERY_COLUMNS = """
d.id, d.seq, d.endpoint_id, d.event_id, ev.type AS event_type, d.message_id, d.status,
d.attempts, d.next_attempt_at, d.created_at, d.last_attempt_at, d.delivered_at,
d.response_status, d.latency_ms, d.last_error
"""
SELECT_DELIVERIES = f"""
SELECT {DELIVERY_COLUMNS}
FROM webhook_delivery d JOIN event ev ON ev.id = d.event_id
WHERE d.tenant_id = $1 AND d.endpoint_id = $2
  AND ($3::text IS NULL OR d.status = $3)
  AND ($4::bigint IS NULL OR d.seq < $4)
ORDER BY d.seq DESC
LIMIT $5
"""
SELECT_DELIVERY = f"""
SELECT {DELIVERY_COLUMNS}
FROM webhook_delivery d JOIN event ev ON ev.id = d.event_id
WHERE d.tenant_id = $1 AND d.endpoint_id = $2 AND d.id = $3
"""
# A manual retry: due now, same webhook-id. One being sent right now (leased) is
# left alone (the caller answers 409).
RETRY_DELIVERY = f"""
WITH retried AS (
    UPDATE webhook_delivery SET status = 'pending', next_attempt_at = now(), leased_until = NULL
    WHERE tenant_id = $1 AND endpoint_id = $2 AND id = $3
      AND (leased_until IS NULL OR leased_until <= now())
    RETURNING *
)
SELECT {DELIVERY_COLUMNS} FROM retried d JOIN event ev ON ev.id = d.event_id
"""

NOTIFY_WORKER = "SELECT pg_notify('webhook_delivery', '')"
CLAIM = "SELECT * FROM webhook_claim($1, $2)"
# The outcome of claimed attempts. `attempts` guards against a late answer from a
# worker whose lease expired and whose delivery was claimed again meanwhile.
# Successes: many of one tenant in one statement (the worker batches them).
# `d.id = ANY($2)` gives the planner the primary key to look them up by: without
# it, its estimate of the pending rows (stale while deliveries churn) made it scan
# every pending delivery once per id (5.5 ms for 20 ids among 1,000 pending, 0.5 ms
# with it; EXPLAIN ANALYZE, 2026-12-03).
SUCCEED_DELIVERIES = """
UPDATE webhook_delivery d SET
    status = 'succeeded', leased_until = NULL, delivered_at = now(),
    response_status = u.response_status, latency_ms = u.latency_ms, last_error = NULL
FROM unnest($2::uuid[], $3::int[], $4::int[], $5::int[])
    AS u(id, attempts, response_status, latency_ms)
WHERE d.tenant_id = $1 AND d.id = ANY($2::uuid[]) AND d.id = u.id
  AND d.attempts = u.attempts AND d.status = 'pending'
RETURNING d.endpoint_id
"""
CLEAR_ENDPOINTS_FAILURE = """
UPDATE webhook_endpoint SET failing_since = NULL, consecutive_dead = 0
WHERE tenant_id = $1 AND id = ANY($2::uuid[])
  AND (failing_since IS NOT NULL OR consecutive_dead <> 0)
"""
FAIL_DELIVERY = """
UPDATE webhook_delivery SET
    status = CASE WHEN $4 THEN 'dead' ELSE 'pending' END,
    leased_until = NULL,
    next_attempt_at = now() + make_interval(secs => $5),
    response_status = $6, latency_ms = $7, last_error = $8
WHERE tenant_id = $1 AND id = $2 AND attempts = $3 AND status = 'pending'
RETURNING endpoint_id
"""
# One failed attempt: the endpoint is failing since its first failure after the last
# success; a dead delivery counts towards disabling it.
MARK_ENDPOINT_FAILURE = """
UPDATE webhook_endpoint SET
    failing_since = coalesce(failing_since, now()),
    consecutive_dead = consecutive_dead + CASE WHEN $3 THEN 1 ELSE 0 END
WHERE tenant_id = $1 AND id = $2
RETURNING consecutive_dead, enabled, failing_since
"""
DISABLE_ENDPOINT = f"""
UPDATE webhook_endpoint SET enabled = false, disabled_at = now(), disabled_reason = $3,
    updated_at = now()
WHERE tenant_id = $1 AND id = $2 AND enabled
RETURNING {ENDPOINT_COLUMNS}
"""


async def insert_endpoint(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    url: str,
    description: str,
    event_types: list[str],
    enabled: bool,
    secret: bytes,
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        INSERT_ENDPOINT, tenant_id, url, description, event_types, enabled, secret
    )
    return row


async def select_endpoints(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    created, endpoint_id = after if after else (None, None)
    return await fetch_all(conn, SELECT_ENDPOINTS, tenant_id, created, endpoint_id, limit)


async def select_endpoint(
    conn: asyncpg.Connection, *, tenant_id: UUID, endpoint_id: UUID
) -> asyncpg.Record | None:
    return await fetch_one(conn, SELECT_ENDPOINT, tenant_id, endpoint_id)


async def update_endpoint(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    endpoint_id: UUID,
    url: str | None,
    description: str | None,
    event_types: list[str] | None,
    enabled: bool | None,
) -> asyncpg.Record | None:
    return await fetch_one(
        conn, UPDATE_ENDPOINT, tenant_id, endpoint_id, url, description, event_types, enabled
    )


async def delete_endpoint(conn: asyncpg.Connection, *, tenant_id: UUID, endpoint_id: UUID) -> bool:
    return await conn.fetchval(DELETE_ENDPOINT, tenant_id, endpoint_id) is not None


async def rotate_secret(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    endpoint_id: UUID,
    secret: bytes,
    overlap_seconds: float,
) -> asyncpg.Record | None:
    return await fetch_one(conn, ROTATE_SECRET, tenant_id, endpoint_id, secret, overlap_seconds)


async def select_deliveries(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    endpoint_id: UUID,
    status: str | None,
    before_seq: int | None,
    limit: int,
) -> list[asyncpg.Record]:
    return await fetch_all(
        conn, SELECT_DELIVERIES, tenant_id, endpoint_id, status, before_seq, limit
    )


async def select_delivery(
    conn: asyncpg.Connection, *, tenant_id: UUID, endpoint_id: UUID, delivery_id: UUID
) -> asyncpg.Record | None:
    return await fetch_one(conn, SELECT_DELIVERY, tenant_id, endpoint_id, delivery_id)


async def retry_delivery(
    conn: asyncpg.Connection, *, tenant_id: UUID, endpoint_id: UUID, delivery_id: UUID
) -> asyncpg.Record | None:
    row = await fetch_one(conn, RETRY_DELIVERY, tenant_id, endpoint_id, delivery_id)
    if row is not None:
        await conn.execute(NOTIFY_WORKER)  # sent at commit: the worker wakes at once
    return row


async def claim(conn: asyncpg.Connection, *, limit: int, lease: float) -> list[asyncpg.Record]:
    """Due deliveries of every tenant, leased to the caller (webhook_claim)."""
    return await fetch_all(conn, CLAIM, limit, lease)


async def succeed_many(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    outcomes: list[tuple[UUID, int, int, int]],
) -> int:
    """Record successes `(delivery_id, attempts, response_status, latency_ms)` of one
    tenant; how many were still this attempt's (a lease that expired is skipped)."""
    ids, attempts, statuses, latencies = (list(col) for col in zip(*outcomes, strict=True))
    endpoints = await conn.fetch(SUCCEED_DELIVERIES, tenant_id, ids, attempts, statuses, latencies)
    if endpoints:
        distinct = list({row["endpoint_id"] for row in endpoints})
        await conn.execute(CLEAR_ENDPOINTS_FAILURE, tenant_id, distinct)
    return len(endpoints)


async def fail(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    delivery_id: UUID,
    attempts: int,
    dead: bool,
    retry_in: float,
    response_status: int | None,
    latency_ms: int | None,
    error: str,
) -> dict[str, Any] | None:
    """Record a failed attempt; the endpoint's failure state after it, or None when
    the delivery was no longer this attempt's (its lease had expired)."""
    endpoint_id = await conn.fetchval(
        FAIL_DELIVERY,
        tenant_id,
        delivery_id,
        attempts,
        dead,
        retry_in,
        response_status,
        latency_ms,
        error[:500],
    )
    if endpoint_id is None:
        return None
    row: asyncpg.Record = await conn.fetchrow(MARK_ENDPOINT_FAILURE, tenant_id, endpoint_id, dead)
    return {"endpoint_id": endpoint_id, **dict(row)}


async def disable_endpoint(
    conn: asyncpg.Connection, *, tenant_id: UUID, endpoint_id: UUID, reason: str
) -> asyncpg.Record | None:
    return await fetch_one(conn, DISABLE_ENDPOINT, tenant_id, endpoint_id, reason)


def endpoint_json(row: asyncpg.Record) -> dict[str, Any]:
    """An endpoint as the API returns it (never its secret): GET /api/v1/webhooks/{id}
    and the `webhook.disabled` event's data."""
    return {
        "id": str(row["id"]),
        "url": row["url"],
        "description": row["description"],
        "event_types": list(row["event_types"]),
        "enabled": row["enabled"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "failing_since": row["failing_since"],
        "consecutive_dead": row["consecutive_dead"],
        "disabled_at": row["disabled_at"],
        "disabled_reason": row["disabled_reason"],
        "previous_secret_expires_at": row["previous_secret_expires_at"],
    }
