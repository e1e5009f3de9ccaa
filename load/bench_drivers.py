"""Benchmark: a plain asyncpg pool vs the `databases` package, behind Sanic.

Same handler in both apps: GET /item/<id:int> -> SELECT by primary key -> JSON
(orjson). Each app runs as ONE Sanic process (--single-process) with a pool of
exactly 10 connections (min_size=10, max_size=10), loaded by wrk from the same
machine (wrk -t1 -c64 -d10s, random ids 1..10000 via a Lua script).

Runs are interleaved (A,B,A,B,A,B) and medians are reported, because the
machine is shared and noisy.

Usage (from the repository root, with a venv that has sanic, asyncpg, orjson,
databases[asyncpg]; wrk on PATH):

    python -m load.bench_drivers                 # throwaway PostgreSQL under /tmp/benchpg
    python -m load.bench_drivers --dsn postgresql://u:p@127.0.0.1:5432/db
    python -m load.bench_drivers --rounds 3 --duration 10 --connections 64

The server side is this same module, started as
    BENCH_DSN=... BENCH_IMPL=asyncpg|databases \
    sanic load.bench_drivers:create_app --factory --single-process --no-access-logs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROWS = 10_000
TABLE = "bench_item"
SELECT_ASYNCPG = f"SELECT id, name, category, quantity, updated_at FROM {TABLE} WHERE id = $1"
SELECT_DATABASES = f"SELECT id, name, category, quantity, updated_at FROM {TABLE} WHERE id = :id"


# --------------------------------------------------------------------------- server side


def create_app():
    """Sanic app factory; BENCH_IMPL picks the driver, BENCH_DSN the database."""
    import orjson
    from sanic import Sanic
    from sanic.response import HTTPResponse

    impl = os.environ.get("BENCH_IMPL", "asyncpg")
    dsn = os.environ["BENCH_DSN"]
    app = Sanic(f"bench_{impl}")
    app.config.ACCESS_LOG = False

    def json_response(row) -> HTTPResponse:
        if row is None:
            return HTTPResponse(
                b'{"detail":"not found"}', status=404, content_type="application/json"
            )
        return HTTPResponse(orjson.dumps(row), content_type="application/json")

    if impl == "asyncpg":
        import asyncpg

        @app.before_server_start
        async def _open(app, _loop):
            app.ctx.pool = await asyncpg.create_pool(dsn, min_size=10, max_size=10)

        @app.after_server_stop
        async def _close(app, _loop):
            await app.ctx.pool.close()

        @app.get("/item/<item_id:int>")
        async def item(request, item_id: int):
            row = await request.app.ctx.pool.fetchrow(SELECT_ASYNCPG, item_id)
            return json_response(dict(row) if row is not None else None)

    elif impl == "databases":
        from databases import Database

        @app.before_server_start
        async def _open(app, _loop):
            app.ctx.db = Database(dsn, min_size=10, max_size=10)
            await app.ctx.db.connect()

        @app.after_server_stop
        async def _close(app, _loop):
            await app.ctx.db.disconnect()

        @app.get("/item/<item_id:int>")
        async def item(request, item_id: int):
            row = await request.app.ctx.db.fetch_one(SELECT_DATABASES, {"id": item_id})
            return json_response(dict(row._mapping) if row is not None else None)

    else:
        raise SystemExit(f"unknown BENCH_IMPL {impl!r}")

    return app


# --------------------------------------------------------------------------- throwaway postgres


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def throwaway_postgres(base: Path = Path("/tmp/benchpg")):  # noqa: S108 (throwaway, rm -rf at exit)
    """Start a fresh PostgreSQL (infra.postgres.LocalPostgres) and yield its admin DSN."""
    sys.path.insert(0, str(_repo_root()))
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


def pg_version(dsn: str) -> str:
    import asyncio

    import asyncpg

    async def go():
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval("SHOW server_version")
        finally:
            await conn.close()

    return asyncio.run(go())


def prepare_table(dsn: str) -> None:
    import asyncio

    import asyncpg

    async def go():
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
            await conn.execute(
                f"""CREATE TABLE {TABLE} (
                        id integer PRIMARY KEY,
                        name text NOT NULL,
                        category text NOT NULL,
                        quantity bigint NOT NULL,
                        updated_at timestamptz NOT NULL DEFAULT now())"""
            )
            await conn.execute(
                f"""INSERT INTO {TABLE} (id, name, category, quantity)
                    SELECT g, 'item ' || g, (ARRAY['food','clothes','money','hours'])[1 + g % 4],
                           (g * 37) % 1000
                    FROM generate_series(1, {ROWS}) g"""
            )
            await conn.execute(f"VACUUM ANALYZE {TABLE}")
        finally:
            await conn.close()

    asyncio.run(go())


# --------------------------------------------------------------------------- load side

WRK_LUA = r"""
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/item/" .. math.random(1, %(rows)d))
end
done = function(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,"mean_us":%%f,'
    .. '"errors_connect":%%d,"errors_read":%%d,"errors_write":%%d,"errors_status":%%d,'
    .. '"errors_timeout":%%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(impl: str, dsn: str, port: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ, BENCH_IMPL=impl, BENCH_DSN=dsn, PYTHONPATH=str(_repo_root()))
    sanic_bin = Path(sys.executable).with_name("sanic")
    cmd = [
        str(sanic_bin),
        "load.bench_drivers:create_app",
        "--factory",
        "--single-process",
        "--no-access-logs",
        "--no-motd",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=_repo_root(),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{impl} server exited; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/item/1", timeout=1) as r:
                body = json.loads(r.read())
                if r.status == 200 and body["id"] == 1:
                    return proc
        except OSError:
            time.sleep(0.2)
    stop_server(proc)
    raise RuntimeError(f"{impl} server did not become ready; see {log}")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_wrk(port: int, lua: Path, threads: int, conns: int, duration: int) -> dict:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{conns}",
        f"-d{duration}s",
        "-s",
        str(lua),
        f"http://127.0.0.1:{port}/",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("WRKJSON "))
    data = json.loads(line[len("WRKJSON ") :])
    data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
    data["errors"] = sum(v for k, v in data.items() if k.startswith("errors_"))
    return data


def summarize(values: list[float]) -> dict:
    med = statistics.median(values)
    return {
        "median": med,
        "min": min(values),
        "max": max(values),
        "spread_pct": 100.0 * (max(values) - min(values)) / med if med else 0.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dsn", help="use this PostgreSQL instead of a throwaway one")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of wrk warm-up per server start")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--impls", default="asyncpg,databases")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found (apt-get install -y wrk)")

    impls = args.impls.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="bench_drivers_"))
    lua = workdir / "random_item.lua"
    lua.write_text(WRK_LUA % {"rows": ROWS})

    with contextlib.ExitStack() as stack:
        dsn = args.dsn or stack.enter_context(throwaway_postgres())
        prepare_table(dsn)
        version = pg_version(dsn)
        runs: dict[str, list[dict]] = {i: [] for i in impls}
        for rnd in range(1, args.rounds + 1):
            for impl in impls:  # interleaved: A,B,A,B,...
                port = free_port()
                proc = start_server(impl, dsn, port, workdir / f"{impl}.log")
                try:
                    if args.warmup:
                        run_wrk(port, lua, args.threads, args.connections, args.warmup)
                    res = run_wrk(port, lua, args.threads, args.connections, args.duration)
                finally:
                    stop_server(proc)
                res["round"] = rnd
                runs[impl].append(res)
                print(
                    f"round {rnd} {impl:9s} {res['rps']:9.0f} req/s"
                    f"  p50 {res['p50_us'] / 1000:6.2f} ms  p99 {res['p99_us'] / 1000:6.2f} ms"
                    f"  errors {res['errors']}",
                    flush=True,
                )

    import asyncpg
    import databases
    import sanic

    summary = {}
    for impl in impls:
        summary[impl] = {
            "rps": summarize([r["rps"] for r in runs[impl]]),
            "p50_ms": summarize([r["p50_us"] / 1000 for r in runs[impl]]),
            "p99_ms": summarize([r["p99_us"] / 1000 for r in runs[impl]]),
            "errors": sum(r["errors"] for r in runs[impl]),
        }
    print()
    print(
        f"Sanic single process, pool 10, wrk -t{args.threads} -c{args.connections} "
        f"-d{args.duration}s, random ids, {args.rounds} interleaved rounds; medians (min-max)"
    )
    print(f"{'driver':10s} {'req/s':>22s} {'p50 ms':>20s} {'p99 ms':>20s} {'errors':>7s}")
    for impl in impls:
        s = summary[impl]
        print(
            f"{impl:10s} {s['rps']['median']:8.0f} ({s['rps']['min']:.0f}-{s['rps']['max']:.0f})"
            f" {s['p50_ms']['median']:7.2f} ({s['p50_ms']['min']:.2f}-{s['p50_ms']['max']:.2f})"
            f" {s['p99_ms']['median']:7.2f} ({s['p99_ms']['min']:.2f}-{s['p99_ms']['max']:.2f})"
            f" {s['errors']:7d}"
        )
    if "asyncpg" in summary and "databases" in summary:
        ratio = summary["databases"]["rps"]["median"] / summary["asyncpg"]["rps"]["median"]
        print(f"databases / asyncpg throughput (medians): {ratio:.2f}")
        summary["ratio_databases_over_asyncpg_rps"] = ratio
    print(
        "JSON "
        + json.dumps(
            {
                "benchmark": "drivers",
                "versions": {
                    "sanic": sanic.__version__,
                    "asyncpg": asyncpg.__version__,
                    "databases": databases.__version__,
                    "postgresql": version,
                },
                "params": vars(args) | {"dsn": "throwaway" if not args.dsn else "given"},
                "summary": summary,
                "runs": runs,
            }
        )
    )
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
