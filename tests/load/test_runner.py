"""The runner's pure parts: durations, client addresses, targets, k6's CSV."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from load import report
from load.run import RunConfig, ip_range, seconds


def test_durations_parse_as_k6_writes_them() -> None:
    assert seconds("30s") == 30
    assert seconds("1m30s") == 90
    assert seconds("2h") == 7200
    assert seconds("15") == 15
    with pytest.raises(ValueError):
        seconds("10 minutes")


def test_client_addresses_stay_on_loopback() -> None:
    assert ip_range(1) == "127.1.0.1"
    assert ip_range(250) == "127.1.0.1-127.1.0.250"
    assert ip_range(300) == "127.1.0.1-127.1.1.44"
    with pytest.raises(ValueError):
        ip_range(2**24)


def test_enough_addresses_for_the_edge_limit() -> None:
    # 1 s think: 4 users per address (≈ 4 r/s of the edge's 10 r/s).
    assert RunConfig("mixed").resolved_ips() == 250
    # Shorter think: fewer users per address.
    assert RunConfig("mixed", vus=24, think=0.25).resolved_ips() == 24
    assert RunConfig("public", model="open", rate=800).resolved_ips() == 160


def _metrics(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "requests": 60000, "rps": 950.0, "failed": 0, "success_ratio": 1.0, "timeouts": 0,
        "timeout_ratio": 0.0,
        "latency_ms": {"mean": 4.0, "p50": 3.0, "p90": 8.0, "p95": 12.0, "p99": 30.0, "max": 90},
        "cache_hit_ratio": 0.93,
    }  # fmt: skip
    base.update(over)
    return base


def test_targets_pass_and_fail_by_set() -> None:
    clean = {"problem_counts": {}}
    targets = report.evaluate(_metrics(), 700 * report.MB, clean)
    assert report.failing(targets, "all") == []
    slow = report.evaluate(
        _metrics(latency_ms={"mean": 20.0, "p95": 40.0, "p99": 60.0, "p50": 9.0, "max": 99}),
        700 * report.MB,
        clean,
    )
    assert {t.name for t in report.failing(slow, "ours")} == {"p95 latency", "mean latency"}
    assert report.failing(slow, "old") == []
    assert report.failing(slow, "none") == []
    lost = report.evaluate(_metrics(), None, {"problem_counts": {"lost": 2}})
    assert [t.name for t in report.failing(lost, "ours")] == ["donations not reconciled"]
    memory = next(t for t in lost if t.name.startswith("stack memory"))
    assert memory.passed is None  # not measured: n/a, neither pass nor fail


def test_csv_becomes_series_failures_and_events(tmp_path: Path) -> None:
    header = (
        "metric_name,timestamp,metric_value,check,error,error_code,expected_response,group,"
        "method,name,proto,scenario,service,status,subproto,tls_version,url,extra_tags,metadata"
    )
    rows = [header]
    for ts, ms, failed, status in ((100, 2.0, 0, 200), (100, 4.0, 1, 429), (102, 8.0, 0, 200)):
        for metric, value in (
            ("http_reqs", 1),
            ("http_req_duration", ms),
            ("http_req_failed", failed),
        ):
            rows.append(f"{metric},{ts},{value},,,,,,GET,public_campaign,,mixed,,{status},,,,,")
    rows.append('donation_events,101,1,,,,,,,,,mixed,,,,,,ev=ack,"key=r.p.1.1&id=abc"')
    csv_path = tmp_path / "k6.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    series = report.process_csv(csv_path, tmp_path)
    assert series.second == [0, 1, 2]
    assert series.requests == [2, 0, 1]
    assert series.failed == [1, 0, 0]
    assert series.p50[0] == 3.0 and series.p99[2] == 8.0
    assert series.failures == {"public_campaign 429": 1}
    events = [json.loads(x) for x in (tmp_path / "donations.jsonl").read_text().splitlines()]
    assert events == [{"ev": "ack", "key": "r.p.1.1", "id": "abc"}]
