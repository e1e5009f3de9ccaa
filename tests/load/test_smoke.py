"""A 10-second mixed scenario against the test stack through a real edge, with
writes, then reconciliation of every acknowledged donation."""

from __future__ import annotations

from pathlib import Path

import pytest

from load import fixture as fx
from load import report
from load.run import RunConfig, run
from load.stack import StackTarget

# The smoke mix writes more than the full one so that 10 s produce enough
# pledges, retries, partner donations and confirmations to reconcile.
SMOKE_MIX = "public=50,partner=25,pledge=20,legacy=5"


def test_mixed_smoke_has_no_failures_and_reconciles(
    load_target: StackTarget, load_fixture: fx.Fixture, tmp_path: Path
) -> None:
    cfg = RunConfig(
        scenario="mixed", vus=24, duration="10s", think=0.25, mix=SMOKE_MIX, retry=0.3,
        results=tmp_path,
    )  # fmt: skip
    result = run(cfg, load_target, load_fixture)
    m = result.summary["metrics"]
    by_status = (result.run_dir / "k6.log").read_text()
    assert result.k6_returncode == 0, by_status
    assert m["requests"] > 300, m
    assert m["failed"] == 0, m["failures"]
    assert m["timeouts"] == 0
    assert m["replay_mismatches"] == 0
    assert m["cache_gets"] > 0 and m["edge_gets"] > 0
    rec = result.summary["reconciliation"]
    assert rec is not None
    assert rec["ok"], rec["problems"]
    assert rec["acknowledged"] > 10 and rec["stored"] >= rec["acknowledged"]
    assert rec["items_checked"] > 0
    assert result.summary["memory"]["peak_pss"] > 0
    for name in ("summary.json", "summary.md", "chart.png", "series.csv", "donations.jsonl"):
        assert (result.run_dir / name).stat().st_size > 0, name
    assert not (result.run_dir / "k6.csv").exists()  # removed without keep_raw
    rows = {r[1]: r for r in report.table_rows(result.targets)}
    assert rows["failed requests"][4] == "pass"
    assert rows["donations not reconciled"][4] == "pass"


@pytest.mark.slow
def test_mixed_full_size(
    load_target: StackTarget, load_fixture: fx.Fixture, tmp_path: Path
) -> None:
    """The old system's scenario at full size against the test stack: 1000 users,
    1 s think time, 60 s; our targets must hold (run on a quiet machine)."""
    cfg = RunConfig(scenario="mixed", vus=1000, duration="60s", results=tmp_path)
    result = run(cfg, load_target, load_fixture)
    failed = report.failing(result.targets, "ours")
    assert not failed, report.table_rows(result.targets)
