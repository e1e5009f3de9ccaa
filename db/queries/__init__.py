"""Named SQL statements, one module per resource, each with a thin typed function.

asyncpg is untyped (its results are `Any`); `fetch_one` and `fetch_all` give a
statement's rows their types, so a thin function is one line:
`return await fetch_one(conn, SELECT_X, tenant_id, x_id)`."""

from __future__ import annotations

from typing import Any

import asyncpg


async def fetch_one(conn: asyncpg.Connection, sql: str, *args: Any) -> asyncpg.Record | None:
    """The statement's first row; None when it returns none."""
    row: asyncpg.Record | None = await conn.fetchrow(sql, *args)
    return row


async def fetch_all(conn: asyncpg.Connection, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Every row the statement returns."""
    rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
    return rows
