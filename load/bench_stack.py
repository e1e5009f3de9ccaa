"""The benchmark's throwaway stack and its load: PostgreSQL, Redis, the API (with and
without Redis), the bare ceiling app and the Nginx edges, started under one run
directory (`stack`), and what wrk sends to each row (`Target`, `post_script`,
`run_wrk`). load/bench.py measures the rows on it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import subprocess
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from db.crypto import throwaway_keys
from infra.servers import clean_env, sanic_argv, spawn, stop_group, wait_http_ok
from load import wrk
from load.bench_report import Sample
from load.bench_rows import ITEMS_PER_CAMPAIGN, SPREAD_CAMPAIGNS
from load.cpu import CpuMeter

API_ROLE = "conectades_api"
TENANT = "bench"
INSERT_TABLE = "bench_insert"


def _lua_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def post_script(targets: Sequence[tuple[str, str]], headers: dict[str, str]) -> str:
    """A wrk script POSTing a donation-shaped JSON body to a random (path, item_id)."""
    paths = ", ".join(_lua_str(p) for p, _ in targets)
    items = ", ".join(_lua_str(i) for _, i in targets)
    hdrs = ", ".join(f"[{_lua_str(k)}] = {_lua_str(v)}" for k, v in headers.items())
    return f"""
local paths = {{{paths}}}
local items = {{{items}}}
local headers = {{{hdrs}}}
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
init = function(args)
  -- every wrk thread has its own Lua state: seed each differently
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
end
request = function()
  local i = math.random(#paths)
  local body = string.format(
    '{{"item_id":"%s","quantity":%d,"donor_name":"bench"}}', items[i], math.random(1, 10))
  return wrk.format("POST", paths[i], headers, body)
end
{wrk.DONE_LUA}"""


def parse_wrk(stdout: str) -> Sample:
    return _sample(wrk.parse(stdout))


def _sample(data: dict[str, Any]) -> Sample:
    return Sample(
        rps=data["rps"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=int(data["errors"]),
        requests=int(data["requests"]),
    )


@dataclass
class Target:
    """What wrk loads for one row."""

    url: str
    script: Path
    headers: dict[str, str] = field(default_factory=dict)
    check: Callable[[], dict[str, Any]] | None = None  # after each run: extra figures


def run_wrk(target: Target, duration: int, threads: int, connections: int) -> Sample:
    data = wrk.run(
        target.url,
        target.script,
        duration=duration,
        threads=threads,
        connections=connections,
        headers=target.headers,
    )
    return _sample(data)


class Sanics:
    """Sanic servers (`--workers N`) in their own sessions, stopped together."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []

    def start(
        self, target: str, workers: int, env: dict[str, str], log: Path, timeout: float = 60
    ) -> str:
        from infra.postgres import free_port

        port = free_port()
        proc = spawn(sanic_argv(target, port, workers=workers), env, log)
        self.procs.append(proc)
        self.ports.append(port)
        url = f"http://127.0.0.1:{port}"
        wait_http_ok(proc, url + "/health/ready", timeout, log=log, name=target, interval=0.2)
        return url

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop_group(proc)


def fetch(
    url: str, key: str | None = None, method: str = "GET", body: Any = None
) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (loopback)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310
        return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()


def _expect(url: str, header: str, value: str | set[str], key: str | None = None) -> None:
    status, headers, _ = fetch(url, key)
    wanted = {value} if isinstance(value, str) else value
    if status != 200 or headers.get(header) not in wanted:
        raise RuntimeError(f"{url}: {status}, {header}: {headers.get(header)} (want {value})")


# The edge answered from its cache: fresh, or stale within the page's own
# stale-while-revalidate second while it fetches a fresh one.
FROM_EDGE_CACHE = {"HIT", "STALE", "UPDATING", "REVALIDATED"}


async def _prepare_db(admin_dsn: str, api_password: str) -> str:
    """Migrate, create the API role, the tenant with a key, and the insert table."""
    import asyncpg

    from db import migrate
    from tenants import provisioning

    conn = await asyncpg.connect(admin_dsn)
    try:
        await migrate.migrate(conn)
        await migrate.ensure_api_role(conn, API_ROLE, api_password)
        await conn.execute(
            f"""CREATE TABLE {INSERT_TABLE} (
                    id bigserial PRIMARY KEY,
                    item_id uuid NOT NULL,
                    quantity integer NOT NULL CHECK (quantity > 0),
                    created_at timestamptz NOT NULL DEFAULT now());
                GRANT SELECT, INSERT ON {INSERT_TABLE} TO {API_ROLE};
                GRANT USAGE ON SEQUENCE {INSERT_TABLE}_id_seq TO {API_ROLE};"""
        )
        async with conn.transaction():
            bench_tenant = await provisioning.tenant_with_key(
                conn, slug=TENANT, name="ONG Benchmark", scopes=["read", "write"]
            )
            full = bench_tenant.key
    finally:
        await conn.close()
    return str(full)


def analyze(admin_dsn: str) -> None:
    """Refresh the planner's statistics (the bench runs it after every writing row).

    A database in steady state has them: autovacuum analyzes a table once a tenth of
    it has changed, at most a minute later. The bench's database is minutes old, so
    its first analyze came at a random moment of the run, and until then the planner
    costed each table with default selectivities. Measured (2026-12-03): after the
    donations-one row's 4,925 donations on the bench campaign, the donor page's
    recent donations were read with a bitmap scan of all of them and a sort (no
    statistics yet: 3 rows estimated) instead of the newest 10 from the campaign's
    index: 2.09 ms of PostgreSQL per call instead of 0.14, charged to page-build."""
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute("ANALYZE")
        finally:
            await conn.close()

    asyncio.run(run())


def _spread_campaign(n: int) -> dict[str, Any]:
    from load.ceiling import campaign_body

    body = campaign_body()
    body["slug"] = f"bench-spread-{n}"
    body["title"] = f"Campanha {n}"
    body["items"] = [
        {"name": f"Item {n}.{i}", "unit": "kg", "quantity_requested": 1_000_000}
        for i in range(ITEMS_PER_CAMPAIGN)
    ]
    return body


@dataclass
class Stack:
    """The throwaway stack and what each row loads."""

    targets: dict[str, Target]
    api_env: dict[str, str]
    page_bytes: int
    edges: list[Any]
    cpu: CpuMeter
    admin_dsn: str


@contextlib.contextmanager
def stack(base: Path, names: Sequence[str], workers: int) -> Iterator[Stack]:
    from cache import prepare_metrics_dir
    from edge.render import EdgeConfig
    from infra.nginx import LocalNginx
    from infra.postgres import LocalPostgres, free_port
    from infra.redis import LocalRedis
    from load.ceiling import campaign_body

    base.mkdir(parents=True)
    done = base / "done.lua"
    done.write_text(wrk.DONE_LUA)
    pg = LocalPostgres(datadir=base / "pgdata", port=free_port(), password=secrets.token_hex(12))
    redis = LocalRedis(dir=base / "redis", port=free_port(), maxmemory="256mb")
    sanics = Sanics()
    edges: list[LocalNginx] = []
    clean = False

    def edge(name: str, upstream: str, static: Path | None = None) -> LocalNginx:
        server = LocalNginx(
            EdgeConfig(
                listen_port=free_port(),
                upstreams=[upstream.removeprefix("http://")],
                prefix=base / f"edge-{name}",
                static_dir=static or base / "static",
                # One client at tens of thousands of requests/s from 127.0.0.1.
                per_ip_limits=False,
            )
        )
        edges.append(server)
        server.start()
        return server

    try:
        pg.init({"max_connections": "200"})
        pg.start(base / "postgres.log")
        redis.start()
        api_password = secrets.token_hex(12)
        key = asyncio.run(_prepare_db(pg.admin_dsn, api_password))
        auth = {"Authorization": f"Bearer {key}"}
        common = clean_env(
            CONECTADES_DATABASE_URL=pg.dsn(API_ROLE, api_password),
            CONECTADES_JWT_SECRET=secrets.token_urlsafe(48),
            **throwaway_keys(),
            # One key at thousands of requests/s: the per-key limiter would answer 429.
            CONECTADES_RATE_LIMIT_RATE="0",
        )
        api_env = common | {
            "CONECTADES_REDIS_URL": redis.url,
            "PROMETHEUS_MULTIPROC_DIR": str(prepare_metrics_dir(base / "metrics")),
        }
        api = sanics.start("api.server:create_app", workers, api_env, base / "api.log")

        status, _, raw = fetch(api + "/api/v1/campaigns", key, "POST", campaign_body())
        if status != 201:
            raise RuntimeError(f"creating the campaign: {status} {raw[:300]!r}")
        campaign = json.loads(raw)
        read_path = f"/api/v1/campaigns/{campaign['id']}"
        page_path = f"/api/public/{TENANT}/campaigns/{campaign['slug']}"
        hot = (f"{read_path}/donations", campaign["items"][0]["id"])
        spread = []
        for n in range(SPREAD_CAMPAIGNS):
            status, _, raw = fetch(api + "/api/v1/campaigns", key, "POST", _spread_campaign(n))
            if status != 201:
                raise RuntimeError(f"creating campaign {n}: {status} {raw[:300]!r}")
            body = json.loads(raw)
            spread += [
                (f"/api/v1/campaigns/{body['id']}/donations", i["id"]) for i in body["items"]
            ]

        _, _, page = fetch(api + page_path)
        (base / "static").mkdir()
        (base / "static" / "page.json").write_bytes(page)
        donor_path = f"/o/{TENANT}/{campaign['slug']}"
        status, _, donor_page = fetch(api + donor_path)
        if status != 200:
            raise RuntimeError(f"the donor page: {status} {donor_page[:300]!r}")
        (base / "static" / "page.html").write_bytes(donor_page)
        _, _, read_body = fetch(api + read_path, key)
        body_file = base / "partner-read.json"
        body_file.write_bytes(read_body)

        main_edge = edge("api", api)
        for _ in range(3):  # warm both caches (the microcache and Redis)
            fetch(main_edge.url + page_path)
            fetch(main_edge.url + donor_path)
            fetch(main_edge.url + read_path, key)

        def scripted(name: str, text: str) -> Path:
            path = base / f"{name}.lua"
            path.write_text(text)
            return path

        def public_check() -> dict[str, Any]:
            from edge import stats

            _expect(main_edge.url + page_path, "x-cache-status", FROM_EDGE_CACHE)
            return {"edge_hit_ratio": round(stats.read_log(main_edge.access_log).hit_ratio, 4)}

        def donor_check() -> dict[str, Any]:
            from edge import stats

            _expect(main_edge.url + donor_path, "x-cache-status", FROM_EDGE_CACHE)
            return {"edge_hit_ratio": round(stats.read_log(main_edge.access_log).hit_ratio, 4)}

        def redis_check() -> dict[str, Any]:
            _expect(main_edge.url + read_path, "x-cache", "HIT", key)
            return {}

        post_headers = {"Content-Type": "application/json", **auth}
        targets = {
            "static-file": Target(main_edge.url + "/static/page.json", done),
            "static-html": Target(main_edge.url + "/static/page.html", done),
            "donor-page": Target(main_edge.url + donor_path, done, check=donor_check),
            "public-page": Target(main_edge.url + page_path, done, check=public_check),
            "partner-redis": Target(main_edge.url + read_path, done, auth, redis_check),
            "donations-spread": Target(
                main_edge.url, scripted("spread", post_script(spread, post_headers))
            ),
            "donations-one": Target(
                main_edge.url, scripted("one", post_script([hot], post_headers))
            ),
        }
        if {"bare-route", "pg-insert"} & set(names):
            bare_env = common | {
                "BENCH_BODY_FILE": str(body_file),
                "BENCH_DATABASE_URL": pg.dsn(API_ROLE, api_password),
            }
            bare = edge(
                "bare",
                sanics.start("load.ceiling:create_bare_app", workers, bare_env, base / "bare.log"),
            )
            inserts = [("/bench/insert", item) for _, item in spread]
            targets["bare-route"] = Target(bare.url + read_path, done, auth)
            targets["pg-insert"] = Target(
                bare.url, scripted("insert", post_script(inserts, post_headers))
            )
        if {"partner-pg", "json-build", "page-build"} & set(names):
            pg_api = sanics.start("api.server:create_app", workers, common, base / "api-pg.log")
            nocache = edge("pg", pg_api)
            _expect(nocache.url + read_path, "x-cache", "BYPASS", key)
            _expect(pg_api + page_path, "x-cache", "BYPASS")
            targets["partner-pg"] = Target(nocache.url + read_path, done, auth)
            # Straight to the API: no microcache in front, every request is built.
            targets["json-build"] = Target(pg_api + page_path, done)
            targets["page-build"] = Target(pg_api + donor_path, done)
        ports = [pg.port, redis.port, *sanics.ports, *(e.config.listen_port for e in edges)]
        yield Stack(
            targets=targets,
            api_env=api_env,
            page_bytes=len(page),
            edges=edges,
            cpu=CpuMeter.for_ports(ports),
            admin_dsn=pg.admin_dsn,
        )
        clean = True
    finally:
        for server in edges:
            server.stop()
        sanics.stop()
        redis.stop()
        pg.destroy()
        if clean:
            shutil.rmtree(base, ignore_errors=True)
