"""PostgreSQL CPU per call of the public pages' statements, on a running stack.

Times the API's own statements (db/queries/public.py) on one connection as the API
role: each statement is prepared, run 10 times, then run --calls times, and the
backend's CPU time (user + system, through psutil, so PostgreSQL must run on this
machine) is divided by the calls. Planning counts when PostgreSQL plans again
at a call; asyncpg's own CPU does not.

    directory   the cross-tenant directory with a few filters (`order=progress` sums
                every listed campaign's counter slots, so it runs fewer calls)
    page        the donor page's statement (campaign, items and recent donations)
                for the campaign with the most donations

Usage (from the repository root, with the local stack up and seeded):

    eval "$(./start.sh env)"
    .venv/bin/python -m load.experiments.statements
    .venv/bin/python -m load.experiments.statements --calls 1000 --generic

--generic runs each statement under plan_cache_mode=force_generic_plan as well.
The figures of 2026-12-03 (migrations 0023 and 0024) are in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

import asyncpg
import psutil

from db.queries import public as pq

FILTERS: dict[str, pq.DirectoryFilter] = {
    "none": pq.DirectoryFilter(),
    "q": pq.DirectoryFilter(q="escola"),
    "q, deadline": pq.DirectoryFilter(order="deadline", q="cesta"),
    "category": pq.DirectoryFilter(category="alimentos"),
    "location": pq.DirectoryFilter(location="recife"),
    "status all": pq.DirectoryFilter(status="all"),
    "progress": pq.DirectoryFilter(order="progress"),
}


def backend_cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()  # as load/cpu.py reads the stack's parts
    return float(times.user + times.system)


async def per_call_ms(
    conn: asyncpg.Connection, pid: int, sql: str, args: list[Any], calls: int
) -> float:
    statement = await conn.prepare(sql)
    for _ in range(10):
        await statement.fetch(*args)
    before = backend_cpu(pid)
    for _ in range(calls):
        await statement.fetch(*args)
    return (backend_cpu(pid) - before) * 1000 / calls


async def run(dsn: str, calls: int, generic: bool) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        busiest = await conn.fetchrow(
            "SELECT c.tenant_id, c.slug, count(*) AS donations FROM donation d "
            "JOIN campaign c ON c.id = d.campaign_id "
            "GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 1"
        )
        await conn.execute("SET ROLE conectades_app")
        cases: list[tuple[str, str, list[Any], int]] = []
        for name, f in FILTERS.items():
            sql, args = pq.directory_query(f, after=None, limit=21)
            cases.append(
                (f"directory {name}", sql, args, calls // 4 if name == "progress" else calls)
            )
        if busiest is not None:
            label = f"page ({busiest['donations']} donations)"
            args = [busiest["tenant_id"], busiest["slug"], 10]
            cases.append((label, pq.SELECT_CAMPAIGN_VIEW, args, calls))
        for mode in ("auto", "force_generic_plan") if generic else ("auto",):
            await conn.execute(f"SET plan_cache_mode = {mode}")
            for label, sql, args, n in cases:
                ms = await per_call_ms(conn, pid, sql, args, n)
                print(f"{mode:20s} {label:32s} {ms:6.2f} ms of PostgreSQL CPU per call")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--dsn",
        default=os.environ.get("CONECTADES_ADMIN_DATABASE_URL"),
        help="a superuser DSN (default: $CONECTADES_ADMIN_DATABASE_URL from ./start.sh env)",
    )
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--generic", action="store_true")
    opts = parser.parse_args()
    if not opts.dsn:
        parser.error('no --dsn and no CONECTADES_ADMIN_DATABASE_URL (eval "$(./start.sh env)")')
    asyncio.run(run(opts.dsn, opts.calls, opts.generic))


if __name__ == "__main__":
    main()
