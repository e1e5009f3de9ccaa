"""wrk, the HTTP client of every benchmark: its Lua `done` hook prints one JSON line
(`WRKJSON {...}`) that `run` parses, so no benchmark reads wrk's human output."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DONE_LUA = r"""
done = function(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.status + summary.errors.timeout))
end
"""


def parse(output: str) -> dict[str, Any]:
    """The WRKJSON figures, plus `rps`."""
    line = next((ln for ln in output.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"no WRKJSON line in wrk's output:\n{output[-2000:]}")
    data: dict[str, Any] = json.loads(line.removeprefix("WRKJSON "))
    seconds = data["duration_us"] / 1e6
    data["rps"] = data["requests"] / seconds if seconds > 0 else 0.0
    return data


def run(
    url: str,
    script: Path,
    *,
    duration: int,
    threads: int,
    connections: int,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One wrk run (`script` must end with DONE_LUA); its figures."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, duration)}s"]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    cmd += ["-s", str(script), url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse(done.stdout + done.stderr)
