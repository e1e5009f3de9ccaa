"""Real services for the tests: a project-local PostgreSQL and API workers."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from db import migrate
from infra.postgres import LocalPostgres, free_port
from infra.redis import LocalRedis
from infra.servers import clean_env, sanic_argv, spawn, stop_group, wait_http_ok

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
API_ROLE = "conectades_api"
LINK_SECRET = "test-link-secret-" + "y" * 40
# Donor-contact keys (db/crypto.py) of every API and CLI the suite starts.
CONTACT_KEYS = {
    "CONECTADES_CONTACT_KEYS": "1:dGVzdC1jb250YWN0LWtleS0xLXh4eHh4eHh4eHh4eHg=",
    "CONECTADES_CONTACT_HMAC_KEY": "dGVzdC1jb250YWN0LWhtYWMta2V5LXh4eHh4eHh4eHg=",
}


class LoopThread:
    """An event loop in a thread, so sync tests can run asyncpg calls."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class Database:
    """The test cluster, migrated, with sync helpers over an owner-role pool."""

    def __init__(self, root: Path) -> None:
        self.pg = LocalPostgres(
            datadir=root / "pgdata", port=free_port(), password=secrets.token_urlsafe(16)
        )
        self.api_password = secrets.token_urlsafe(16)
        self.loop = LoopThread()
        self.log = root / "postgres.log"
        self.pool: asyncpg.Pool | None = None

    @property
    def admin_dsn(self) -> str:
        return self.pg.admin_dsn

    @property
    def api_dsn(self) -> str:
        return self.pg.dsn(API_ROLE, self.api_password)

    def start(self) -> None:
        self.pg.init({"fsync": "off", "full_page_writes": "off", "max_connections": "300"})
        self.pg.start(self.log)
        self.loop.run(self._migrate())
        self.pool = self.loop.run(self._pool())

    async def _pool(self) -> asyncpg.Pool:
        return await asyncpg.create_pool(self.admin_dsn, min_size=1, max_size=8)

    async def _migrate(self) -> None:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await migrate.migrate(conn)
            await migrate.ensure_api_role(conn, API_ROLE, self.api_password)
        finally:
            await conn.close()

    def stop(self) -> None:
        if self.pool is not None:
            self.loop.run(self.pool.close())
        self.loop.close()
        self.pg.destroy()

    # Owner-role access (bypasses RLS): for setup and for checking what was written.
    def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        assert self.pool is not None
        return self.loop.run(self.pool.fetch(query, *args))

    def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        assert self.pool is not None
        return self.loop.run(self.pool.fetchrow(query, *args))

    def fetchval(self, query: str, *args: Any) -> Any:
        assert self.pool is not None
        return self.loop.run(self.pool.fetchval(query, *args))

    def execute(self, query: str, *args: Any) -> str:
        assert self.pool is not None
        return self.loop.run(self.pool.execute(query, *args))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run(coro)


def api_env(db: Database, **extra: str) -> dict[str, str]:
    env = clean_env()
    env.update(
        {
            "CONECTADES_DATABASE_URL": db.api_dsn,
            "CONECTADES_JWT_SECRET": "test-secret-" + "x" * 40,
            **CONTACT_KEYS,
            # Signs the emailed confirm links (notify/links.py); the worker's too.
            "CONECTADES_LINK_SECRET": LINK_SECRET,
            "CONECTADES_DB_POOL_MAX": "20",
            # The suite drives one key hard (e.g. 444 concurrent writers); the
            # limiter has its own tests with its own server.
            "CONECTADES_RATE_LIMIT_RATE": "0",
            # Many tests send bad credentials from 127.0.0.1 on purpose; the failed-
            # authentication limit has its own tests with its own servers.
            "CONECTADES_AUTH_FAILURE_RATE": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


class ApiServer:
    """`sanic <app> --factory` (the real app by default) in a subprocess on a free port."""

    def __init__(
        self,
        env: dict[str, str],
        workers: int = 1,
        log: Path | None = None,
        app: str = "api.server:create_app",
    ) -> None:
        self.port = free_port()
        self.env = env
        self.workers = workers
        self.app = app
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        argv = sanic_argv(self.app, self.port, workers=self.workers, access_logs=True)
        self.proc = spawn(argv, self.env, self.log_path)
        wait_http_ok(self.proc, self.url + "/health/ready", timeout, log=self.log_path, name="API")

    def stop(self) -> None:
        if self.proc:
            stop_group(self.proc)


def start_redis(root: Path, name: str = "redis", maxmemory: str = "64mb") -> LocalRedis:
    """A project-local redis-server (cache config: no persistence, LRU) on a free port."""
    server = LocalRedis(dir=root / name, port=free_port(), maxmemory=maxmemory)
    server.start()
    return server


def run_cli(
    db: Database,
    *args: str,
    redis_url: str | None = None,
    timeout: float = 300,
    extra_env: dict[str, str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`conectades ARGS` as an operator runs it, against the test services (settings
    in `extra_env` on top; `input`, if given, on stdin)."""
    env = clean_env()
    env.update(
        CONECTADES_ADMIN_DATABASE_URL=db.admin_dsn,
        CONECTADES_DATABASE_URL=db.api_dsn,
        COLUMNS="200",
        **CONTACT_KEYS,
    )
    if redis_url is not None:
        env["CONECTADES_REDIS_URL"] = redis_url
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "admin", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )


def run_stack(
    *args: str,
    project: Path = ROOT,
    var: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`./start.sh ARGS` after its installs (`python -m infra.stack`) in `project`,
    with one API worker, its var/ at `var` (default the project's own), and no
    pointer at existing servers (but `extra_env`'s)."""
    env = clean_env()
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    # The project's own code, everywhere (the venv's editable install points at ROOT).
    env.update({"CONECTADES_WORKERS": "1", "PYTHONPATH": str(project), **(extra_env or {})})
    if var is not None:
        env["CONECTADES_VAR"] = str(var)
    return subprocess.run(
        [sys.executable, "-m", "infra.stack", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
