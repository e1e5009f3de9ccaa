"""SQL migrations: `db/migrations/NNNN_name.sql`, applied in order, each in its own
transaction, under an advisory lock, recorded in `schema_migration`."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant shared by every migrator; two concurrent `db migrate` runs queue on it.
ADVISORY_LOCK_ID = 0x636E6431  # "cnd1"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migration (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class MigrationState:
    migration: Migration
    applied_at: datetime | None
    checksum_ok: bool


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"bad migration file name: {path.name}")
        found.append(Migration(int(match[1]), match[2], path))
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise MigrationError("two migrations share a version number")
    return found


async def status(conn: asyncpg.Connection) -> list[MigrationState]:
    await conn.execute(CREATE_TABLE)
    rows = await conn.fetch("SELECT version, checksum, applied_at FROM schema_migration")
    applied = {r["version"]: r for r in rows}
    states = []
    for m in discover():
        row = applied.get(m.version)
        states.append(
            MigrationState(
                migration=m,
                applied_at=row["applied_at"] if row else None,
                checksum_ok=row is None or row["checksum"] == m.checksum,
            )
        )
    return states


async def migrate(conn: asyncpg.Connection) -> list[Migration]:
    """Apply every pending migration; returns the ones applied now."""
    applied_now: list[Migration] = []
    await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_ID)
    try:
        for state in await status(conn):
            if state.applied_at is not None:
                if not state.checksum_ok:
                    raise MigrationError(
                        f"migration {state.migration.path.name} changed after it was applied"
                    )
                continue
            m = state.migration
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migration (version, name, checksum) VALUES ($1, $2, $3)",
                    m.version,
                    m.name,
                    m.checksum,
                )
            applied_now.append(m)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_ID)
    return applied_now


async def ensure_api_role(conn: asyncpg.Connection, user: str, password: str) -> None:
    """Create or update the API's login role: member of conectades_app, nothing more."""
    exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", user)
    verb = "ALTER" if exists else "CREATE"
    stmt = await conn.fetchval(
        "SELECT format('%s ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE "
        "PASSWORD %L', $1::text, $2::text, $3::text)",
        verb,
        user,
        password,
    )
    await conn.execute(stmt)
    grant = await conn.fetchval("SELECT format('GRANT conectades_app TO %I', $1::text)", user)
    await conn.execute(grant)
