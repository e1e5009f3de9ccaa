"""The asyncpg pool of one API worker, and the check that it runs as a harmless role.

The pool is opened lazily: creating it makes no connection (`min_size=0`), and a
background task opens `DB_POOL_MIN` connections, retrying while PostgreSQL is
down; after that, acquire connects on demand (asyncpg replaces dead connections).
So a worker starts, and keeps running, without its database: `/health/ready`
answers 503 and requests that need PostgreSQL get a 503 problem (the connect
error is mapped in api/errors.py) until it is back.

Every new connection passes through `RoleGuard` before anyone uses it, until the
role has been seen to be safe once; an unsafe role (superuser, BYPASSRLS, owner of
objects) stops the worker loudly, whenever PostgreSQL first becomes reachable.

Behind PgBouncer in transaction mode nothing here relies on session state: the
tenant is set per transaction (db/tenancy.py), advisory locks are transaction
scoped (db/queries/idempotency.py), there is no LISTEN, and prepared statements
are unnamed with `DB_STATEMENT_CACHE_SIZE=0` (asyncpg then re-parses each one
within the same round trip as its execution).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import asyncpg

from db.queries.public import warm_public_reads

if TYPE_CHECKING:
    from sanic import Sanic

log = logging.getLogger("conectades.db")

ROLE_CHECK = """
SELECT r.rolsuper, r.rolbypassrls,
       EXISTS (SELECT 1 FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relowner = r.oid
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                 AND n.nspname NOT LIKE 'pg_toast%'
                 AND n.nspname NOT LIKE 'pg_temp%') AS owns_relations,
       EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspowner = r.oid) AS owns_schemas,
       EXISTS (SELECT 1 FROM pg_proc p
               JOIN pg_namespace n ON n.oid = p.pronamespace
               WHERE p.proowner = r.oid
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema')) AS owns_functions
FROM pg_roles r WHERE r.rolname = current_user
"""


class UnsafeRoleError(RuntimeError):
    """The API's database role could bypass row-level security."""


async def check_api_role(conn: asyncpg.Connection) -> None:
    row = await conn.fetchrow(ROLE_CHECK)
    problems = []
    if row["rolsuper"]:
        problems.append("is SUPERUSER")
    if row["rolbypassrls"]:
        problems.append("has BYPASSRLS")
    if row["owns_relations"] or row["owns_schemas"] or row["owns_functions"]:
        problems.append("owns database objects (table owners can alter or disable RLS)")
    if problems:
        user = await conn.fetchval("SELECT current_user")
        raise UnsafeRoleError(
            f"database role {user!r} {', '.join(problems)}. "
            "Point CONECTADES_DATABASE_URL at the API role created by `conectades db migrate` "
            "(a member of conectades_app), not at the owner or a superuser."
        )


class RoleGuard:
    """asyncpg's `init` hook: checks the role on new connections until it passed once
    (the role is fixed by the DSN, so once is enough), and reports an unsafe one."""

    def __init__(self, on_unsafe: Any = None) -> None:
        self.verified = False
        self.refused: str | None = None
        # Set once the worker serves (at start the error itself stops it).
        self.on_unsafe = on_unsafe

    async def __call__(self, conn: asyncpg.Connection) -> None:
        if self.verified:
            return
        try:
            await check_api_role(conn)
        except UnsafeRoleError as exc:
            self.refused = str(exc)
            if self.on_unsafe is not None:
                log.critical("refusing to serve: %s", exc)
                self.on_unsafe(exc)
            raise
        self.verified = True


Hook = Callable[[asyncpg.Connection], Awaitable[None]]


def warmed(init: Hook, warm: Hook) -> Hook:
    """asyncpg's `init` hook: `init` (the role check), then `warm`, so that a new
    connection's backend has loaded the catalog entries, PL/pgSQL functions and
    dictionaries the hot reads use, and this client has prepared their statements,
    before a request waits on them. In a fresh stack's first seconds that
    per-backend work was 44 % of PostgreSQL's time (BENCHMARKS.md, session 34). A
    failing warm-up is logged and the connection kept."""

    async def hook(conn: asyncpg.Connection) -> None:
        await init(conn)
        try:
            await warm(conn)
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("postgres: warming a new connection failed (%s); kept cold", exc)

    return hook


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release: nothing to undo.

    asyncpg's default runs `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL` on every release, one more round trip per request (15 % of a
    worker's CPU in the 1000-user load run). The API keeps no session state: the
    tenant is set per transaction (`set_config(..., true)`), advisory locks are
    transaction-scoped, it never LISTENs or opens cursors outside a transaction.
    asyncpg still rolls back a transaction left open before calling this."""


async def resync(conn: asyncpg.Connection) -> None:
    """Leave a connection whose user was cancelled at a protocol sync point.

    asyncpg runs a statement in two round trips: Parse/Describe/Flush, then
    Bind/Execute/Sync. A task cancelled between them (the prepare's answer and the
    client's disconnect handled in one loop iteration, so the cancellation lands
    after the answer) leaves asyncpg idle but the backend inside an extended-query
    sequence with no Sync: `active`, waiting on ClientRead, in an implicit
    transaction that keeps the statement's AccessShareLocks. The pool's release
    sends nothing (see `_keep_session`), so the connection sits like that until its
    next use, and an ALTER TABLE waits for it (and everything queues behind the
    ALTER). A simple query ends the sequence: ROLLBACK inside a transaction,
    otherwise the cheapest statement there is."""
    with contextlib.suppress(Exception):  # closed or detached: nothing to resync
        await conn.execute("ROLLBACK" if conn.is_in_transaction() else "SELECT")


@contextlib.asynccontextmanager
async def acquire(
    pool: asyncpg.Pool, *, acquire_timeout: float
) -> AsyncIterator[asyncpg.Connection]:
    """`pool.acquire()` for blocks that may be cancelled (request handlers): a
    cancelled block's connection is resynced before it goes back to the pool."""
    async with pool.acquire(timeout=acquire_timeout) as conn:
        try:
            yield conn
        except asyncio.CancelledError:
            await resync(conn)
            raise


async def create_pool(
    dsn: str,
    *,
    min_size: int,
    max_size: int,
    command_timeout: float,
    statement_cache_size: int,
    connect_timeout: float = 5.0,
    init: Any = None,
    lazy: bool = False,
) -> asyncpg.Pool:
    """A pool; with `lazy` it connects nothing now (see `warm_up`)."""
    pool = await asyncpg.create_pool(
        dsn,
        # asyncpg's floor (min_size) also sets how many it connects at creation.
        min_size=0 if lazy else min_size,
        max_size=max_size,
        command_timeout=command_timeout,
        statement_cache_size=statement_cache_size,
        # A blackholed host must not hold an acquire for asyncpg's default 60 s.
        timeout=connect_timeout,
        init=init,
        reset=_keep_session,
        # Behind PgBouncer, `jit` must be listed in its ignore_startup_parameters
        # (infra/pgbouncer.py does, and sets it per server connection instead).
        server_settings={"application_name": "conectades-api", "jit": "off"},
    )
    assert pool is not None
    return pool


async def warm_up(pool: asyncpg.Pool, size: int, *, max_delay: float = 5.0) -> None:
    """Open `size` connections (the first one runs the role check), retrying with
    backoff while PostgreSQL is unreachable; they stay idle in the pool."""
    delay = 0.1
    while not pool.is_closing():
        conns: list[asyncpg.Connection] = []
        try:
            results = await asyncio.gather(
                *(pool.acquire() for _ in range(max(size, 1))), return_exceptions=True
            )
            conns = [c for c in results if isinstance(c, asyncpg.Connection)]
            errors = [e for e in results if isinstance(e, BaseException)]
            if not errors:
                return
            if any(isinstance(e, UnsafeRoleError) for e in errors):
                return
            log.warning("postgres: not reachable yet (%s); retrying", type(errors[0]).__name__)
        finally:
            for conn in conns:
                await pool.release(conn)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)


