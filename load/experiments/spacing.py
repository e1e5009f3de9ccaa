"""Experiment: what the same request costs the server when requests come back to
back and when they come spaced out (issue 20).

In the 1000-user mix the API's CPU per request that reaches it is several times
what `conectades bench` measures for the same kind of request at saturation. This
sends ONE path from one keep-alive connection, one request at a time, with a fixed
pause between the answer and the next request (`--gaps`, ms), and prints for each
pause the rate it made and the server's CPU per request (`/proc`, load/cpu.py), the
part of it the server spends anyway when idle (its CPU over `--idle` seconds with
no request, at the same length of time), and, as a control, what a fixed piece of
pure-Python work (JSON and SHA-256, in this process) costs in CPU after the same
pause: how much slower this machine runs the same code once it has slept.

Targets (`--target`):

  stack   the running `./start.sh` stack's API port (default paths: /health and an
          organization's public directory, a Redis hit); its PostgreSQL and Redis
          are counted too
  bare    the benchmarks' bare Sanic app (load/ceiling.py, `--workers`), started
          here under var/spacing (`--base`): a route that returns fixed bytes, no database

Usage (from the repository root):

    .venv/bin/python -m load.experiments.spacing --target bare
    .venv/bin/python -m load.experiments.spacing --target stack --gaps 0,1,5,30
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import orjson

from load.bench_stack import Sanics
from load.ceiling import campaign_body
from load.cpu import CpuMeter
from load.stack import local_stack

ROOT = Path(__file__).resolve().parents[2]
_WORK = {"a": list(range(200)), "b": {"x": "y" * 50, "z": [1.5] * 50}}
CONTROL_UNITS = 200  # control units timed per pause (fewer when fewer requests)


def control_unit() -> None:
    """A fixed piece of pure-Python work (about half a millisecond here)."""
    for _ in range(20):
        json.dumps(_WORK)
        hashlib.sha256(b"x" * 2000).digest()


@dataclass(frozen=True)
class Row:
    gap_ms: float
    rate: float  # requests per second it made
    server_ms: dict[str, float]  # core-ms per request, by part and "total"
    idle_ms: float  # of the total: the idle server's CPU over the same time
    control_us: float  # CPU of one control unit after the same pause

    def line(self) -> str:
        parts = ", ".join(f"{k} {v:.3f}" for k, v in self.server_ms.items() if k != "total")
        return (
            f"gap {self.gap_ms:5.1f} ms: {self.rate:6.0f} req/s, server "
            f"{self.server_ms.get('total', 0.0):.3f} core-ms/req ({parts}), of which idle "
            f"{self.idle_ms:.3f}; control unit {self.control_us:.0f} µs"
        )


def idle_rate(meter: CpuMeter, seconds: float) -> float:
    """The server's CPU seconds per second with no request."""
    meter.start()
    time.sleep(seconds)
    return meter.stop().total / seconds


def one_gap(
    send: Callable[[], None], meter: CpuMeter, gap: float, requests: int, idle: float
) -> Row:
    pause = gap / 1000
    meter.start()
    started = time.monotonic()
    for _ in range(requests):
        send()
        if pause:
            time.sleep(pause)
    took = time.monotonic() - started
    use = meter.stop()
    units = min(requests, CONTROL_UNITS)
    control = 0
    for _ in range(units):
        if pause:
            time.sleep(pause)
        before = time.process_time_ns()
        control_unit()
        control += time.process_time_ns() - before
    return Row(
        gap_ms=gap,
        rate=requests / took,
        server_ms=use.per_request_ms(requests),
        idle_ms=idle * took / requests * 1000,
        control_us=control / units / 1000,
    )


def sender(client: httpx.Client, path: str) -> Callable[[], None]:
    def send() -> None:
        r = client.get(path)
        if r.status_code != 200:
            raise SystemExit(f"{path}: {r.status_code}")

    return send


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m load.experiments.spacing",
        description="The server's CPU per request for one path, requests sent one at a "
        "time with a fixed pause between them, against a pure-Python control.",
    )
    p.add_argument("--target", choices=("stack", "bare"), default="bare")
    p.add_argument("--gaps", default="0,1,5,30", help="pauses between requests, ms")
    p.add_argument("--requests", type=int, default=400, help="requests per pause")
    p.add_argument("--paths", help="comma-separated paths (default: by target)")
    p.add_argument("--tenant", default="demo", help="stack: the organization's slug")
    p.add_argument("--idle", type=float, default=3.0, help="seconds of idle measured")
    p.add_argument("--workers", type=int, default=2, help="bare: Sanic workers")
    p.add_argument("--json", type=Path, help="write the rows here")
    p.add_argument(
        "--base", type=Path, default=ROOT / "var" / "spacing", help="bare: working folder"
    )
    args = p.parse_args(argv)
    gaps = [float(g) for g in args.gaps.split(",")]

    sanics = Sanics()
    try:
        if args.target == "bare":
            base = args.base
            shutil.rmtree(base, ignore_errors=True)
            base.mkdir(parents=True)
            (base / "body.json").write_bytes(orjson.dumps(campaign_body()))
            env = {**os.environ, "BENCH_BODY_FILE": str(base / "body.json")}
            url = sanics.start("load.ceiling:create_bare_app", args.workers, env, base / "api.log")
            meter = CpuMeter.for_ports(sanics.ports)
            paths = ["/api/v1/campaigns/x"]
        else:
            stack = local_stack()
            url = stack.api_url or stack.base_url
            meter = CpuMeter.for_ports(stack.ports())
            paths = ["/health", f"/api/public/{args.tenant}/campaigns"]
        if args.paths:
            paths = [s for s in args.paths.split(",") if s]
        results: dict[str, list[dict[str, object]]] = {}
        with httpx.Client(base_url=url, timeout=10) as client:
            for path in paths:
                send = sender(client, path)
                for _ in range(20):  # warm: the worker's memo, Redis, the connection
                    send()
                idle = idle_rate(meter, args.idle)
                print(f"{path} (idle server: {idle * 1000:.1f} core-ms per second)")
                rows = [one_gap(send, meter, g, args.requests, idle) for g in gaps]
                for row in rows:
                    print("  " + row.line())
                results[path] = [asdict(row) for row in rows]
    finally:
        sanics.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
