"""The runner's pure parts: durations, client addresses, targets, series buckets,
and reading k6's summary submetrics and console lines."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import psutil
import pytest

from load import k6_summary, report
from load.k6 import ip_range, k6_memory_limit, seconds
from load.reconcile import read_events
from load.run import SERIES_MAX_BUCKETS, RunConfig, k6_env, series_plan
from load.stack import MemoryMonitor, StackTarget
from tests.services import ROOT


def test_durations_parse_as_k6_writes_them() -> None:
    assert seconds("30s") == 30
    assert seconds("1m30s") == 90
    assert seconds("2h") == 7200
    assert seconds("15") == 15
    with pytest.raises(ValueError):
        seconds("10 minutes")


def test_k6_heap_limit_is_a_quarter_of_memory_up_to_3_gib() -> None:
    assert k6_memory_limit(24575112 * 1024) == "3072MiB"
    assert k6_memory_limit(4000000 * 1024) == "976MiB"
    assert k6_memory_limit(500000 * 1024) == "256MiB"
    total = psutil.virtual_memory().total
    assert k6_memory_limit() == k6_memory_limit(total)


def test_k6_collects_garbage_only_at_its_heap_limit_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = StackTarget("http://127.0.0.1:8080", "postgresql://x@127.0.0.1/x")
    monkeypatch.delenv("GOGC", raising=False)
    monkeypatch.delenv("GOMEMLIMIT", raising=False)
    env = k6_env(RunConfig("mixed"), target, "run", tmp_path)
    assert env["GOGC"] == "off" and env["GOMEMLIMIT"] == k6_memory_limit()
    monkeypatch.setenv("GOGC", "200")
    monkeypatch.setenv("GOMEMLIMIT", "1GiB")
    env = k6_env(RunConfig("mixed"), target, "run", tmp_path)
    assert (env["GOGC"], env["GOMEMLIMIT"]) == ("200", "1GiB")


def test_public_browsers_read_json_or_the_donor_pages(tmp_path: Path) -> None:
    target = StackTarget("http://127.0.0.1:8080", "postgresql://x@127.0.0.1/x")
    assert k6_env(RunConfig("mixed"), target, "run", tmp_path)["PAGES"] == "json"
    assert k6_env(RunConfig("mixed", pages="html"), target, "run", tmp_path)["PAGES"] == "html"
    with pytest.raises(ValueError):
        k6_env(RunConfig("mixed", pages="xml"), target, "run", tmp_path)
    # The scenarios name the pages' requests (they are reported by name).
    lib = (ROOT / "load" / "scenarios" / "lib.js").read_text()
    for name in ("page_directory", "page_organization", "page_campaign"):
        assert f"'{name}'" in lib.split("REQUEST_NAMES = [", 1)[1].split("];", 1)[0]


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
    assert RunConfig("public", model="open", rate=800).resolved_ips() == 320


def test_open_model_has_a_vu_on_every_address() -> None:
    # k6 hands addresses to VUs in order: a VU per address, so all of them send.
    config = RunConfig("mixed", model="open", rate=1500)
    assert config.resolved_ips() == 600 and config.resolved_vus() == 600
    assert RunConfig("mixed", model="open", rate=1500, ips=100).resolved_vus() == 150
    assert RunConfig("mixed", model="open", rate=1500, vus=40).resolved_vus() == 40


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


def test_series_buckets_cover_the_run_and_stay_few() -> None:
    # 1 s buckets over the duration, the ramp and the graceful stop.
    assert series_plan(RunConfig("mixed", duration="30s")) == (1, 36)
    assert series_plan(RunConfig("mixed", duration="1m", ramp="10s")) == (1, 76)
    # Long runs: wider buckets, never more than SERIES_MAX_BUCKETS.
    step, buckets = series_plan(RunConfig("mixed", duration="1h"))
    assert (step, buckets) == (31, 117)
    assert buckets <= SERIES_MAX_BUCKETS and step * buckets >= 3600
    # Open model: no ramp.
    assert series_plan(RunConfig("public", model="open", duration="20s", ramp="9s")) == (1, 26)


def _trend(count: int, med: float = 0.0, p95: float = 0.0, p99: float = 0.0) -> dict[str, object]:
    # The shape of k6 v1.1's handleSummary data (summaryTrendStats with count).
    values = {"avg": med, "min": med, "med": med, "max": p99, "p(90)": p95, "p(95)": p95}
    return {"type": "trend", "contains": "time", "values": {**values, "p(99)": p99, "count": count}}


def _rate(passes: int, fails: int) -> dict[str, object]:
    n = passes + fails
    return {
        "type": "rate",
        "values": {"rate": passes / n if n else 0, "passes": passes, "fails": fails},
    }


def _counter(count: int) -> dict[str, object]:
    return {"type": "counter", "values": {"count": count, "rate": count / 10}}


def test_summary_submetrics_become_the_series() -> None:
    summary = {
        "metrics": {
            "http_reqs": _counter(5),
            "http_req_duration": _trend(5, 3.0, 7.0, 8.0),
            "http_req_duration{expected_response:true}": _trend(4, 2.0, 4.0, 4.0),
            "http_req_duration{sec:0}": _trend(2, 3.0, 3.9, 3.98),
            "http_req_duration{sec:1}": _trend(0),  # declared, no request: k6 says 0
            "http_req_duration{sec:2}": _trend(3, 8.0, 9.0, 9.5),
            "http_req_duration{sec:3}": _trend(0),
            "http_req_failed{sec:0}": _rate(1, 1),
            "http_req_failed{sec:2}": _rate(0, 3),
            "http_req_failed{sec:3}": _rate(0, 0),
        }
    }
    series = k6_summary.series_from_summary(summary)
    assert series.second == [0, 1, 2]  # up to the last bucket with a request
    assert series.requests == [2, 0, 3]
    assert series.failed == [1, 0, 0]
    assert series.p50[0] == 3.0 and series.p95[2] == 9.0 and series.p99[2] == 9.5
    assert math.isnan(series.p50[1])  # an empty bucket has no latency, not 0 ms
    assert k6_summary.series_from_summary({"metrics": {"http_reqs": _counter(0)}}).second == []


def test_wide_buckets_keep_their_start_second(tmp_path: Path) -> None:
    summary = {
        "metrics": {
            "http_req_duration{sec:0}": _trend(60, 1.0, 2.0, 3.0),
            "http_req_duration{sec:5}": _trend(40, 1.5, 2.5, 3.5),
            "http_req_failed{sec:5}": _rate(2, 38),
        }
    }
    series = k6_summary.series_from_summary(summary, step=5)
    assert (series.second, series.requests, series.failed) == ([0, 5], [60, 40], [0, 2])
    k6_summary.write_series(series, tmp_path / "series.csv")
    rows = (tmp_path / "series.csv").read_text().splitlines()
    assert rows == [
        "second,requests,failed,p50_ms,p95_ms,p99_ms",
        "0,60,0,1.0,2.0,3.0",
        "5,40,2,1.5,2.5,3.5",
    ]


def test_requests_by_name_from_submetrics() -> None:
    summary = {
        "metrics": {
            "http_reqs": _counter(10),
            "http_reqs{name:pledge}": _counter(6),
            "http_reqs{name:legacy_login}": _counter(0),  # declared, never sent: left out
            "http_reqs{name:public_campaign}": _counter(3),
            "http_reqs{sec:0}": _counter(10),  # another tag: not a name
        }
    }
    assert k6_summary.requests_by_name(summary) == {
        "pledge": 6,
        "public_campaign": 3,
        "(unlisted)": 1,
    }


def test_latency_by_name_from_submetrics_and_in_the_markdown() -> None:
    summary = {
        "metrics": {
            "http_req_duration": _trend(9, med=2.0, p95=40.0, p99=90.0),
            "http_req_duration{name:pledge}": _trend(6, med=12.5, p95=40.0, p99=90.0),
            "http_req_duration{name:legacy_login}": _trend(0),  # never sent: left out
            "http_req_duration{name:public_campaign}": _trend(3, med=1.0, p95=2.0, p99=3.0),
            "http_req_duration{sec:0}": _trend(9, med=99.0),  # another tag: not a name
        }
    }
    by_name = k6_summary.latency_by_name(summary)
    assert by_name == {
        "pledge": {"mean": 12.5, "p50": 12.5, "p95": 40.0, "p99": 90.0},
        "public_campaign": {"mean": 1.0, "p50": 1.0, "p95": 2.0, "p99": 3.0},
    }
    # Most requests first; a name without latency figures keeps empty cells.
    table = report._by_name_table({"public_campaign": 3, "pledge": 6, "(unlisted)": 1}, by_name)
    assert table[2:] == [
        "| pledge | 6 | 12.5 | 12.5 | 40.0 | 90.0 |",
        "| public_campaign | 3 | 1.0 | 1.0 | 2.0 | 3.0 |",
        "| (unlisted) | 1 |  |  |  |  |",
    ]


def test_dropped_iterations_are_counted_and_zero_when_k6_reports_none() -> None:
    # k6 writes the metric only once an arrival found no free VU.
    assert k6_summary.metrics_from_k6({"metrics": {}})["dropped_iterations"] == 0
    summary = {"metrics": {"dropped_iterations": {"type": "counter", "values": {"count": 7}}}}
    assert k6_summary.metrics_from_k6(summary)["dropped_iterations"] == 7


def _console_line(message: object) -> str:
    # k6 --log-format json: one JSON object a line, the console.log text in "msg".
    msg = message if isinstance(message, str) else json.dumps(message)
    return json.dumps({"level": "info", "msg": msg, "time": "2026-11-28T11:45:35Z"})


def test_console_lines_become_failures_and_events(tmp_path: Path) -> None:
    sent = {"ev": "sent", "key": "r.p.1.1", "tenant": "t-a"}
    ack = {"ev": "ack", "key": "r.p.1.1", "id": "abc", "tenant": "t-a", "item": "i", "qty": "2",
           "state": "pending"}  # fmt: skip
    lines = [
        _console_line({"donation": sent}),
        _console_line({"failed": {"name": "public_campaign", "status": 429}}),
        _console_line({"donation": ack}),
        "",
        _console_line({"failed": {"name": "pledge", "status": 0}}),
        _console_line({"failed": {"name": "public_campaign", "status": 429}}),
        _console_line("a script's own message"),
    ]
    console = tmp_path / "k6-console.jsonl"
    console.write_text("\n".join(lines) + "\n")
    read = k6_summary.read_console(console, tmp_path / "donations.jsonl")
    assert read.failures == {"public_campaign 429": 2, "pledge 0": 1}
    assert read.events == 2
    assert read.other == ["a script's own message"]
    assert read_events(tmp_path / "donations.jsonl") == [sent, ack]


def test_no_console_lines_no_events(tmp_path: Path) -> None:
    read = k6_summary.read_console(tmp_path / "missing.jsonl", tmp_path / "donations.jsonl")
    assert (read.failures, read.events) == ({}, 0)
    assert read_events(tmp_path / "donations.jsonl") == []


def test_memory_sampler_runs_at_idle_priority_and_samples_again_on_exit() -> None:
    monitor = MemoryMonitor([], interval=60)
    monitor.roots = [psutil.Process()]  # this process: a tree with page tables to walk
    with monitor:
        deadline = time.monotonic() + 10
        while monitor.samples < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert monitor._thread.native_id is not None
        assert os.sched_getscheduler(monitor._thread.native_id) == os.SCHED_IDLE
        assert monitor.samples == 1  # the next one is 60 s away
    assert monitor.samples == 2 and monitor.peak.pss > 0


def test_a_runs_edge_log_lines_become_the_upstream_line(tmp_path: Path) -> None:
    from load.run import edge_log_size, edge_log_stats

    log = tmp_path / "access.log"
    log.write_text('{"status":"200","upstream_cache_status":"MISS"}\n')
    offset = edge_log_size(log)
    with log.open("a") as f:
        for status in ("HIT", "HIT", "STALE", "EXPIRED", ""):
            f.write(f'{{"status":"200","upstream_cache_status":"{status}"}}\n')
    found = edge_log_stats(log, offset)
    assert found is not None
    assert (found["cacheable"], found["asked_upstream"]) == (4, 2)
    assert edge_log_stats(tmp_path / "none.log", edge_log_size(tmp_path / "none.log")) is None
    assert edge_log_stats(None, None) is None
    shown = report.cache_lines(
        {**_metrics(), "edge_hit_ratio": None, "api_cache_hit_ratio": None, "edge_log": found}
        | {"cache_gets": 9, "edge_gets": 8, "api_gets": 3}
    )
    assert shown[-1].startswith("- the edge asked the API") and shown[-1].endswith("50.0 % of 4")