async def open_pool(app: Sanic[Any, Any]) -> None:
    """Create this worker's pool without waiting for PostgreSQL (see the module doc)."""
    cfg = app.config

    def stop_worker(exc: UnsafeRoleError) -> None:
        # Serving with a role that bypasses row-level security would leak tenants'
        # data: stop this worker rather than run. Its supervisor sees it exit.
        app.stop()

    guard = RoleGuard()
    app.ctx.pool = await create_pool(
        cfg.DATABASE_URL,
        min_size=cfg.DB_POOL_MIN,
        max_size=cfg.DB_POOL_MAX,
        command_timeout=cfg.DB_COMMAND_TIMEOUT,
        statement_cache_size=cfg.DB_STATEMENT_CACHE_SIZE,
        connect_timeout=cfg.DB_CONNECT_TIMEOUT,
        init=warmed(guard, warm_public_reads),
        lazy=True,
    )
    app.ctx.role_guard = guard
    # One connection now, so a dangerous role stops the worker before it listens
    # (its supervisor sees it exit); if PostgreSQL cannot be reached, start anyway
    # and report not-ready until it can.
    try:
        async with asyncio.timeout(cfg.DB_CONNECT_TIMEOUT):
            await app.ctx.pool.release(await app.ctx.pool.acquire())
    except UnsafeRoleError as exc:
        await app.ctx.pool.close()
        raise UnsafeRoleError(f"refusing to start: {exc}") from None
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        log.warning("postgres: not reachable at start (%s); starting not ready", exc)
    guard.on_unsafe = stop_worker
    # Not awaited: the worker listens (not ready) while PostgreSQL is still coming,
    # and the rest of the floor's connections open in the background.
    app.ctx.pool_warm_up = asyncio.get_running_loop().create_task(
        warm_up(app.ctx.pool, cfg.DB_POOL_MIN), name="conectades-pool-warm-up"
    )


def role_guard(app: Sanic[Any, Any]) -> RoleGuard | None:
    guard = getattr(app.ctx, "role_guard", None)
    return guard if isinstance(guard, RoleGuard) else None


# Seconds a stopping worker waits for its pool's connections to come back. Requests
# have ended by then (api/drain.py); a connection still out is lost, and without a
# bound `Pool.close()` waits for it forever, so the worker never exits.
POOL_CLOSE_TIMEOUT = 5.0


async def close_pool(app: Sanic[Any, Any], grace: float = POOL_CLOSE_TIMEOUT) -> None:
    task = getattr(app.ctx, "pool_warm_up", None)
    if isinstance(task, asyncio.Task):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    pool = getattr(app.ctx, "pool", None)
    if pool is not None:
        try:
            async with asyncio.timeout(grace):
                await pool.close()
        except TimeoutError:
            # Pool.close() terminated the pool on its way out (its own rule for errors).
            log.warning("postgres: a connection was still in use after %.1f s; closed it", grace)
        app.ctx.pool = None
