"""What several command groups share: the option types, the tenant lookup, dropping
cached responses after an admin write, and the donor-contact keys."""

from __future__ import annotations

import os
from typing import Annotated
from uuid import UUID

import asyncpg
import typer

from admin.runtime import (
    CliError,
    err,
    raise_cli,
    run,
)
from cache import CircuitBreaker, ResponseCache, create_client
from db.crypto import KeyConfigError, Keyring
from db.queries import tenants as tq

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="Tenant slug.")]


async def tenant_by_slug(conn: asyncpg.Connection, slug: str) -> asyncpg.Record:
    row = await tq.select_tenant_by_slug(conn, slug)
    if row is None:
        raise CliError(f"no tenant with slug {slug!r} (see `conectades tenant list`)")
    return row


def keyring_from_env() -> Keyring:
    """The donor-contact keys from the environment, or a clear usage error."""
    try:
        return Keyring.from_env()
    except KeyConfigError as exc:
        raise_cli(f"{exc} (the API's keys; `conectades donor new-keys` makes a first set)")


REDIS_URL_ENV = "CONECTADES_REDIS_URL"


def response_cache() -> ResponseCache:
    """A client for one command: patient timeouts, no retries, the breaker off."""
    url = os.environ.get(REDIS_URL_ENV, "").strip()
    if not url:
        raise CliError(f"set {REDIS_URL_ENV} (a redis:// URL)")
    client = create_client(url, connect_timeout=2.0, timeout=2.0)
    return ResponseCache(client, timeout=4.0, breaker=CircuitBreaker(threshold=1_000_000))


def purge_after_admin_write(tenant_id: UUID | None) -> None:
    """Cached API responses must not outlive an admin change (a suspended tenant would
    stay in the cached directory): drop the tenant's (None: every) cached response.
    Without CONECTADES_REDIS_URL there is nothing to drop."""
    if not os.environ.get(REDIS_URL_ENV, "").strip():
        return

    async def go() -> bool:
        cache = response_cache()
        try:
            if tenant_id is None:
                return await cache.purge_all()
            return await cache.purge_tenant(tenant_id)
        finally:
            await cache.close()

    if not run(go()):
        err.print(
            f"warning: cannot reach Redis at {REDIS_URL_ENV}; cached responses may lag "
            "until their TTL (run `conectades cache purge` when Redis is back)"
        )
