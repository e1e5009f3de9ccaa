"""The webhook benchmark's figures (load/bench_webhooks.py): percentiles, each
delivery's lag, the medians per phase with the targets of issue 16 (`summarize`),
and the text the command prints (`render`)."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from datetime import datetime
from typing import Any


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def lags(
    received: list[tuple[float, bytes]], acks: dict[str, float]
) -> tuple[list[float], list[float], list[str]]:
    """Per delivery: seconds after the event's insert (`occurred_at`, before the
    commit: an upper bound of the lag after commit) and after the client had its 201
    (after the commit: a lower bound); the donation ids delivered."""
    after_event: list[float] = []
    after_ack: list[float] = []
    ids: list[str] = []
    for at, body in received:
        doc = json.loads(body)
        occurred = datetime.fromisoformat(doc["timestamp"].replace("Z", "+00:00")).timestamp()
        after_event.append(at - occurred)
        donation = doc["data"]["id"]
        if donation in acks:
            after_ack.append(at - acks[donation])
        ids.append(donation)
    return after_event, after_ack, ids


def fmt(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def summarize(results: dict[str, list[dict[str, Any]]], rate: float) -> dict[str, Any]:
    def med(phase: str, key: str) -> float:
        return float(statistics.median(r[key] for r in results[phase]))

    off_mean, on_mean = med("off", "mean_ms"), med("on", "mean_ms")
    off_p95, on_p95 = med("off", "p95_ms"), med("on", "p95_ms")
    queued: dict[str, float] = {}
    if results.get("queued"):
        q_mean, q_p95 = med("queued", "mean_ms"), med("queued", "p95_ms")
        queued = {
            "mean_ms": q_mean,
            "p95_ms": q_p95,
            "mean_ratio": q_mean / off_mean,
            "p95_ratio": q_p95 / off_p95,
        }
    # The same ratio round by round (each round's phases ran minutes apart at most).
    paired = statistics.median(
        on["mean_ms"] / off["mean_ms"]
        for off, on in zip(results["off"], results["on"], strict=True)
    )
    controls = {
        phase: _against_off(results, phase) for phase in ("again", "burn") if results.get(phase)
    }
    if controls:
        controls["on"] = _against_off(results, "on")
    lag_p95 = max(r["lag_p95_ms"] for r in results["on"])
    complete = all(
        r["delivered_distinct"] == r["written"] and r["unsettled"] == 0 for r in results["on"]
    )
    return {
        "rate_target": rate,
        "rate_off": med("off", "rate"),
        "rate_on": med("on", "rate"),
        "write_mean_ms": {
            "off": off_mean,
            "on": on_mean,
            "ratio": on_mean / off_mean,
            "median_of_round_ratios": paired,
        },
        "write_p95_ms": {"off": off_p95, "on": on_p95, "ratio": on_p95 / off_p95},
        "delivery_lag_ms": {
            "p50": med("on", "lag_p50_ms"),
            "p95_worst_round": lag_p95,
            "max": max(r["lag_max_ms"] for r in results["on"]),
            "after_ack_p50": med("on", "lag_ack_p50_ms"),
            "after_ack_p95_worst_round": max(r["lag_ack_p95_ms"] for r in results["on"]),
        },
        "write_with_worker_stopped": queued,
        "controls": controls,
        "every_donation_delivered": complete,
        "errors": sum(r["errors"] for rs in results.values() for r in rs),
        "dropped": sum(r["dropped"] for rs in results.values() for r in rs),
        "targets_met": {
            "delivery_p95_le_1s": lag_p95 <= 1000,
            "write_slowdown_le_10pct": on_mean / off_mean <= 1.10,
            "complete": complete,
        },
    }


def _against_off(results: dict[str, list[dict[str, Any]]], phase: str) -> dict[str, Any]:
    """`phase`'s write mean over the same round's `off`, round by round (median and
    range), and the machine's busy cores in each."""
    ratios = sorted(
        r["mean_ms"] / off["mean_ms"] for off, r in zip(results["off"], results[phase], strict=True)
    )
    found = {
        "mean_ratio_median": statistics.median(ratios),
        "mean_ratio_min": ratios[0],
        "mean_ratio_max": ratios[-1],
        "busy_cores": statistics.median(r["busy_cores"] for r in results[phase]),
        "off_busy_cores": statistics.median(r["busy_cores"] for r in results["off"]),
    }
    if phase == "burn":
        found["burned_cores"] = statistics.median(r["burned_cores"] for r in results[phase])
    return found


