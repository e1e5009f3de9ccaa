"""load/experiments/floor.py end to end: a bare Sanic route and a static file through the
edge, loaded by k6 at a fixed rate, with every part's CPU per request reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_floor_runs_both_targets_and_counts_each_parts_cpu(tmp_path: Path) -> None:
    out = tmp_path / "floor.json"
    subprocess.run(
        [
            sys.executable, "-m", "load.experiments.floor", "--rates", "300", "--duration", "2",
            "--vus", "20", "--clients", "2", "--workers", "1",
            "--base", str(tmp_path / "run"), "--json", str(out),
        ],
        cwd=ROOT, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    runs = {r["target"]: r for r in json.loads(out.read_text())}
    assert set(runs) == {"static", "bare"}
    for run in runs.values():
        assert run["requests"] >= 500, run  # 300/s for 2 s
        assert run["failed"] == 0 and run["dropped"] == 0, run
        assert run["nginx"] > 0 and run["k6"] > 0, run
    # Only the bare route reaches Sanic: its CPU per request is the larger by far.
    assert runs["bare"]["api"] > 2 * runs["static"]["api"], runs
