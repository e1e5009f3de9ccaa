"""The webhook benchmark's figures (load/bench_webhooks_report.py): the write ratios
per phase and the targets."""

from __future__ import annotations

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
