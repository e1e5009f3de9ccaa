"""The webhook benchmark's figures (load/bench_webhooks_report.py): the write ratios
per phase and the targets."""

from __future__ import annotations

import time
from typing import Any

import pytest

from load.bench_webhooks_report import summarize


def phase(mean: float, p95: float, **extra: Any) -> dict[str, Any]:
    return {"rate": 200.0, "mean_ms": mean, "p95_ms": p95, "errors": 0, "dropped": 0, **extra}


def delivered(mean: float, p95: float, lag_p95: float) -> dict[str, Any]:
    return phase(
        mean,
        p95,
        written=3000,
        delivered_distinct=3000,
        unsettled=0,
        lag_p50_ms=100.0,
        lag_p95_ms=lag_p95,
        lag_max_ms=lag_p95 + 50,
        lag_ack_p50_ms=90.0,
        lag_ack_p95_ms=lag_p95 - 10,
    )


def test_the_write_path_alone_is_measured_apart_from_the_delivery_work() -> None:
    results = {
        "off": [phase(4.0, 6.0), phase(5.0, 8.0), phase(6.0, 9.0)],
        "on": [delivered(16.0, 56.0, 270.0)] * 3,
        "queued": [phase(4.2, 6.5), phase(5.2, 8.4), phase(6.1, 9.5)],
    }
    s = summarize(results, 200.0)
    assert s["write_mean_ms"]["ratio"] == pytest.approx(16.0 / 5.0)
    assert s["write_with_worker_stopped"]["mean_ratio"] == pytest.approx(5.2 / 5.0)
    assert s["write_with_worker_stopped"]["p95_ratio"] == pytest.approx(8.4 / 8.0)
    assert s["targets_met"] == {
        "delivery_p95_le_1s": True,
        "write_slowdown_le_10pct": False,
        "complete": True,
    }


def test_without_the_queued_phase_there_is_no_write_path_figure() -> None:
    results = {"off": [phase(4.0, 6.0)], "on": [delivered(4.2, 6.3, 1500.0)]}
    s = summarize(results, 200.0)
    assert s["write_with_worker_stopped"] == {}
    assert s["targets_met"]["delivery_p95_le_1s"] is False
    assert s["targets_met"]["write_slowdown_le_10pct"] is True


def test_the_controls_compare_each_phase_with_its_own_rounds_off() -> None:
    def busy(row: dict[str, Any], cores: float, **extra: Any) -> dict[str, Any]:
        return {**row, "busy_cores": cores, **extra}

    results = {
        "off": [busy(phase(4.0, 6.0), 1.0), busy(phase(8.0, 12.0), 1.1)],
        "on": [busy(delivered(5.0, 8.0, 60.0), 1.3), busy(delivered(8.8, 13.0, 70.0), 1.4)],
        "again": [busy(phase(4.4, 6.0), 1.0), busy(phase(6.0, 9.0), 1.0)],
        "burn": [
            busy(phase(4.8, 7.0), 1.3, burned_cores=0.3),
            busy(phase(9.6, 14.0), 1.4, burned_cores=0.3),
        ],
    }
    c = summarize(results, 200.0)["controls"]
    # Round by round: on 1.25 and 1.10; again 1.10 and 0.75; burn 1.20 and 1.20.
    assert c["on"]["mean_ratio_median"] == pytest.approx((1.25 + 1.10) / 2)
    assert (c["again"]["mean_ratio_min"], c["again"]["mean_ratio_max"]) == pytest.approx(
        (0.75, 1.10)
    )
    assert c["burn"]["mean_ratio_median"] == pytest.approx(1.2)
    assert c["burn"]["burned_cores"] == pytest.approx(0.3)
    assert c["on"]["busy_cores"] == pytest.approx(1.35)
    assert c["on"]["off_busy_cores"] == pytest.approx(1.05)


def test_without_controls_there_are_none() -> None:
    results = {"off": [phase(4.0, 6.0)], "on": [delivered(4.2, 6.3, 100.0)]}
    assert summarize(results, 200.0)["controls"] == {}


def test_the_burners_spend_about_the_cpu_asked_for() -> None:
    from load.bench_webhooks import burners, cpu_seconds

    procs = burners(0.4)
    try:
        time.sleep(0.3)  # started
        before = sum(cpu_seconds(p.pid) for p in procs)
        time.sleep(2.0)
        spent = (sum(cpu_seconds(p.pid) for p in procs) - before) / 2.0
    finally:
        for p in procs:
            p.kill()
            p.wait()
    # A shared machine may give them less; never much more than asked.
    assert 0.15 <= spent <= 0.55, spent
