"""A throwaway PostgreSQL (migrated, with the API role) and Redis under a folder of
`var/`, for the benchmarks and the cold-start measurement: started, used, destroyed
(their logs stay in the folder until the next run)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

API_ROLE = "conectades_api"


@contextlib.contextmanager
def services(base: Path) -> Iterator[dict[str, str]]:
    """A throwaway PostgreSQL (migrated) and Redis; their URLs."""
    from infra.postgres import LocalPostgres, free_port
    from infra.redis import LocalRedis

    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    pg = LocalPostgres(datadir=base / "pgdata", port=free_port(), password=secrets.token_hex(12))
    redis = LocalRedis(dir=base / "redis", port=free_port(), maxmemory="256mb")
    api_password = secrets.token_hex(12)
    try:
        pg.init({"max_connections": "100"})
        pg.start(base / "postgres.log")
        asyncio.run(_migrate(pg.admin_dsn, api_password))
        redis.start()
        yield {
            "admin": pg.admin_dsn,
            "api": pg.dsn(API_ROLE, api_password),
            "redis": redis.url,
        }
    finally:
        redis.stop()
        pg.destroy()  # the logs stay in `base` until the next run


async def _migrate(admin_dsn: str, api_password: str) -> None:
    import asyncpg

    from db import migrate

    conn = await asyncpg.connect(admin_dsn)
    try:
        await migrate.migrate(conn)
        await migrate.ensure_api_role(conn, API_ROLE, api_password)
    finally:
        await conn.close()
