"""Benchmark: one hot counter row per item vs 16 counter slots per item.

Donation-like write transactions (synchronous_commit on), 64 concurrent asyncpg
connections, each doing short transactions back to back for --duration seconds
(after --warmup seconds that are not counted). Four cases per schema:

    hot   one     every transaction writes item 1's single counter row
    slots one     every transaction writes one of item 1's 16 slots (random)
    hot   spread  the item is random among 1000 items (baseline, little contention)
    slots spread  same, with slots

Two schemas (both by default):

  plain  minimal tables; the transaction is
           INSERT INTO donation ...;
           hot:   UPDATE totals_hot SET q = q + $1, n = n + 1 WHERE item_id = $2
           slots: INSERT INTO totals_slot AS t ... VALUES ($1, <random 0..15>, $2, 1)
                  ON CONFLICT (item_id, slot) DO UPDATE SET q = t.q + EXCLUDED.q, n = t.n + 1
  real   db/migrations/0001_init.sql applied as-is (trigger donation_apply_totals,
         16 random slots) vs the same migration with the slot number fixed at 0
         (one hot row per item); the transaction is what the API does:
           SELECT set_config('app.tenant_id', $1, true); INSERT INTO donation ...
         as a login role that is a member of conectades_app (so RLS applies).

Runs are interleaved (all cases once per round, --rounds rounds); medians are
reported. Counter rows are created before the runs (1 per item for hot, 16 per
item for slots), so every run measures updates, not first inserts. A
CHECKPOINT precedes every run. At the end the totals are checked
against the sum of the donation rows.

Usage (from the repository root; venv with asyncpg):

    python -m load.experiments.totals                      # throwaway PostgreSQL under /tmp/benchpg
    python -m load.experiments.totals --dsn postgresql://postgres:pw@127.0.0.1:5432/postgres
    python -m load.experiments.totals --schemas plain --rounds 3 --duration 10 --concurrency 64

--dsn must be a superuser (it creates databases and a role).

Why one module of ~500 lines: a finished experiment (its figures are in
docs/decisions.md) kept whole so that it can be run again as it ran; nothing else
imports it, and a split would only spread one measurement over files.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ITEMS = 1000
SLOTS = 16
CASES = [("hot", "one"), ("slots", "one"), ("hot", "spread"), ("slots", "spread")]
APP_ROLE = "bench_app"
MIGRATION = Path(__file__).resolve().parent.parent / "db" / "migrations" / "0001_init.sql"
SLOT_EXPR = "floor(random() * 16)::smallint"
Tx = Callable[[asyncpg.Connection], Awaitable[None]]


@contextlib.contextmanager
def throwaway_postgres(base: Path = Path("/tmp/benchpg")) -> Iterator[str]:  # noqa: S108 (throwaway, rm -rf at exit)
    """Start a fresh PostgreSQL (infra.postgres.LocalPostgres) and yield its admin DSN."""
    from infra.postgres import LocalPostgres, free_port

    datadir = base / "data"
    if datadir.exists():
        LocalPostgres(datadir=datadir, port=0).stop(mode="immediate")
        shutil.rmtree(datadir)
    base.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    pg = LocalPostgres(datadir=datadir, port=free_port(), password=secrets.token_hex(12))
    pg.init()
    pg.start(base / "postgres.log")
    try:
        yield pg.admin_dsn
    finally:
        pg.stop()
        shutil.rmtree(datadir, ignore_errors=True)


def summarize(values: list[float]) -> dict[str, float]:
    med = statistics.median(values)
    return {
        "median": med,
        "min": min(values),
        "max": max(values),
        "spread_pct": 100.0 * (max(values) - min(values)) / med if med else 0.0,
    }


def with_db(dsn: str, database: str, user: str | None = None, password: str | None = None) -> str:
    parts = urlsplit(dsn)
    netloc = parts.netloc
    if user is not None:
        host = netloc.rsplit("@", 1)[-1]
        netloc = f"{user}:{password}@{host}"
    return urlunsplit((parts.scheme, netloc, "/" + database, parts.query, parts.fragment))


# --------------------------------------------------------------------------- setup


async def create_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def setup_plain(admin_dsn: str) -> str:
    await create_database(admin_dsn, "totals_plain")
    dsn = with_db(admin_dsn, "totals_plain")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """
            CREATE TABLE donation (
                id bigserial PRIMARY KEY,
                item_id integer NOT NULL,
                quantity bigint NOT NULL CHECK (quantity > 0),
                created_at timestamptz NOT NULL DEFAULT clock_timestamp());
            CREATE INDEX donation_item_idx ON donation (item_id);
            CREATE TABLE totals_hot (
                item_id integer PRIMARY KEY,
                q bigint NOT NULL DEFAULT 0,
                n bigint NOT NULL DEFAULT 0);
            CREATE TABLE totals_slot (
                item_id integer NOT NULL,
                slot smallint NOT NULL CHECK (slot BETWEEN 0 AND 15),
                q bigint NOT NULL DEFAULT 0,
                n bigint NOT NULL DEFAULT 0,
                PRIMARY KEY (item_id, slot));
            """
        )
        # Counter rows exist up front (steady state): 1 per item, or 16 slots per item.
        await conn.execute(
            f"INSERT INTO totals_hot (item_id) SELECT g FROM generate_series(1, {ITEMS}) g"
        )
        await conn.execute(
            f"INSERT INTO totals_slot (item_id, slot) SELECT g, s "
            f"FROM generate_series(1, {ITEMS}) g, generate_series(0, {SLOTS - 1}) s"
        )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return dsn


async def setup_real(
    admin_dsn: str, name: str, hot: bool, app_password: str
) -> tuple[str, dict[str, Any]]:
    """Apply 0001_init.sql (optionally with the slot fixed at 0); seed 1 tenant, 1 campaign,
    ITEMS items. Returns the app-role DSN and the ids."""
    sql = MIGRATION.read_text()
    if SLOT_EXPR not in sql:
        raise SystemExit(f"{MIGRATION} no longer contains {SLOT_EXPR!r}; update the benchmark")
    if hot:
        sql = sql.replace(SLOT_EXPR, "0::smallint")
    await create_database(admin_dsn, name)
    dsn = with_db(admin_dsn, name)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", APP_ROLE)
        if not exists:
            await conn.execute(
                f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD '{app_password}'"
            )
            await conn.execute(f"GRANT conectades_app TO {APP_ROLE}")
        tenant = await conn.fetchval(
            "INSERT INTO tenant (slug, name) VALUES ('bench', 'Bench') RETURNING id"
        )
        campaign = await conn.fetchval(
            "INSERT INTO campaign (tenant_id, slug, title, status) "
            "VALUES ($1, 'bench', 'Bench', 'published') RETURNING id",
            tenant,
        )
        items = [
            r["id"]
            for r in await conn.fetch(
                "INSERT INTO campaign_item "
                "(tenant_id, campaign_id, name, unit, quantity_requested) "
                "SELECT $1, $2, 'item ' || g, 'kg', 1000000000 "
                f"FROM generate_series(1, {ITEMS}) g "
                "RETURNING id",
                tenant,
                campaign,
            )
        ]
        # Slot rows exist up front (steady state), as after the first donations of each item.
        await conn.execute(
            "INSERT INTO item_total_slot (tenant_id, item_id, slot) "
            "SELECT tenant_id, id, s FROM campaign_item, generate_series(0, $1::int) s",
            0 if hot else SLOTS - 1,
        )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    app_dsn = with_db(admin_dsn, name, APP_ROLE, app_password)
    return app_dsn, {"tenant": tenant, "campaign": campaign, "items": items}


# --------------------------------------------------------------------------- transactions


def plain_tx(strategy: str, target: str) -> Tx:
    async def tx(conn: asyncpg.Connection) -> None:
        item = 1 if target == "one" else random.randint(1, ITEMS)
        qty = random.randint(1, 100)
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO donation (item_id, quantity) VALUES ($1, $2)", item, qty
            )
            if strategy == "hot":
                await conn.execute(
                    "UPDATE totals_hot SET q = q + $1, n = n + 1 WHERE item_id = $2", qty, item
                )
            else:
                await conn.execute(
                    "INSERT INTO totals_slot AS t (item_id, slot, q, n) VALUES ($1, $2, $3, 1) "
                    "ON CONFLICT (item_id, slot) DO UPDATE SET q = t.q + EXCLUDED.q, n = t.n + 1",
                    item,
                    random.randrange(SLOTS),
                    qty,
                )

    return tx


def real_tx(ids: dict[str, Any], target: str) -> Tx:
    tenant = str(ids["tenant"])
    campaign = ids["campaign"]
    items = ids["items"]

    async def tx(conn: asyncpg.Connection) -> None:
        item = items[0] if target == "one" else random.choice(items)
        qty = random.randint(1, 100)
        async with conn.transaction():
            await conn.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
            await conn.execute(
                "INSERT INTO donation "
                "(tenant_id, campaign_id, item_id, quantity, donor_name, source) "
                "VALUES ($1::text::uuid, $2, $3, $4, 'bench', 'public')",
                tenant,
                campaign,
                item,
                qty,
            )

    return tx


# --------------------------------------------------------------------------- load


async def run_load(
    dsn: str, admin_dsn: str, tx: Tx, concurrency: int, duration: float, warmup: float
) -> dict[str, Any]:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute("CHECKPOINT")
    finally:
        await admin.close()
    conns = await asyncio.gather(*(asyncpg.connect(dsn) for _ in range(concurrency)))
    latencies: list[float] = []
    errors: dict[str, int] = {}
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration
    cpu0: float | None = None

    async def worker(conn: asyncpg.Connection) -> None:
        nonlocal cpu0
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            try:
                await tx(conn)
            except asyncpg.PostgresError as exc:
                if t0 >= measure_from:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            t1 = time.perf_counter()
            if t0 >= measure_from and t1 <= stop_at:
                latencies.append(t1 - t0)

    async def cpu_marker() -> None:
        nonlocal cpu0
        await asyncio.sleep(warmup)
        cpu0 = time.process_time()

    try:
        await asyncio.gather(cpu_marker(), *(worker(c) for c in conns))
        cpu1 = time.process_time()
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    latencies.sort()
    n = len(latencies)

    def pct(p: float) -> float:
        return latencies[min(n - 1, int(p / 100 * n))] * 1000 if n else float("nan")

    return {
        "tx": n,
        "tps": n / duration,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "errors": errors,
        "client_cpu_pct": 100 * (cpu1 - (cpu0 or cpu1)) / duration,
    }


async def check_plain(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        donations = await conn.fetchval("SELECT coalesce(sum(quantity), 0) FROM donation")
        hot = await conn.fetchval("SELECT sum(q) FROM totals_hot")
        slots = await conn.fetchval("SELECT coalesce(sum(q), 0) FROM totals_slot")
        rows = await conn.fetchval("SELECT count(*) FROM donation")
    finally:
        await conn.close()
    return {
        "donation_rows": rows,
        "ok": donations == hot + slots,
        "sum_donations": donations,
        "sum_totals": hot + slots,
    }


async def check_real(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        donations = await conn.fetchval("SELECT coalesce(sum(quantity), 0) FROM donation")
        totals = await conn.fetchval("SELECT coalesce(sum(pending_quantity), 0) FROM item_totals")
        rows = await conn.fetchval("SELECT count(*) FROM donation")
        slot_rows = await conn.fetchval("SELECT count(*) FROM item_total_slot")
    finally:
        await conn.close()
    return {
        "donation_rows": rows,
        "ok": donations == totals,
        "sum_donations": donations,
        "sum_totals": totals,
        "slot_rows": slot_rows,
    }


async def bench(admin_dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    schemas = args.schemas.split(",")
    targets: dict[tuple[str, str, str], tuple[str, Tx]] = {}
    dsns: dict[str, str] = {}
    if "plain" in schemas:
        dsn = await setup_plain(admin_dsn)
        dsns["plain"] = dsn
        for strategy, target in CASES:
            targets[("plain", strategy, target)] = (dsn, plain_tx(strategy, target))
    if "real" in schemas:
        pw = secrets.token_hex(12)
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f"DROP ROLE IF EXISTS {APP_ROLE}")
        finally:
            await conn.close()
        real = {
            "slots": await setup_real(admin_dsn, "totals_real_slots", hot=False, app_password=pw),
            "hot": await setup_real(admin_dsn, "totals_real_hot", hot=True, app_password=pw),
        }
        for strategy, target in CASES:
            dsn, ids = real[strategy]
            dsns[f"real_{strategy}"] = with_db(admin_dsn, f"totals_real_{strategy}")
            targets[("real", strategy, target)] = (dsn, real_tx(ids, target))

    conn = await asyncpg.connect(admin_dsn)
    try:
        settings = {
            k: await conn.fetchval(f"SHOW {k}")
            for k in (
                "server_version",
                "synchronous_commit",
                "fsync",
                "wal_sync_method",
                "shared_buffers",
                "max_connections",
            )
        }
    finally:
        await conn.close()

    runs: dict[str, list[dict[str, Any]]] = {}
    for rnd in range(1, args.rounds + 1):
        for key, (dsn, tx) in targets.items():  # interleaved: every case once per round
            res = await run_load(dsn, admin_dsn, tx, args.concurrency, args.duration, args.warmup)
            res["round"] = rnd
            name = "/".join(key)
            runs.setdefault(name, []).append(res)
            print(
                f"round {rnd} {name:20s} {res['tps']:8.0f} tx/s  p50 {res['p50_ms']:7.2f} ms"
                f"  p99 {res['p99_ms']:7.2f} ms  client cpu {res['client_cpu_pct']:3.0f}%"
                f"  errors {res['errors'] or 0}",
                flush=True,
            )

    checks = {}
    for name, dsn in dsns.items():
        checks[name] = await (check_plain(dsn) if name == "plain" else check_real(dsn))
    return {"settings": settings, "runs": runs, "checks": checks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dsn", help="superuser DSN of an existing PostgreSQL (default: throwaway)")
    ap.add_argument("--schemas", default="plain,real")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()

    with contextlib.ExitStack() as stack:
        admin_dsn = args.dsn or stack.enter_context(throwaway_postgres(Path("/tmp/benchpg_totals")))  # noqa: S108 (throwaway)
        result = asyncio.run(bench(admin_dsn, args))

    runs = result["runs"]
    summary: dict[str, dict[str, Any]] = {}
    for name, rs in runs.items():
        summary[name] = {
            "tps": summarize([r["tps"] for r in rs]),
            "p50_ms": summarize([r["p50_ms"] for r in rs]),
            "p99_ms": summarize([r["p99_ms"] for r in rs]),
            "client_cpu_pct": statistics.median(r["client_cpu_pct"] for r in rs),
            "errors": sum(sum(r["errors"].values()) for r in rs),
        }
    print()
    print(
        f"{args.concurrency} connections, {args.duration:g} s per run, synchronous_commit="
        f"{result['settings']['synchronous_commit']}, {args.rounds} interleaved rounds; "
        "medians (min-max)"
    )
    print(f"{'case':22s} {'tx/s':>20s} {'p50 ms':>22s} {'p99 ms':>22s} {'errors':>6s}")
    for name, s in summary.items():
        print(
            f"{name:22s} {s['tps']['median']:7.0f} ({s['tps']['min']:.0f}-{s['tps']['max']:.0f})"
            f" {s['p50_ms']['median']:8.2f} ({s['p50_ms']['min']:.1f}-{s['p50_ms']['max']:.1f})"
            f" {s['p99_ms']['median']:8.2f} ({s['p99_ms']['min']:.1f}-{s['p99_ms']['max']:.1f})"
            f" {s['errors']:6d}"
        )
    ratios = {}
    for schema in sorted({n.split("/")[0] for n in summary}):
        for strategy in ("hot", "slots"):
            one = summary.get(f"{schema}/{strategy}/one")
            spread = summary.get(f"{schema}/{strategy}/spread")
            if one and spread:
                r = one["tps"]["median"] / spread["tps"]["median"]
                ratios[f"{schema}/{strategy}"] = r
                print(f"{schema:6s} {strategy:5s} one-item / spread = {r:.2f}")
        hot = summary.get(f"{schema}/hot/one")
        slots = summary.get(f"{schema}/slots/one")
        if hot and slots:
            r = slots["tps"]["median"] / hot["tps"]["median"]
            ratios[f"{schema}/one: slots/hot"] = r
            print(f"{schema:6s} one item: slots / hot = {r:.2f}")
    for name, c in result["checks"].items():
        print(f"check {name}: totals == sum(donations): {c['ok']} ({c['donation_rows']} donations)")
    print(
        "JSON "
        + json.dumps(
            {
                "benchmark": "totals",
                "settings": result["settings"],
                "params": vars(args) | {"dsn": "throwaway" if not args.dsn else "given"},
                "summary": summary,
                "ratios": ratios,
                "checks": result["checks"],
                "runs": runs,
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()
