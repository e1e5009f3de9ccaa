"""The benchmark harness (load/bench.py and its parts): its arithmetic, and end-to-end runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from load import bench, bench_rows, bench_stack
from load.bench_report import ColdStart, Sample, median, ratio, render_table, summarize
from load.bench_rows import select

ROOT = Path(__file__).resolve().parents[2]


def sample(rps: float, p50: float = 1.0, p99: float = 2.0, errors: int = 0) -> Sample:
    return Sample(rps=rps, p50_ms=p50, p99_ms=p99, errors=errors, requests=int(rps))


# --------------------------------------------------------------------------- units


def test_median_of_odd_and_even_counts() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5


def test_median_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        median([])


def test_ratio_is_value_over_ceiling_and_none_without_a_ceiling() -> None:
    assert ratio(850.0, 1000.0) == pytest.approx(0.85)
    assert ratio(1.0, 0.0) is None


def test_select_keeps_table_order_and_accepts_commas() -> None:
    assert select(["public-page,static-file", "donations-one"]) == [
        "static-file",
        "public-page",
        "donations-one",
    ]
    assert select(None) == list(bench_rows.NAMES)


def test_select_refuses_unknown_rows() -> None:
    with pytest.raises(ValueError, match="no-such-row"):
        select(["static-file,no-such-row"])


def test_summarize_takes_medians_and_divides_by_the_ceilings_median() -> None:
    summaries = summarize(
        {
            "static-file": [sample(1000), sample(3000), sample(2000)],
            "public-page": [sample(1500, p50=3.0), sample(1800, p50=1.0), sample(1700, p50=2.0)],
            "donations-spread": [sample(400, errors=1), sample(500, errors=2)],
            "donations-one": [sample(300), sample(340)],
        }
    )
    by_name = {s.row.name: s for s in summaries}
    assert [s.row.name for s in summaries] == [
        "static-file",
        "public-page",
        "donations-spread",
        "donations-one",
    ]
    assert by_name["static-file"].rps == 2000
    assert by_name["static-file"].ratio is None
    assert (by_name["static-file"].rps_min, by_name["static-file"].rps_max) == (1000, 3000)
    assert by_name["public-page"].rps == 1700
    assert by_name["public-page"].p50_ms == 2.0
    assert by_name["public-page"].ratio == pytest.approx(0.85)
    assert by_name["public-page"].met is True
    assert by_name["donations-spread"].errors == 3
    assert by_name["donations-spread"].ratio is None  # pg-insert was not measured
    assert by_name["donations-spread"].met is None  # and it has no goal
    assert by_name["donations-one"].ratio == pytest.approx(320 / 450)
    assert by_name["donations-one"].met is False  # 0.71 < 0.8


def test_render_table_shows_every_row_its_ratio_and_verdict() -> None:
    summaries = summarize(
        {
            "bare-route": [sample(6000)],
            "partner-redis": [sample(2400, p50=8.25, p99=13.5, errors=4)],
            "partner-pg": [sample(900)],
        }
    )
    table = render_table(summaries, ColdStart(runs=[1.0, 1.4, 1.2]))
    lines = table.splitlines()
    assert lines[0].startswith("| row |")
    redis = next(line for line in lines if line.startswith("| partner-redis "))
    assert (
        "| 2,400 | 2,400-2,400 | 8.25 | 13.50 | 4 | 0.40 x bare-route | ≥ 0.5 | **NO** |" in redis
    )
    pg = next(line for line in lines if line.startswith("| partner-pg "))
    assert "0.15 x bare-route" in pg
    cold = next(line for line in lines if line.startswith("| cold-start "))
    assert "1.20 s" in cold and "**yes**" in cold
    assert ColdStart(runs=[1.6, 1.7, 1.4]).met is False


def test_parse_wrk_reads_the_done_line() -> None:
    out = (
        "Running 1s test @ http://127.0.0.1:1/\n"
        'WRKJSON {"requests":5000,"duration_us":2000000,"p50_us":1500,"p99_us":9000,"errors":3}\n'
    )
    s = bench_stack.parse_wrk(out)
    assert (s.rps, s.p50_ms, s.p99_ms, s.errors, s.requests) == (2500.0, 1.5, 9.0, 3, 5000)
    with pytest.raises(RuntimeError):
        bench_stack.parse_wrk("no summary here")


def test_post_script_holds_every_target_and_the_headers() -> None:
    script = bench_stack.post_script(
        [("/a/donations", "item-1"), ("/b/donations", "item-2")], {"Authorization": 'x"y'}
    )
    assert '{"/a/donations", "/b/donations"}' in script
    assert '{"item-1", "item-2"}' in script
    assert '["Authorization"] = "x\\"y"' in script
    assert "WRKJSON" in script


def test_unknown_row_is_a_usage_error_before_anything_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert bench.main(["--only", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


# --------------------------------------------------------------------------- end to end


def run_harness(tmp_path: Path, *args: str, timeout: float) -> dict[str, Any]:
    out = tmp_path / "bench.json"
    md = tmp_path / "bench.md"
    run = subprocess.run(
        [sys.executable, "-m", "load.bench", *args, "--json", str(out), "--markdown", str(md)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text())
    assert result["table"] in md.read_text()
    assert "per_ip_limits=False" in run.stdout and "RATE_LIMIT_RATE=0" in run.stdout
    return result


def check_sane(result: dict[str, Any], names: list[str], rounds: int) -> None:
    summary = {s["name"]: s for s in result["summary"]}
    assert list(summary) == names
    for name, s in summary.items():
        runs = result["rounds"][name]
        assert len(runs) == rounds
        assert s["rps"] > 0 and all(r["rps"] > 0 and r["requests"] > 0 for r in runs)
        assert 0 < s["p50_ms"] <= s["p99_ms"]
        assert s["errors"] == 0, (name, runs)
        # Some server did the work: nginx for static files and cache hits, the API too
        # for the rest (load/cpu.py); the table shows the figure.
        assert s["cpu_ms_per_request"]["total"] > 0, (name, s)
        assert all(r["cpu_ms"]["total"] > 0 for r in runs)
        assert f"| {name} |" in result["table"]
        ceiling = s["ceiling"]
        if ceiling in summary:
            assert s["ratio"] == pytest.approx(s["rps"] / summary[ceiling]["rps"])
            assert f"{s['ratio']:.2f} x {ceiling}" in result["table"]
        else:
            assert s["ratio"] is None
        if s["goal"] is not None and s["ratio"] is not None:
            assert s["met"] == (s["ratio"] >= s["goal"])


def test_tiny_run_end_to_end(tmp_path: Path) -> None:
    names = ["static-file", "public-page", "donations-spread", "donations-one"]
    result = run_harness(
        tmp_path,
        "--duration", "1", "--rounds", "1", "--warmup", "0", "--workers", "1",
        "--only", ",".join(names),
        timeout=120,
    )  # fmt: skip
    check_sane(result, names, rounds=1)
    # The public page really came from the edge cache during the run.
    assert result["rounds"]["public-page"][0]["extra"]["edge_hit_ratio"] > 0.99


@pytest.mark.slow
def test_full_run_end_to_end(tmp_path: Path) -> None:
    result = run_harness(tmp_path, "--duration", "5", "--rounds", "3", timeout=900)
    names = [row.name for row in bench_rows.ROWS]
    check_sane(result, names, rounds=3)
    for name in ("public-page", "partner-redis", "donations-one"):
        assert next(s for s in result["summary"] if s["name"] == name)["ratio"] is not None
