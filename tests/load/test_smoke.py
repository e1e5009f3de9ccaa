"""A 10-second mixed scenario against the test stack through a real edge, with
writes, then reconciliation of every acknowledged donation; and a short run whose
every request fails, for the failed requests' path (console lines, series)."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import httpx
import pytest

from load import fixture as fx
from load import report
from load.cli import _warm
from load.k6 import K6Live
from load.run import CONSOLE, RunConfig, run
from load.stack import MemoryMonitor, StackTarget

# The smoke mix writes more than the full one so that 10 s produce enough
# pledges, retries, partner donations and confirmations to reconcile.
SMOKE_MIX = "public=50,partner=25,pledge=20,legacy=5"


def _series(run_dir: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((run_dir / "series.csv").read_text().splitlines()))


def test_mixed_smoke_has_no_failures_and_reconciles(
    load_target: StackTarget, load_fixture: fx.Fixture, tmp_path: Path
) -> None:
    cfg = RunConfig(
        scenario="mixed", vus=24, duration="10s", think=0.25, mix=SMOKE_MIX, retry=0.3,
        results=tmp_path,
    )  # fmt: skip
    seen: list[int] = []

    def progress(elapsed: float, total: float, live: K6Live, monitor: MemoryMonitor) -> None:
        seen.append(live.requests)

    result = run(cfg, load_target, load_fixture, progress=progress)
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
    memory = result.summary["memory"]
    # One sample when k6 starts and one after it stopped (every 15 s in between).
    assert memory["peak_pss"] > 0 and memory["samples"] >= 2, memory
    # Server CPU per request by part (load/cpu.py), and the load generator's own.
    cpu = result.summary["cpu"]
    assert cpu["per_request_ms"]["total"] > 0 and cpu["seconds"]["api"] > 0, cpu
    assert cpu["seconds"]["postgres"] > 0 and cpu["seconds"]["nginx"] > 0, cpu
    assert cpu["k6_per_request_ms"] > 0, cpu
    assert "server CPU per request" in (result.run_dir / "summary.md").read_text()
    for name in ("summary.json", "summary.md", "chart.png", "series.csv", "donations.jsonl"):
        assert (result.run_dir / name).stat().st_size > 0, name
    assert not (result.run_dir / CONSOLE).exists()  # removed without keep_raw
    # The live figures came from k6's REST API while it ran.
    assert 0 < max(seen) <= m["requests"], seen
    # Every request is in the series and under its name.
    rows = _series(result.run_dir)
    assert sum(int(r["requests"]) for r in rows) == m["requests"]
    assert int(rows[0]["second"]) == 0 and len(rows) >= 10
    assert sum(m["requests_by_name"].values()) == m["requests"]
    assert "(unlisted)" not in m["requests_by_name"]
    assert {"pledge", "partner_record_donation", "public_campaign"} <= set(m["requests_by_name"])
    # Each name's latency from its own submetric: the names with requests, no others.
    assert set(m["latency_by_name"]) == set(m["requests_by_name"])
    assert all(0 < v["p50"] <= v["p95"] <= v["p99"] for v in m["latency_by_name"].values())
    rows = {r[1]: r for r in report.table_rows(result.targets)}
    assert rows["failed requests"][4] == "pass"
    assert rows["donations not reconciled"][4] == "pass"


def test_failed_requests_are_counted_by_name_and_status(
    load_target: StackTarget, load_fixture: fx.Fixture, tmp_path: Path
) -> None:
    """Every request to a path the edge does not serve (404): each one is a failure
    by name and status, per second too, and the raw console lines stay on request."""
    cfg = RunConfig(
        scenario="public", vus=4, duration="2s", think=0.25, results=tmp_path, keep_raw=True,
        extra_env={"BASE_URL": load_target.base_url.rstrip("/") + "/no-such-prefix"},
    )  # fmt: skip
    result = run(cfg, load_target, load_fixture)
    m = result.summary["metrics"]
    assert m["requests"] > 0 and m["failed"] == m["requests"], m
    assert sum(m["failures"].values()) == m["failed"], m["failures"]
    assert all(key.endswith((" 404", " 429")) for key in m["failures"]), m["failures"]
    assert "public_campaign 404" in m["failures"] or "public_directory 404" in m["failures"]
    rows = _series(result.run_dir)
    assert sum(int(r["failed"]) for r in rows) == m["failed"]
    assert (result.run_dir / CONSOLE).stat().st_size > 0  # kept: keep_raw
    assert result.summary["reconciliation"] is None  # no writes, no events


def test_the_open_models_old_clients_log_in_as_rarely_as_the_closed_models(
    load_target: StackTarget, load_fixture: fx.Fixture, tmp_path: Path
) -> None:
    """The open model draws a role per iteration, so every VU is an old client now
    and then. They list with the tokens its setup logged in, and only the VUs that
    are old clients in the closed model log in themselves: when every VU logged in
    on its first draw, a 1,500/s run sent ~460 argon2 logins against the closed
    model's 20."""
    mix = "public=80,legacy=20"
    cfg = RunConfig(
        scenario="mixed", model="open", rate=60, duration="6s", mix=mix, results=tmp_path,
        extra_env={"LOGIN_SPREAD": "0"},  # a VU that logs in does it at its first draw
    )  # fmt: skip
    vus = cfg.resolved_vus()
    # lib.js: clientRoleOf; legacy is the last 20 % of the golden-ratio sequence.
    own = sum(1 for vu in range(1, vus + 1) if (vu * 0.6180339887498949) % 1 >= 0.8)
    result = run(cfg, load_target, load_fixture)
    m = result.summary["metrics"]
    assert result.k6_returncode == 0, (result.run_dir / "k6.log").read_text()
    assert m["failed"] == 0, m["failures"]
    by_name = m["requests_by_name"]
    assert by_name.get("legacy_list", 0) >= 30, by_name
    # At most five shared tokens (lib.js: legacyTokens) and one login per own client;
    # every VU drew legacy in these 6 s, so one login per VU would be ~`vus`.
    assert 1 <= by_name["legacy_login"] <= 5 + own < vus, (by_name, own, vus)


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


