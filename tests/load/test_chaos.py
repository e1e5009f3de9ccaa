"""The short fault run (`conectades chaos run --short`) against a stack of its own
under supervisord with 2 API workers: Redis SIGKILLed, one API worker SIGKILLed,
PostgreSQL restarted, each under the mixed load with careful clients. Every
acknowledged donation is stored once with exact totals, and the stack is whole
again (workers, readiness, cache hits) within 10 s of each fault's end. The full
run (every fault, longer load) is `conectades chaos run` (docs/reliability.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.servers import clean_env
from load.chaos_faults import SHORT
from load.chaos_report import RECOVERY_TARGET_S
from tests.services import ROOT


def _env(var: Path) -> dict[str, str]:
    env = clean_env()
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env.update({"CONECTADES_VAR": str(var), "CONECTADES_WORKERS": "2"})
    return env


def _run(var: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, env=_env(var), capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def chaos_stack(workdir: Path) -> Iterator[Path]:
    var = workdir / "chaos-stack"
    up = _run(var, sys.executable, "-m", "infra.stack", "up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield var
    finally:
        _run(var, sys.executable, "-m", "infra.stack", "stop")


def test_short_fault_run_loses_no_donation_and_recovers(chaos_stack: Path, tmp_path: Path) -> None:
    conectades = str(Path(sys.executable).parent / "conectades")
    ran = _run(
        chaos_stack, conectades, "chaos", "run", "--short", "--seed", "--json",
        "--vus", "24", "--think", "0.25", "--warmup", "2", "--after", "4",
        "--results", str(tmp_path),
    )  # fmt: skip
    assert ran.stdout.strip(), ran.stderr
    report = json.loads(ran.stdout)
    results: list[dict[str, Any]] = report["results"]
    assert [r["fault"] for r in results] == list(SHORT), ran.stderr
    for r in results:
        where = f"{r['fault']}: {json.dumps(r)}"
        assert r["error"] is None, where
        assert r["acknowledged"] > 20 and r["stored"] >= r["acknowledged"], where
        assert r["reconciliation_problems"] == {}, where  # none lost, doubled or changed
        assert r["unreplayable"] == 0, where
        assert r["recovery_s"] is not None and r["recovery_s"] <= RECOVERY_TARGET_S, where
    assert list(tmp_path.glob("*-chaos/chaos.md")), "no report written"
