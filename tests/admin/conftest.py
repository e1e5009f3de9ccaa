"""A database of its own, in the session's cluster, for CLI commands that act on a
whole database (`seed --purge`, `db backup`/`restore`) and must not touch the rows
other tests rely on."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from db import migrate
from tests.services import API_ROLE, Database


@dataclass(frozen=True)
class OwnDatabase:
    name: str
    admin_dsn: str
    api_dsn: str

    def fetch(self, db: Database, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Owner-role rows of this database (on the session's loop)."""

        async def go() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(self.admin_dsn)
            try:
                rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
                return rows
            finally:
                await conn.close()

        return db.run(go())

    def fetchval(self, db: Database, sql: str, *args: Any) -> Any:
        rows = self.fetch(db, sql, *args)
        return rows[0][0] if rows else None

    @property
    def env(self) -> dict[str, str]:
        """For run_cli(extra_env=...): the CLI works on this database."""
        return {
            "CONECTADES_ADMIN_DATABASE_URL": self.admin_dsn,
            "CONECTADES_DATABASE_URL": self.api_dsn,
        }


@pytest.fixture
def own_database(db: Database) -> Iterator[Callable[..., OwnDatabase]]:
    """A factory: `own_database(migrated=True)` creates a database (migrated, or empty);
    all are dropped after the test."""
    made: list[str] = []

    def make(*, migrated: bool = True) -> OwnDatabase:
        name = f"own_{uuid.uuid4().hex[:10]}"
        db.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        own = OwnDatabase(
            name,
            db.pg.dsn(db.pg.superuser, db.pg.password, name),
            db.pg.dsn(API_ROLE, db.api_password, name),
        )
        if migrated:

            async def go() -> None:
                conn = await asyncpg.connect(own.admin_dsn)
                try:
                    await migrate.migrate(conn)
                finally:
                    await conn.close()

            db.run(go())
        return own

    yield make
    for name in made:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
