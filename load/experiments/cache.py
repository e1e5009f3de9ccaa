"""Benchmark: a partner read served from Redis vs from PostgreSQL vs a bare route.

One run starts, on a throwaway PostgreSQL and Redis under var/bench/:

  cached   the real app (`api.server:create_app`) with REDIS_URL: the read is a HIT
  postgres the real app without REDIS_URL: the same read built from PostgreSQL
  bare     a tiny Sanic app (load/ceiling.py) answering fixed bytes of the same size

each as ONE Sanic process (--single-process), and loads
`GET /api/v1/campaigns/{id}` (same API key header on all three) with the same
client: wrk if it is on PATH, else a small asyncio HTTP/1.1 keep-alive client.
Rounds are interleaved (cached, postgres, bare, cached, ...) and medians are
reported, because the machine is shared and noisy; the figure that matters is the
ratio cached / bare (goal: at least 0.5).

Usage (from the repository root):

    .venv/bin/python -m load.experiments.cache
    .venv/bin/python -m load.experiments.cache --rounds 3 --duration 10 --connections 32
    .venv/bin/python -m load.experiments.cache --client python     # without wrk
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from db.crypto import throwaway_keys
from infra.servers import ServerError, clean_env, sanic_argv, spawn, stop_group, wait_http_ok
from load import wrk
from load.ceiling import campaign_body
from load.throwaway import services

ROOT = Path(__file__).resolve().parents[2]
PATH_TEMPLATE = "/api/v1/campaigns/{id}"
KINDS = ("cached", "postgres", "bare")

# --------------------------------------------------------------------------- services


async def _tenant_key(admin_dsn: str) -> str:
    import asyncpg

    from tenants import provisioning

    conn = await asyncpg.connect(admin_dsn)
    try:
        async with conn.transaction():
            bench_tenant = await provisioning.tenant_with_key(
                conn, slug="bench", name="ONG Benchmark", scopes=["read", "write"]
            )
            full = bench_tenant.key
    finally:
        await conn.close()
    return full


def start(kind: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    target = "load.ceiling:create_bare_app" if kind == "bare" else "api.server:create_app"
    proc = spawn(sanic_argv(target, port, workers=None), env, log)
    probe = "/api/v1/campaigns/x" if kind == "bare" else "/health/ready"
    try:
        wait_http_ok(proc, f"http://127.0.0.1:{port}{probe}", 60, log=log, name=kind)
    except ServerError as exc:
        stop_group(proc)
        raise SystemExit(str(exc)) from None
    return proc


stop = stop_group


def fetch(
    url: str, key: str, method: str = "GET", body: Any = None
) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310
        return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()


# --------------------------------------------------------------------------- clients

WRK_LUA = wrk.DONE_LUA


def run_wrk(
    url: str, key: str, lua: Path, args: argparse.Namespace, duration: int
) -> dict[str, Any]:
    return wrk.run(
        url,
        lua,
        duration=duration,
        threads=args.threads,
        connections=args.connections,
        headers={"Authorization": f"Bearer {key}"},
    )


async def _python_load(
    host: str, port: int, path: str, key: str, conns: int, duration: float
) -> dict[str, Any]:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n\r\n"
    ).encode()
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + duration

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
                errors += status != 200
        finally:
            writer.close()

    start_at = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(conns)))
    elapsed = time.monotonic() - start_at
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1e6

    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_us": pct(50),
        "p99_us": pct(99),
        "errors": errors,
    }


def load(
    url: str, path: str, key: str, lua: Path, args: argparse.Namespace, duration: int
) -> dict[str, Any]:
    if args.client == "wrk":
        return run_wrk(url + path, key, lua, args, duration)
    port = int(url.rsplit(":", 1)[1])
    return asyncio.run(_python_load("127.0.0.1", port, path, key, args.connections, duration))


# --------------------------------------------------------------------------- main


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    from cache import prepare_metrics_dir
    from infra.postgres import free_port

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10, help="seconds per load run")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per server")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument(
        "--client", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python"
    )
    args = ap.parse_args()

    base = ROOT / "var" / "bench" / "cache"
    lua = base.with_suffix(".lua")
    body_file = base.with_suffix(".body")
    procs: dict[str, subprocess.Popen[bytes]] = {}
    urls: dict[str, str] = {}
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
    with services(base) as urls_in:
        lua.write_text(WRK_LUA)
        key = asyncio.run(_tenant_key(urls_in["admin"]))
        common = clean_env()
        common |= {
            "CONECTADES_DATABASE_URL": urls_in["api"],
            "CONECTADES_JWT_SECRET": secrets.token_urlsafe(48),
            **throwaway_keys(),
            "PYTHONUNBUFFERED": "1",
            # One key at thousands of requests/s: the per-key limiter would answer
            # 429; this benchmark measures the cached read itself.
            "CONECTADES_RATE_LIMIT_RATE": "0",
        }
        envs = {
            "cached": common
            | {
                "CONECTADES_REDIS_URL": urls_in["redis"],
                "PROMETHEUS_MULTIPROC_DIR": str(prepare_metrics_dir(base / "metrics")),
            },
            "postgres": dict(common),
            "bare": common | {"BENCH_BODY_FILE": str(body_file)},
        }
        try:
            for kind in ("cached", "postgres"):
                port = free_port()
                urls[kind] = f"http://127.0.0.1:{port}"
                procs[kind] = start(kind, port, envs[kind], base / f"{kind}.log")
            status, _, raw = fetch(
                urls["cached"] + "/api/v1/campaigns", key, "POST", campaign_body()
            )
            assert status == 201, raw
            path = PATH_TEMPLATE.format(id=json.loads(raw)["id"])
            bodies = {}
            for kind in ("cached", "cached", "postgres"):
                status, headers, bodies[kind] = fetch(urls[kind] + path, key)
                assert status == 200, (kind, status)
            assert headers["x-cache"] == "BYPASS"
            _, headers, _ = fetch(urls["cached"] + path, key)
            assert headers["x-cache"] == "HIT", headers
            assert bodies["cached"] == bodies["postgres"]
            body_file.write_bytes(bodies["cached"])
            port = free_port()
            urls["bare"] = f"http://127.0.0.1:{port}"
            procs["bare"] = start("bare", port, envs["bare"], base / "bare.log")

            load_before = os.getloadavg()[0]
            for kind in KINDS:
                if args.warmup:
                    load(urls[kind], path, key, lua, args, args.warmup)
            for rnd in range(1, args.rounds + 1):
                for kind in KINDS:  # interleaved
                    res = load(urls[kind], path, key, lua, args, args.duration)
                    runs[kind].append(res)
                    print(
                        f"round {rnd} {kind:8s} {res['rps']:8.0f} req/s  "
                        f"p50 {res['p50_us'] / 1000:6.2f} ms  p99 {res['p99_us'] / 1000:6.2f} ms  "
                        f"errors {res['errors']}",
                        flush=True,
                    )
            load_after = os.getloadavg()[0]
            _, headers, _ = fetch(urls["cached"] + path, key)
            assert headers["x-cache"] == "HIT", "the cached server stopped hitting"
        finally:
            for proc in procs.values():
                stop(proc)
            lua.unlink(missing_ok=True)
            body_file.unlink(missing_ok=True)

    size = len(bodies["cached"])
    rps = {k: median([r["rps"] for r in runs[k]]) for k in KINDS}
    p50 = {k: median([r["p50_us"] / 1000 for r in runs[k]]) for k in KINDS}
    p99 = {k: median([r["p99_us"] / 1000 for r in runs[k]]) for k in KINDS}
    client = (
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s"
        if args.client == "wrk"
        else f"python asyncio client, {args.connections} connections, {args.duration}s"
    )
    print()
    print(
        f"GET {PATH_TEMPLATE} ({size} bytes), one Sanic process each, {client}, "
        f"{args.rounds} interleaved rounds; medians"
    )
    print(
        f"{'read':10s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'vs bare':>8s} {'errors':>7s}"
    )
    for kind in KINDS:
        errors = sum(r["errors"] for r in runs[kind])
        print(
            f"{kind:10s} {rps[kind]:9.0f} {p50[kind]:8.2f} {p99[kind]:8.2f} "
            f"{rps[kind] / rps['bare']:8.2f} {errors:7d}"
        )
    ratio = rps["cached"] / rps["bare"]
    print(f"cached / bare throughput: {ratio:.2f} (goal >= 0.5)")
    print(f"cached / postgres throughput: {rps['cached'] / rps['postgres']:.2f}")
    print(f"load average (1 min) before / after the load: {load_before:.2f} / {load_after:.2f}")
    print("JSON " + json.dumps({"benchmark": "cache", "body_bytes": size, "runs": runs}))


if __name__ == "__main__":
    main()
