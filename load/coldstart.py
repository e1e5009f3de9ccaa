"""Cold start: seconds from spawning one API worker to its first 200 on /health/ready.

The worker is `python -m sanic api.server:create_app --factory --single-process`:
one process, as a serverless-style or one-worker-per-pod deployment runs it.
(`--workers 1` adds Sanic's manager, which spawns the worker as a second Python
interpreter that imports everything again; `--mode workers` measures that too.)
The clock starts just before the spawn and stops at the first 200, polled every
10 ms over keep-alive-free HTTP, so the figure includes interpreter start-up,
imports, app construction, opening the pool and Redis client, and the first
PostgreSQL round trip.

Usage (from the repository root; starts a throwaway PostgreSQL and Redis under
var/coldstart/ unless CONECTADES_DATABASE_URL is set):

    .venv/bin/python -m load.coldstart
    .venv/bin/python -m load.coldstart --runs 10 --mode workers
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

from db.crypto import throwaway_keys
from infra.servers import clean_env, sanic_argv, spawn, stop_group, wait_http_ok
from load.throwaway import services as bench_services

ROOT = Path(__file__).resolve().parent.parent
# --single-process (no worker manager), or one worker under Sanic's manager.
MODES: dict[str, int | None] = {"single": None, "workers": 1}


def cold_start_once(
    env: dict[str, str],
    *,
    mode: str = "single",
    timeout: float = 30,
    log: Path | None = None,
    root: Path = ROOT,
) -> float:
    """One spawn → first 200 on /health/ready, in seconds."""
    from infra.postgres import free_port

    port = free_port()
    argv = sanic_argv("api.server:create_app", port, workers=MODES[mode])
    start = time.perf_counter()
    proc = spawn(argv, env, log, cwd=root)
    try:
        url = f"http://127.0.0.1:{port}/health/ready"
        wait_http_ok(proc, url, timeout, log=log, name="API worker", interval=0.01)
        return time.perf_counter() - start
    finally:
        stop_group(proc)


def measure_cold_start(
    env: dict[str, str],
    runs: int = 5,
    *,
    mode: str = "single",
    log: Path | None = None,
    root: Path = ROOT,
) -> list[float]:
    """`runs` cold starts of one API worker with `env` (CONECTADES_* settings); seconds each.

    `root` is the source tree to run (another checkout, to compare two versions)."""
    return [cold_start_once(env, mode=mode, log=log, root=root) for _ in range(runs)]


@contextlib.contextmanager
def services(base: Path) -> Iterator[dict[str, str]]:
    """A throwaway PostgreSQL (migrated, with the API role) and Redis: the API's env."""

    with bench_services(base) as urls:
        yield {
            "CONECTADES_DATABASE_URL": urls["api"],
            "CONECTADES_REDIS_URL": urls["redis"],
            "CONECTADES_JWT_SECRET": secrets.token_urlsafe(32),
            **throwaway_keys(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mode", choices=sorted(MODES), default="single")
    args = parser.parse_args()
    base_env = clean_env()
    base = ROOT / "var" / "coldstart"
    with contextlib.ExitStack() as stack:
        if os.environ.get("CONECTADES_DATABASE_URL"):
            env = dict(os.environ)
        else:
            env = base_env | stack.enter_context(services(base))
        log = base / "api.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        times = measure_cold_start(env, args.runs, mode=args.mode, log=log)
    for i, t in enumerate(times, 1):
        print(f"run {i}: {t:.3f} s")
    print(f"median: {statistics.median(times):.3f} s ({args.mode}, {args.runs} runs)")


if __name__ == "__main__":
    main()
