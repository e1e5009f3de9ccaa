"""What every worker holds in `app.ctx`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

import asyncpg
from sanic import Request

from api.request_context import TrustedProxies
from cache.memo import Memo

if TYPE_CHECKING:
    from api.drain import DrainState
    from api.supervision import Watchdog
    from cache import ResponseCache
    from db.crypto import Keyring
    from db.pool import RoleGuard
    from tenants.authlimit import FailureLimiter
    from tenants.ratelimit import RateLimiter


@dataclass
class AppContext:
    pool: asyncpg.Pool | None = None
    # Donor contacts and messages at rest (db/crypto.py), set by the app factory.
    keyring: Keyring | None = None
    # The response cache (None when REDIS_URL is empty) and its client.
    cache: ResponseCache | None = None
    redis: Any = None
    # Per-credential limits on the partner API (None: disabled or no Redis).
    ratelimit: RateLimiter | None = None
    # Peers whose X-Real-IP is believed (the edge).
    trusted_proxies: TrustedProxies = field(default_factory=TrustedProxies)
    # API-key rows by prefix (5 s: the bound on a revocation made elsewhere) and
    # the keys whose last_used_at this worker updated in the last minute.
    # Unknown prefixes are remembered as unknown for 5 s too (a separate bounded table).
    api_keys: Memo[str, asyncpg.Record] = field(default_factory=lambda: Memo(miss_ttl=5.0))
    # Failed authentications per client IP (None: disabled), set by setup_failure_limiter.
    auth_failures: FailureLimiter | None = None
    # Active tenants by slug for public reads and pledges (1 s: with the edge's 1 s
    # microcache, a suspended tenant's pages are gone within 2 s; a pledge's INSERT
    # checks the tenant is still active itself, db/queries/donations.py: INSERT_PLEDGE).
    public_tenants: Memo[str, asyncpg.Record] = field(default_factory=lambda: Memo(ttl=1.0))
    key_touches: Memo[UUID, bool] = field(default_factory=lambda: Memo(ttl=60.0))
    # Set by db/pool.py when the pool opens: the role check, and the task that opens
    # the pool's floor of connections in the background.
    role_guard: RoleGuard | None = None
    pool_warm_up: asyncio.Task[None] | None = None
    # The graceful stop (api/drain.py), created by setup_drain.
    drain: DrainState | None = None
    # api/supervision.py: the main process's watchdog, a worker's heartbeat task.
    watchdog: Watchdog | None = None
    heartbeat: asyncio.Task[None] | None = None
    # CSV exports streaming now (api/routes/export.py), made on first use.
    export_slots: asyncio.Semaphore | None = None


def app_context(request: Request) -> AppContext:
    """This worker's context, typed (to mypy a handler's `request.app` is a bare Sanic)."""
    return cast(AppContext, request.app.ctx)
