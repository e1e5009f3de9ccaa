"""The benchmark harness: our paths against their ceilings, in one run, one client.

`conectades bench` / `python -m load.bench` starts a throwaway stack under
var/bench/harness/ (PostgreSQL, Redis, the API, the Nginx edge rendered by
edge/render.py) and loads it with wrk (the same binary, threads and connections
for every row). Each row is measured once per round, rounds are interleaved and
medians reported, because the machine is shared and noisy: what holds from run to
run is a path's ratio to its ceiling, not its absolute rate.

Ceilings
  static-file       Nginx serving a static file with the public page's bytes
  static-html       the same with the donor page's (HTML) bytes
  json-build        the public JSON page on an API without Redis, no edge (built each time)
  bare-route        a bare Sanic route (load/ceiling.py's `create_bare_app`) returning the
                    partner read's bytes, through the edge
  pg-insert         the same bare app doing one INSERT into a plain table through
                    asyncpg per POST (autocommit, synchronous_commit on), through the
                    edge: the write rate PostgreSQL allows this HTTP client
Our paths
  public-page       GET /api/public/{tenant}/campaigns/{slug} from the edge microcache
  donor-page        GET /o/{tenant}/{slug} (pt-BR HTML) from the edge microcache
  page-build        the same page on an API without Redis, no edge (built each time)
  partner-redis     GET /api/v1/campaigns/{id} with an API key, X-Cache: HIT (Redis)
  partner-pg        the same read from an API without Redis (built from PostgreSQL)
  donations-spread  POST /api/v1/campaigns/{id}/donations, random item of 200
  donations-one     the same, every donation on one item (hot item)
  cold-start        seconds from process start to the first 200 on /health/ready
                    (load/coldstart.py)

Targets (issue 6): public-page >= 0.85 x static-file; partner-redis >= 0.5 x
bare-route; donations-one >= 0.8 x donations-spread; cold start <= 1.5 s.
Issue 17: donor-page >= 0.85 x static-html (a file with the page's bytes);
page-build's CPU per request <= 2 x json-build's (both built on every request).

The API's per-key rate limiter is off (CONECTADES_RATE_LIMIT_RATE=0) and the
edge's per-IP limits are off (EdgeConfig(per_ip_limits=False)): one client at
thousands of requests/s would otherwise get 429s; the limits have their own tests.

Usage (from the repository root):

    .venv/bin/python -m load.bench
    .venv/bin/python -m load.bench --duration 10 --rounds 3 --connections 32 --workers 2
    .venv/bin/python -m load.bench --only static-file,public-page --json out.json
    .venv/bin/conectades bench --markdown table.md
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from db.crypto import throwaway_keys
from infra.servers import clean_env, sanic_argv, spawn, stop_group, wait_http_ok
from load import wrk
from load.cpu import CpuMeter

ROOT = Path(__file__).resolve().parent.parent
# Each run gets its own directory below this one (runs may overlap: a test while a
# full run goes on); it is removed after a clean run and kept, with the logs, after a
# failed one.
BASE = ROOT / "var" / "bench" / "harness"
API_ROLE = "conectades_api"
TENANT = "bench"
COLD_START_GOAL = 1.5  # seconds
SPREAD_CAMPAIGNS = 10
ITEMS_PER_CAMPAIGN = 20
INSERT_TABLE = "bench_insert"

# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class Row:
    name: str
    label: str
    ceiling: str | None  # the row this one is divided by (None: a ceiling itself)
    goal: float | None  # the minimum ratio to the ceiling, from the issue
    meaning: str
    # The most CPU per request this row may cost, as a multiple of its ceiling's
    # (then the goal is on cost, not on the rate; `goal` is None).
    cost_goal: float | None = None


ROWS: tuple[Row, ...] = (
    Row(
        "static-file",
        "ceiling: Nginx static file",
        None,
        None,
        "GET /static/page.json: nginx serving a file with the public page's bytes",
    ),
    Row(
        "bare-route",
        "ceiling: bare Sanic route",
        None,
        None,
        "GET /api/v1/campaigns/{id} on a bare Sanic app returning the partner read's "
        "bytes, through the edge",
    ),
    Row(
        "pg-insert",
        "ceiling: PostgreSQL insert",
        None,
        None,
        "POST to a bare Sanic route doing one INSERT into a plain table (asyncpg, "
        "autocommit, synchronous_commit on), through the edge",
    ),
    Row(
        "static-html",
        "ceiling: Nginx static file (page)",
        None,
        None,
        "GET /static/page.html: nginx serving a file with the donor page's bytes",
    ),
    Row(
        "json-build",
        "ceiling: public JSON page built",
        None,
        None,
        "GET /api/public/bench/campaigns/{slug} on an API without Redis, no edge: "
        "built from PostgreSQL every time (the cost a donor page build is held to)",
    ),
    Row(
        "public-page",
        "public page, edge cache",
        "static-file",
        0.85,
        "GET /api/public/bench/campaigns/{slug} served by the edge microcache "
        "(X-Cache-Status: HIT)",
    ),
    Row(
        "donor-page",
        "donor page (HTML), edge cache",
        "static-html",
        0.85,
        "GET /o/bench/{slug}: the campaign's pt-BR page served by the edge microcache "
        "(X-Cache-Status: HIT)",
    ),
    Row(
        "page-build",
        "donor page (HTML) built",
        "json-build",
        None,
        "GET /o/bench/{slug} on the API without Redis, no edge: the page built from "
        "PostgreSQL every time; its CPU per request at most 2 x the JSON page's",
        cost_goal=2.0,
    ),
    Row(
        "partner-redis",
        "partner read, Redis",
        "bare-route",
        0.5,
        "GET /api/v1/campaigns/{id} with an API key through the edge; X-Cache: HIT",
    ),
    Row(
        "partner-pg",
        "partner read, PostgreSQL",
        "bare-route",
        None,
        "the same read from an API without Redis: built from PostgreSQL every time",
    ),
    Row(
        "donations-spread",
        "donations, many items",
        "pg-insert",
        None,
        f"POST /api/v1/campaigns/{{id}}/donations (API key), a random item of "
        f"{SPREAD_CAMPAIGNS * ITEMS_PER_CAMPAIGN} in {SPREAD_CAMPAIGNS} campaigns",
    ),
    Row(
        "donations-one",
        "donations, one item",
        "donations-spread",
        0.8,
        "the same POST, every donation on one item (no hot-row penalty expected)",
    ),
)
ROW_BY_NAME = {row.name: row for row in ROWS}
COLD_START = "cold-start"
NAMES = (*ROW_BY_NAME, COLD_START)


def select(only: Sequence[str] | None) -> list[str]:
    """The names to measure, in table order; `only` may hold comma-separated lists."""
    if not only:
        return list(NAMES)
    wanted = {name.strip() for item in only for name in item.split(",") if name.strip()}
    unknown = sorted(wanted - set(NAMES))
    if unknown:
        raise ValueError(f"unknown row(s): {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    return [name for name in NAMES if name in wanted]


# --------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class Sample:
    """One wrk run of one row."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    extra: dict[str, Any] = field(default_factory=dict)
    # Server CPU per request (core-ms) by part and `total` (load/cpu.py).
    cpu_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Summary:
    row: Row
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    runs: int
    ratio: float | None
    rps_min: float = 0.0
    # This row's CPU per request over its ceiling's (rows with a cost goal).
    cost_ratio: float | None = None
    rps_max: float = 0.0
    # Median server CPU per request (core-ms), in all and by part.
    cpu_ms: dict[str, float] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        """Whether the goal holds (None: no goal, or its ceiling was not measured)."""
        if self.row.cost_goal is not None:
            return None if self.cost_ratio is None else self.cost_ratio <= self.row.cost_goal
        if self.row.goal is None or self.ratio is None:
            return None
        return self.ratio >= self.row.goal


