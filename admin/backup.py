"""`conectades db backup` / `db restore`: pg_dump's custom format, as the owner role.

A dump holds the schema with its grants and row-level security policies, and every
row (schema_migration included, so `db status` is right after a restore). Roles are
cluster-wide and never in a database's dump: a restore first makes sure the group
role `conectades_app` exists (as migration 0001 does) and, when CONECTADES_DATABASE_URL
names another login role, creates or updates it as `db migrate` does
(db/migrate.ensure_api_role), so the dump's grants have someone to go to.

Objects are restored owned by the role that restores (`--no-owner`): the owner role
of CONECTADES_ADMIN_DATABASE_URL, which must own them for the public views and the
SECURITY DEFINER functions to read across tenants (superuser or BYPASSRLS).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from infra.postgres import PostgresError, client_bindir

ENSURE_APP_ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'conectades_app') THEN
        CREATE ROLE conectades_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
END
$$
"""
HAS_SCHEMA = "SELECT to_regclass('public.schema_migration') IS NOT NULL"
SERVER_MAJOR = "SELECT current_setting('server_version_num')::int / 10000"


class BackupError(RuntimeError):
    pass


@dataclass(frozen=True)
class Libpq:
    """A DSN for a libpq program with the password moved into its environment, so it
    never shows on a command line (`ps`)."""

    dsn: str
    env: dict[str, str]

    @classmethod
    def from_url(cls, url: str) -> Libpq:
        parts = urlsplit(url)
        env = dict(os.environ)
        if parts.password is not None:
            env["PGPASSWORD"] = unquote(parts.password)
            host = parts.hostname or ""
            if ":" in host:
                host = f"[{host}]"
            user = f"{parts.username}@" if parts.username else ""
            port = f":{parts.port}" if parts.port else ""
            parts = parts._replace(netloc=f"{user}{host}{port}")
        return cls(urlunsplit(parts), env)


async def server_major(conn: asyncpg.Connection) -> int:
    value: int = await conn.fetchval(SERVER_MAJOR)
    return value


async def has_schema(conn: asyncpg.Connection) -> bool:
    value: bool = await conn.fetchval(HAS_SCHEMA)
    return value


async def ensure_app_role(conn: asyncpg.Connection) -> None:
    await conn.execute(ENSURE_APP_ROLE)


def _run(cmd: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        raise BackupError(f"{Path(cmd[0]).name} failed ({done.returncode}):\n{tail}")


def _bin(name: str, major: int) -> str:
    try:
        return str(client_bindir(major) / name)
    except PostgresError as exc:
        raise BackupError(str(exc)) from None


def dump(url: str, path: Path, *, major: int) -> None:
    """pg_dump -Fc of the whole database (data, schema, grants, policies) to `path`,
    written beside it first and renamed, so a failed dump never leaves half a file."""
    target = Libpq.from_url(url)
    partial = path.with_name(path.name + ".partial")
    try:
        _run(
            [_bin("pg_dump", major), "--format=custom", "--file", str(partial),
             "--dbname", target.dsn],
            target.env,
        )  # fmt: skip
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def restore(url: str, path: Path, *, major: int, clean: bool) -> None:
    """pg_restore in one transaction (all or nothing); `clean` drops the dump's objects
    first, for a database that has the schema."""
    target = Libpq.from_url(url)
    cmd = [
        _bin("pg_restore", major), "--single-transaction", "--exit-on-error", "--no-owner",
        "--dbname", target.dsn,
    ]  # fmt: skip
    if clean:
        cmd += ["--clean", "--if-exists"]
    _run([*cmd, str(path)], target.env)
