"""Experiment: the floor of the stack's cost per request and of its tails on this
machine (issue 20), with no application work at all.

The 1000-user mix is served by nginx (edge cache hits) and by Sanic behind it. This
starts, under var/floor/, our Nginx edge (edge/render.py, the production template,
per-IP limits off) in front of the bare Sanic app of the benchmarks
(load/ceiling.py: fixed bytes, no database, no Redis, `--workers 2`), and sends it
k6's constant-arrival-rate model from many client addresses, as the mix does:

  static  GET /static/page.json through the edge (a 2 KB file: an edge hit's floor)
  bare    GET /api/v1/campaigns/x through the edge to the bare route (the floor of
          any request that reaches Python)

at each rate of --rates, in interleaved rounds. For every run it prints the
requests served, dropped iterations, latency (p50/p95/p99/max) and the CPU per
request of nginx, of Sanic and of k6 itself (`/proc` times, load/cpu.py; k6's from
its rusage as our child), so the mix's figures can be set against what serving
nothing at the same rate costs.

Usage (from the repository root):

    .venv/bin/python -m load.experiments.floor
    .venv/bin/python -m load.experiments.floor --rates 250,1000,1500 --duration 20 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
from pathlib import Path
from typing import Any

import orjson

from edge.render import EdgeConfig
from infra.nginx import LocalNginx, free_port
from load.bench_stack import Sanics, fetch
from load.ceiling import campaign_body
from load.cpu import CpuMeter, children_seconds
from load.k6 import ip_range, k6_binary, raise_nofile
from load.k6_summary import metrics_from_k6

ROOT = Path(__file__).resolve().parents[2]
TARGETS = {"static": "/static/page.json", "bare": "/api/v1/campaigns/x"}

K6_SCRIPT = """
import http from 'k6/http';
export const options = {
  discardResponseBodies: true,
  summaryTrendStats: ['avg', 'med', 'p(95)', 'p(99)', 'max'],
  scenarios: { floor: {
    executor: 'constant-arrival-rate', rate: Number(__ENV.RATE), timeUnit: '1s',
    duration: __ENV.DURATION, preAllocatedVUs: Number(__ENV.VUS), maxVUs: Number(__ENV.VUS),
  } },
};
export default function () { http.get(__ENV.URL); }
export function handleSummary(data) { return { [__ENV.OUT]: JSON.stringify(data) }; }
"""


def run_one(
    url: str, rate: int, args: argparse.Namespace, base: Path, meter: CpuMeter
) -> dict[str, Any]:
    out = base / "summary.json"
    out.unlink(missing_ok=True)
    env = {
        **os.environ,
        "URL": url,
        "RATE": str(rate),
        "VUS": str(args.vus),
        "DURATION": f"{args.duration}s",
        "OUT": str(out),
    }
    cmd = [
        k6_binary(), "run", "--quiet", "--no-usage-report",
        "--local-ips", ip_range(args.clients), str(base / "floor.js"),
    ]  # fmt: skip
    k6_before = children_seconds()
    meter.start()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    use = meter.stop()
    k6_cpu = children_seconds() - k6_before
    summary = json.loads(out.read_text())
    m = metrics_from_k6(summary)
    requests, lat = m["requests"], m["latency_ms"]
    per = use.per_request_ms(requests)
    dropped = summary["metrics"].get("dropped_iterations", {}).get("values", {}).get("count", 0)
    return {
        "requests": requests,
        "rps": requests / args.duration,
        "dropped": int(dropped),
        "failed": m["failed"],
        "p50": lat["p50"],
        "p95": lat["p95"],
        "p99": lat["p99"],
        "max": lat["max"],
        "api": per.get("api", 0.0),
        "nginx": per.get("nginx", 0.0),
        "k6": k6_cpu * 1000 / requests if requests else 0.0,
    }


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m load.experiments.floor", description=__doc__)
    p.add_argument("--rates", default="250,1000,1500", help="requests/s, comma-separated")
    p.add_argument("--duration", type=int, default=20, help="seconds per run")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--vus", type=int, default=1000, help="k6 VUs (one connection each)")
    p.add_argument("--clients", type=int, default=1000, help="client addresses")
    p.add_argument("--workers", type=int, default=2, help="Sanic workers")
    p.add_argument("--json", type=Path, help="write every run's figures here")
    p.add_argument(
        "--base", type=Path, default=ROOT / "var" / "floor", help="working folder (emptied)"
    )
    args = p.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    raise_nofile()

    base = args.base
    shutil.rmtree(base, ignore_errors=True)
    (base / "static").mkdir(parents=True)
    body = orjson.dumps(campaign_body())
    (base / "body.json").write_bytes(body)
    (base / "static" / "page.json").write_bytes(body)
    (base / "floor.js").write_text(K6_SCRIPT)
    sanics = Sanics()
    edge: LocalNginx | None = None
    runs: list[dict[str, Any]] = []
    try:
        env = {**os.environ, "BENCH_BODY_FILE": str(base / "body.json")}
        api = sanics.start("load.ceiling:create_bare_app", args.workers, env, base / "api.log")
        edge = LocalNginx(
            EdgeConfig(
                listen_port=free_port(),
                upstreams=[api.removeprefix("http://")],
                prefix=base / "edge",
                static_dir=base / "static",
                per_ip_limits=False,
            )
        )
        edge.start()
        for path in TARGETS.values():
            status, _, _ = fetch(edge.url + path)
            if status != 200:
                raise SystemExit(f"{path}: {status}")
        meter = CpuMeter.for_ports([*sanics.ports, edge.config.listen_port])
        for n in range(args.rounds):
            for rate in rates:
                for target, path in TARGETS.items():
                    run = run_one(edge.url + path, rate, args, base, meter)
                    run |= {"round": n + 1, "rate": rate, "target": target}
                    runs.append(run)
                    print(
                        f"round {n + 1} {target:6s} rate {rate:5d}: {run['rps']:7.0f} req/s"
                        f" dropped {run['dropped']:5d} failed {run['failed']:4d}"
                        f"  p50 {run['p50']:6.2f} p95 {run['p95']:7.2f} p99 {run['p99']:7.2f}"
                        f" max {run['max']:7.1f} ms  core-ms/req: nginx {run['nginx']:.3f}"
                        f" sanic {run['api']:.3f} k6 {run['k6']:.3f}",
                        flush=True,
                    )
    finally:
        if edge is not None:
            edge.stop()
        sanics.stop()
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))
    print(f"\nmedians over {args.rounds} round(s), {args.vus} VUs, {args.duration} s each:")
    print("target rate   req/s dropped   p50    p95    p99   nginx  sanic    k6 (core-ms/req)")
    for rate in rates:
        for target in TARGETS:
            mine = [r for r in runs if r["rate"] == rate and r["target"] == target]

            def med(key: str, rows: list[dict[str, Any]] = mine) -> float:
                return float(statistics.median(r[key] for r in rows))

            print(
                f"{target:6s} {rate:5d} {med('rps'):7.0f} {med('dropped'):7.0f}"
                f" {med('p50'):6.2f} {med('p95'):6.2f} {med('p99'):6.2f}"
                f" {med('nginx'):6.3f} {med('api'):6.3f} {med('k6'):6.3f}"
            )


if __name__ == "__main__":
    main()