@dataclass(frozen=True)
class ColdStart:
    runs: list[float]
    goal: float = COLD_START_GOAL

    @property
    def median(self) -> float:
        return median(self.runs)

    @property
    def met(self) -> bool:
        return self.median <= self.goal


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def ratio(value: float, ceiling: float) -> float | None:
    return value / ceiling if ceiling > 0 else None


def summarize(samples: dict[str, list[Sample]]) -> list[Summary]:
    """Medians per row (in table order), and each row's ratio to its ceiling's median."""
    rps = {name: median([s.rps for s in runs]) for name, runs in samples.items() if runs}
    cost = {name: _median_cpu(runs).get("total") for name, runs in samples.items() if runs}
    out = []
    for row in ROWS:
        runs = samples.get(row.name)
        if not runs:
            continue
        ceiling = rps.get(row.ceiling) if row.ceiling else None
        out.append(
            Summary(
                row=row,
                rps=rps[row.name],
                p50_ms=median([s.p50_ms for s in runs]),
                p99_ms=median([s.p99_ms for s in runs]),
                errors=sum(s.errors for s in runs),
                runs=len(runs),
                ratio=ratio(rps[row.name], ceiling) if ceiling is not None else None,
                rps_min=min(s.rps for s in runs),
                rps_max=max(s.rps for s in runs),
                cpu_ms=_median_cpu(runs),
                cost_ratio=_cost_ratio(cost.get(row.name), cost.get(row.ceiling or "")),
            )
        )
    return out


