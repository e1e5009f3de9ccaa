"""Benchmark: a public campaign page from the edge microcache vs a static file.

One run starts, under var/bench-edge/: a throwaway PostgreSQL and Redis, the real
app (one Sanic process), and our Nginx edge rendered by edge/render.py in front of
it (per-IP limits raised so the single benchmark client is not throttled). It
creates a published campaign, then loads with the same client (wrk) and the same
Nginx:

  cached  GET /api/public/bench/campaigns/<slug>   (X-Cache-Status: HIT)
  static  GET /static/page.json                    (a file with the same bytes)

Rounds are interleaved (cached, static, cached, ...) and medians are reported; the
figure that matters is cached / static (goal: at least 0.85).

Usage (from the repository root):

    .venv/bin/python -m load.experiments.edge
    .venv/bin/python -m load.experiments.edge --rounds 3 --duration 5 --connections 32
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import urllib.request
from pathlib import Path
from typing import Any

from db.crypto import throwaway_keys
from edge import stats
from edge.render import EdgeConfig
from infra.nginx import LocalNginx, free_port
from load import wrk
from load.ceiling import campaign_body
from load.experiments.cache import WRK_LUA, _tenant_key, fetch, start, stop
from load.throwaway import services

ROOT = Path(__file__).resolve().parents[2]


def run_wrk(url: str, lua: Path, args: argparse.Namespace) -> dict[str, Any]:
    return wrk.run(
        url, lua, duration=args.duration, threads=args.threads, connections=args.connections
    )


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m load.experiments.edge")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument(
        "--no-ip-limits",
        action="store_true",
        help="render without limit_req/limit_conn on public routes (to measure their cost)",
    )
    args = p.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")

    base = ROOT / "var" / "bench-edge"
    with services(base) as urls:
        key = asyncio.run(_tenant_key(urls["admin"]))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CONECTADES_")},
            "CONECTADES_DATABASE_URL": urls["api"],
            "CONECTADES_REDIS_URL": urls["redis"],
            "CONECTADES_JWT_SECRET": "bench-secret-" + "x" * 40,
            **throwaway_keys(),
        }
        api_port = free_port()
        api = start("app", api_port, env, base / "api.log")
        edge = LocalNginx(
            EdgeConfig(
                listen_port=free_port(),
                upstreams=[f"127.0.0.1:{api_port}"],
                prefix=base / "edge",
                static_dir=base / "static",
                rate="1000000r/s",
                burst=1000000,
                conn_limit=60000,
                per_ip_limits=not args.no_ip_limits,
            )
        )
        try:
            body = campaign_body()
            status, _, _ = fetch(f"http://127.0.0.1:{api_port}/api/v1/campaigns", key, "POST", body)
            assert status == 201, status
            page = f"/api/public/bench/campaigns/{body['slug']}"
            with urllib.request.urlopen(f"http://127.0.0.1:{api_port}{page}") as r:
                content = r.read()
            (base / "static").mkdir(exist_ok=True)
            (base / "static" / "page.json").write_bytes(content)
            edge.start()
            for _ in range(3):  # warm the cache
                with urllib.request.urlopen(edge.url + page) as r:  # noqa: S310
                    warm = r.headers["X-Cache-Status"]
            lua = base / "report.lua"
            lua.write_text(WRK_LUA)
            targets = {"cached": edge.url + page, "static": edge.url + "/static/page.json"}
            results: dict[str, list[dict[str, Any]]] = {k: [] for k in targets}
            for n in range(args.rounds):
                for name, url in targets.items():
                    res = run_wrk(url, lua, args)
                    results[name].append(res)
                    print(
                        f"round {n + 1} {name:7s} {res['rps']:10.0f} req/s"
                        f"  p50 {res['p50_us'] / 1000:6.2f} ms  p99 {res['p99_us'] / 1000:6.2f} ms"
                        f"  errors {res['errors']}",
                        flush=True,
                    )
            edge_stats = stats.read_log(edge.access_log)
        finally:
            edge.stop()
            stop(api)

    med = {k: statistics.median(r["rps"] for r in v) for k, v in results.items()}
    p50 = {k: statistics.median(r["p50_us"] for r in v) / 1000 for k, v in results.items()}
    ratio = med["cached"] / med["static"]
    print()
    print(
        f"body {len(content)} bytes; wrk -t{args.threads} -c{args.connections} "
        f"-d{args.duration}s; {args.rounds} interleaved rounds; warm cache: {warm}"
    )
    print(f"{'target':8s} {'median req/s':>13s} {'median p50 ms':>14s}")
    for k in targets:
        print(f"{k:8s} {med[k]:13.0f} {p50[k]:14.2f}")
    print(f"ratio cached/static: {ratio:.3f} (goal >= 0.85) {'OK' if ratio >= 0.85 else 'BELOW'}")
    print(
        f"edge hit ratio over the run: {edge_stats.hit_ratio:.4f};"
        f" statuses {dict(edge_stats.statuses)}"
    )


if __name__ == "__main__":
    main()
