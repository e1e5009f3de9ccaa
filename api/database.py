"""A pooled connection, or a tenant's transaction, for a request, with the configured
acquire timeout (when the pool is exhausted for that long the request gets a 503, see
api/errors.py). Handlers use these two, never the pool directly; `pool` and
`open_pool` are for readiness and the login code that acquires on its own."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any
from uuid import UUID

import asyncpg
from sanic import Request

from db.crypto import Keyring
from db.pool import acquire
from db.tenancy import tenant_transaction


def connection(request: Request) -> AbstractAsyncContextManager[Any]:
    """`async with connection(request) as conn:`; a request cancelled inside the block
    (its client went away) leaves the connection resynced (db/pool.py: `resync`)."""
    return acquire(request.app.ctx.pool, acquire_timeout=request.app.config.DB_ACQUIRE_TIMEOUT)


def tenant_tx(
    request: Request, tenant_id: UUID, *, lock: int | None = None
) -> AbstractAsyncContextManager[Any]:
    """`async with tenant_tx(request, tenant_id) as conn:` (db/tenancy.py), with
    `DB_ACQUIRE_TIMEOUT`: 12 of the 17 handlers that open one left it at 5 s.
    `lock`: see api/idempotency.py, `key_transaction`."""
    return tenant_transaction(
        request.app.ctx.pool,
        tenant_id,
        acquire_timeout=float(request.app.config.DB_ACQUIRE_TIMEOUT),
        lock=lock,
    )


def pool(request: Request) -> asyncpg.Pool | None:
    """The worker's pool; None until it opened (readiness reports that)."""
    found: asyncpg.Pool | None = request.app.ctx.pool
    return found


def open_pool(request: Request) -> asyncpg.Pool:
    """The worker's pool, for code that acquires on its own (tenants/tokens.py)."""
    found = pool(request)
    assert found is not None, "setup_postgres opens the pool before the server starts"
    return found


def keyring(request: Request) -> Keyring:
    """The donor-contact keyring (db/crypto.py), set when the app was built."""
    ring: Keyring | None = request.app.ctx.keyring
    assert ring is not None, "create_app sets app.ctx.keyring"
    return ring