def test_a_seeds_purged_cache_is_warmed_before_a_run(
    load_target: StackTarget, load_fixture: fx.Fixture
) -> None:
    """`python -m load seed` purges the cache, then warms it (load/cli.py: `_warm`,
    which runs `conectades cache warm` on the stack's API): a run's first visitors
    find the public reads in Redis. (`load_fixture`: the seed that lists campaigns.)"""
    asyncio.run(fx.purge_cache(load_target.redis_url))
    assert load_target.api_url is not None
    with httpx.Client(base_url=load_target.api_url, timeout=30) as c:
        # The warm-up takes the newest 1,000 listed campaigns and their organizations.
        # This database is shared with the other tests of this process, which may have
        # listed more than 1,000 campaigns since the fixture's seed (a clean clone's
        # run once had the fixture's organizations past them); the newest campaign's
        # organization is always among them.
        newest = c.get("/api/public/campaigns").json()["data"][0]
        tenant, slug = newest["tenant"]["slug"], newest["slug"]
        # An organization's directory and a campaign's page (the cross-tenant
        # directory's entries live 2 s: a warm-up of a big test database takes longer).
        paths = (
            f"/api/public/{tenant}/campaigns?order=deadline",
            f"/o/{tenant}?ordem=progresso",
            f"/api/public/{tenant}/campaigns/{slug}",
        )
        assert c.get(paths[0]).headers["x-cache"] == "MISS"
        asyncio.run(fx.purge_cache(load_target.redis_url))
        _warm(load_target)
        for path in paths:
            assert c.get(path).headers["x-cache"] == "HIT", path