def _controls(s: dict[str, Any]) -> str:
    c = s.get("controls") or {}
    lines = []
    for phase, what in (
        ("on", "with deliveries (on)"),
        ("again", "off again (A/A: this machine's noise)"),
        ("burn", "off + a process spending the CPU deliveries added (burn)"),
    ):
        if phase in c:
            x = c[phase]
            extra = f", {x['burned_cores']:.2f} cores burned" if phase == "burn" else ""
            lines.append(
                f"  {what}: mean over off, round by round: median {x['mean_ratio_median']:.3f} "
                f"(range {x['mean_ratio_min']:.3f}-{x['mean_ratio_max']:.3f}); "
                f"machine busy {x['busy_cores']:.2f} cores against off's "
                f"{x['off_busy_cores']:.2f}{extra}"
            )
    return "controls:\n" + "\n".join(lines) + "\n" if len(lines) > 1 else ""


def render(s: dict[str, Any]) -> str:
    """The summary as the command prints it."""
    return (
        f"\nwrites at {s['rate_target']:g}/s: reached {s['rate_off']:.1f}/s (off), "
        f"{s['rate_on']:.1f}/s (on)\n"
        f"write mean  off {s['write_mean_ms']['off']:.1f} ms, "
        f"on {s['write_mean_ms']['on']:.1f} ms, "
        f"ratio {s['write_mean_ms']['ratio']:.3f} "
        f"(round by round: median {s['write_mean_ms']['median_of_round_ratios']:.3f})\n"
        f"write p95   off {s['write_p95_ms']['off']:.1f} ms, on {s['write_p95_ms']['on']:.1f} ms, "
        f"ratio {s['write_p95_ms']['ratio']:.3f}\n"
        + (
            f"write with the endpoint on and the worker stopped (the write path alone): "
            f"mean {q['mean_ms']:.1f} ms (ratio {q['mean_ratio']:.3f}), "
            f"p95 {q['p95_ms']:.1f} ms (ratio {q['p95_ratio']:.3f})\n"
            if (q := s.get("write_with_worker_stopped"))
            else ""
        )
        + _controls(s)
        + f"delivery lag after the event: p50 {s['delivery_lag_ms']['p50']:.0f} ms, "
        f"p95 {s['delivery_lag_ms']['p95_worst_round']:.0f} ms (worst round), "
        f"max {s['delivery_lag_ms']['max']:.0f} ms\n"
        f"delivery lag after the client's 201: p50 {s['delivery_lag_ms']['after_ack_p50']:.0f} ms,"
        f" p95 {s['delivery_lag_ms']['after_ack_p95_worst_round']:.0f} ms (worst round)\n"
        f"every donation delivered once or more: {s['every_donation_delivered']}; "
        f"errors: {s['errors']}; iterations k6 could not start in time: {s['dropped']}\n"
        f"worker capacity: {s['backlog']['delivered']} of {s['backlog']['events']} events "
        f"committed at once delivered in {s['backlog']['seconds']:.1f} s "
        f"({s['backlog']['per_second']:.0f}/s), worker CPU "
        f"{s['backlog']['worker_cpu_ms_per_delivery']:.2f} ms per delivery\n"
        f"targets: {json.dumps(s['targets_met'])}"
    )