def _cost_ratio(cost: float | None, ceiling: float | None) -> float | None:
    return cost / ceiling if cost is not None and ceiling else None


def _median_cpu(runs: Sequence[Sample]) -> dict[str, float]:
    parts = {part for s in runs for part in s.cpu_ms}
    return {
        part: median([s.cpu_ms[part] for s in runs if part in s.cpu_ms]) for part in sorted(parts)
    }


def _cpu_cell(cpu_ms: dict[str, float]) -> str:
    """`0.52 (api 0.31, pg 0.15, redis 0.01, nginx 0.05)`: core-ms per request."""
    if "total" not in cpu_ms:
        return ""
    short = {"postgres": "pg"}
    parts = ", ".join(
        f"{short.get(part, part)} {cpu_ms[part]:.2f}"
        for part in ("api", "postgres", "redis", "nginx")
        if part in cpu_ms
    )
    return f"{cpu_ms['total']:.2f} ({parts})"


def _verdict(met: bool | None) -> str:
    return "" if met is None else ("**yes**" if met else "**NO**")


def render_table(summaries: Sequence[Summary], cold: ColdStart | None = None) -> str:
    """The results as a Markdown table (also what the terminal shows)."""
    lines = [
        "| row | what | req/s | (min-max) | p50 ms | p99 ms | errors | ratio to ceiling | goal "
        "| met | server core-ms/req |",
        "|---|---|---:|---|---:|---:|---:|---|---|---|---|",
    ]
    for s in summaries:
        if s.row.ceiling is None:
            against = "(ceiling)"
        elif s.ratio is None:
            against = f"— ({s.row.ceiling} not measured)"
        elif s.row.cost_goal is not None and s.cost_ratio is not None:
            against = f"{s.ratio:.2f} x {s.row.ceiling}; CPU {s.cost_ratio:.2f} x"
        else:
            against = f"{s.ratio:.2f} x {s.row.ceiling}"
        if s.row.cost_goal is not None:
            goal = f"CPU ≤ {s.row.cost_goal:g} x"
        else:
            goal = f"≥ {s.row.goal:g}" if s.row.goal is not None else ""
        lines.append(
            f"| {s.row.name} | {s.row.label} | {s.rps:,.0f} | {s.rps_min:,.0f}-{s.rps_max:,.0f} "
            f"| {s.p50_ms:.2f} | "
            f"{s.p99_ms:.2f} | {s.errors} | {against} | {goal} | {_verdict(s.met)} "
            f"| {_cpu_cell(s.cpu_ms)} |"
        )
    if cold is not None:
        lines.append(
            f"| {COLD_START} | one API worker: start → first 200 on /health/ready "
            f"(median of {len(cold.runs)}) | | {min(cold.runs):.2f}-{max(cold.runs):.2f} s "
            f"| {cold.median:.2f} s | "
            f"| | | ≤ {cold.goal:g} s | {_verdict(cold.met)} | |"
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- wrk


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


# --------------------------------------------------------------------------- the stack


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


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class Options:
    duration: int = 10
    rounds: int = 3
    connections: int = 32
    workers: int = os.cpu_count() or 1
    threads: int = 2
    warmup: int = 2
    cold_runs: int = 5
    only: tuple[str, ...] = ()

    @property
    def command(self) -> str:
        cmd = (
            f"conectades bench --duration {self.duration:g} --rounds {self.rounds} "
            f"--connections {self.connections} --workers {self.workers} "
            f"--threads {self.threads} --warmup {self.warmup:g}"
        )
        if self.only:
            cmd += f" --only {','.join(self.only)}"
        return cmd


def _truncate_logs(edges: Sequence[Any]) -> None:
    """Keep the access logs to one run (nginx appends, so truncation is safe)."""
    for server in edges:
        with contextlib.suppress(FileNotFoundError):
            os.truncate(server.access_log, 0)


def _cold_start(env: dict[str, str], runs: int) -> ColdStart:
    from load.coldstart import measure_cold_start

    return ColdStart(runs=measure_cold_start(env, runs=runs))


def _machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = found.group(1) if found else ""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split(" [")[0],
    }


