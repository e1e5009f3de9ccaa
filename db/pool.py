"""The asyncpg pool of one API worker, and the check that it runs as a harmless role."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg

if TYPE_CHECKING:
    from sanic import Sanic

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
            f"refusing to start: database role {user!r} {', '.join(problems)}. "
            "Point CONECTADES_DATABASE_URL at the API role created by `conectades db migrate` "
            "(a member of conectades_app), not at the owner or a superuser."
        )


async def create_pool(
    dsn: str,
    *,
    min_size: int,
    max_size: int,
    command_timeout: float,
    statement_cache_size: int,
) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=command_timeout,
        statement_cache_size=statement_cache_size,
        server_settings={"application_name": "conectades-api", "jit": "off"},
    )
    assert pool is not None
    return pool


async def open_pool(app: Sanic) -> None:  # type: ignore[type-arg]
    """Open this worker's pool, refusing roles that could bypass row-level security."""
    cfg = app.config
    pool = await create_pool(
        cfg.DATABASE_URL,
        min_size=cfg.DB_POOL_MIN,
        max_size=cfg.DB_POOL_MAX,
        command_timeout=cfg.DB_COMMAND_TIMEOUT,
        statement_cache_size=cfg.DB_STATEMENT_CACHE_SIZE,
    )
    try:
        async with pool.acquire() as conn:
            await check_api_role(conn)
    except BaseException:
        await pool.close()
        raise
    app.ctx.pool = pool


async def close_pool(app: Sanic) -> None:  # type: ignore[type-arg]
    pool = getattr(app.ctx, "pool", None)
    if pool is not None:
        await pool.close()
        app.ctx.pool = None


def setup_postgres(app: Sanic) -> None:  # type: ignore[type-arg]
    app.register_listener(open_pool, "before_server_start")
    app.register_listener(close_pool, "after_server_stop")
