"""load/experiments/spacing.py end to end against the bare Sanic app: one path sent
one request at a time, back to back and with a pause, with the server's CPU per
request, its idle share and the pure-Python control reported for each pause."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_spacing_reports_each_pause_with_the_servers_cpu_and_the_control(tmp_path: Path) -> None:
    out = tmp_path / "spacing.json"
    done = subprocess.run(
        [
            sys.executable, "-m", "load.experiments.spacing", "--target", "bare",
            "--gaps", "0,5", "--requests", "80", "--idle", "0.3", "--workers", "1",
            "--base", str(tmp_path / "run"), "--json", str(out),
        ],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    rows = json.loads(out.read_text())["/api/v1/campaigns/x"]
    assert [r["gap_ms"] for r in rows] == [0.0, 5.0]
    back_to_back, paused = rows
    # 80 requests with 5 ms between them cannot go faster than 200/s.
    assert paused["rate"] < 200 < back_to_back["rate"], rows
    for row in rows:
        assert set(row["server_ms"]) >= {"api", "total"}, row
        assert row["control_us"] > 0 and row["idle_ms"] >= 0, row
    # The bare app's processes were found and measured: 160 requests cost some CPU.
    assert sum(r["server_ms"]["api"] for r in rows) > 0, rows
    assert "gap   5.0 ms" in done.stdout, done.stdout
    assert not (tmp_path / "run").joinpath("api.log").read_text().count("Traceback")