@contextlib.contextmanager
def _kept_on_failure(run_dir: Path) -> Iterator[None]:
    try:
        yield
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}\n(the run's logs are kept in {run_dir})") from exc


def bench(opts: Options, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Start the stack, measure the selected rows (interleaved rounds), stop the stack."""
    if not shutil.which("wrk"):
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    names = select(opts.only)
    rows = [n for n in names if n in ROW_BY_NAME]
    samples: dict[str, list[Sample]] = {n: [] for n in rows}
    loads: list[float] = [os.getloadavg()[0]]
    cold: ColdStart | None = None
    started = dt.datetime.now(dt.UTC)
    run_dir = BASE / f"{started:%Y%m%d-%H%M%S}-{os.getpid()}"
    with _kept_on_failure(run_dir), stack(run_dir, rows, opts.workers) as st:
        log(
            f"stack up: {opts.workers} API worker(s) per server, page {st.page_bytes} bytes; "
            "API rate limiter off (CONECTADES_RATE_LIMIT_RATE=0), edge per-IP limits off "
            "(EdgeConfig(per_ip_limits=False))"
        )
        if opts.warmup > 0:
            for name in rows:
                run_wrk(st.targets[name], opts.warmup, opts.threads, opts.connections)
        for rnd in range(1, opts.rounds + 1):
            for name in rows:  # interleaved: every row once per round
                _truncate_logs(st.edges)
                target = st.targets[name]
                st.cpu.start()
                sample = run_wrk(target, opts.duration, opts.threads, opts.connections)
                cpu_ms = st.cpu.stop().per_request_ms(sample.requests)
                extra = target.check() if target.check is not None else {}
                sample = Sample(**{**asdict(sample), "extra": extra, "cpu_ms": cpu_ms})
                samples[name].append(sample)
                loads.append(os.getloadavg()[0])
                log(
                    f"round {rnd} {name:17s} {sample.rps:9.0f} req/s  p50 {sample.p50_ms:6.2f} ms"
                    f"  p99 {sample.p99_ms:7.2f} ms  errors {sample.errors}"
                    f"  server {sample.cpu_ms.get('total', 0):.2f} core-ms/req"
                    + (f"  {sample.extra}" if sample.extra else "")
                )
        _truncate_logs(st.edges)
        if COLD_START in names:
            cold = _cold_start(st.api_env, opts.cold_runs)
            loads.append(os.getloadavg()[0])
    summaries = summarize(samples)
    return {
        "date": started.isoformat(timespec="seconds"),
        "command": opts.command,
        "options": asdict(opts),
        "machine": _machine(),
        "load_average_1min": {"min": min(loads), "max": max(loads), "samples": loads},
        "page_bytes": st.page_bytes,
        "notes": [
            "API per-key rate limiter off (CONECTADES_RATE_LIMIT_RATE=0)",
            "edge per-IP limits off (EdgeConfig(per_ip_limits=False))",
        ],
        "summary": [
            {
                "name": s.row.name,
                "rps": s.rps,
                "p50_ms": s.p50_ms,
                "p99_ms": s.p99_ms,
                "errors": s.errors,
                "ceiling": s.row.ceiling,
                "ratio": s.ratio,
                "rps_min": s.rps_min,
                "rps_max": s.rps_max,
                "goal": s.row.goal,
                "met": s.met,
                "cpu_ms_per_request": s.cpu_ms,
                "cost_ratio": s.cost_ratio,
                "cost_goal": s.row.cost_goal,
            }
            for s in summaries
        ],
        "cold_start": None
        if cold is None
        else {"runs": cold.runs, "median": cold.median, "goal": cold.goal, "met": cold.met},
        "rounds": {name: [asdict(s) for s in runs] for name, runs in samples.items()},
        "table": render_table(summaries, cold),
    }


def report_markdown(result: dict[str, Any]) -> str:
    opts = result["options"]
    machine = result["machine"]
    la = result["load_average_1min"]
    return (
        f"Run {result['date']} with `{result['command']}`: wrk -t{opts['threads']} "
        f"-c{opts['connections']} -d{opts['duration']:g}s per measurement, "
        f"{opts['rounds']} interleaved round(s), medians; {opts['workers']} API worker(s) "
        f"per server; page {result['page_bytes']} bytes.\n"
        f"Machine: {machine['cpus']} CPUs ({machine['cpu_model']}), Python {machine['python']}, "
        f"{machine['wrk']}; 1-min load average {la['min']:.2f} to {la['max']:.2f} during the run.\n"
        f"{'; '.join(result['notes'])}.\n\n" + str(result["table"])
    )


# --------------------------------------------------------------------------- CLI


def _terminate(signum: int, _frame: object) -> NoReturn:
    raise SystemExit(128 + signum)


def bench_command(
    duration: Annotated[int, typer.Option(help="Seconds per measurement (wrk -d).")] = 10,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds (medians reported).")] = 3,
    connections: Annotated[int, typer.Option(help="wrk connections.")] = 32,
    workers: Annotated[
        int, typer.Option(help="Sanic workers per server (API and bare app).")
    ] = os.cpu_count() or 1,
    threads: Annotated[int, typer.Option(help="wrk threads.")] = 2,
    warmup: Annotated[int, typer.Option(help="Seconds of warm-up per row (0: none).")] = 2,
    cold_runs: Annotated[int, typer.Option(help="Cold starts measured.")] = 5,
    only: Annotated[
        list[str] | None,
        typer.Option(help=f"Rows to measure (repeat or comma-separate): {', '.join(NAMES)}."),
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write every figure as JSON here.")
    ] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write the table as Markdown here.")] = None,
    strict: Annotated[
        bool, typer.Option(help="Exit 1 when a goal is missed or a request failed.")
    ] = False,
) -> None:
    """Benchmark our paths against their ceilings (static file, bare route, INSERT)."""
    try:
        names = tuple(select(only))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--only") from None
    opts = Options(
        duration=duration,
        rounds=rounds,
        connections=connections,
        workers=workers,
        threads=threads,
        warmup=warmup,
        cold_runs=cold_runs,
        only=names if only else (),
    )
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (e.g. a timeout killing the run) unwinds like Ctrl-C: the stack stops.
        signal.signal(signal.SIGTERM, _terminate)
    try:
        result = bench(opts, log=lambda line: print(line, flush=True))
    except RuntimeError as exc:  # a server or wrk failed: say which, without a traceback
        typer.echo(f"bench failed: {exc}", err=True)
        raise typer.Exit(1) from None
    print()
    print(report_markdown(result))
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2) + "\n")
    if markdown is not None:
        markdown.write_text(report_markdown(result))
    failed = any(s["met"] is False or s["errors"] for s in result["summary"]) or (
        result["cold_start"] is not None and not result["cold_start"]["met"]
    )
    if strict and failed:
        raise typer.Exit(1)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m load.bench ...`: the same options as `conectades bench`; the exit code."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(bench_command)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        # Standalone mode prints usage errors as the CLI does, and always exits.
        typer.main.get_command(app).main(args=args, prog_name="python -m load.bench")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
