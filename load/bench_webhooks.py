"""Webhook benchmark: do events and deliveries keep up with donation writes, and what
do they cost them?

`conectades bench-webhooks` / `python -m load.bench_webhooks` starts a throwaway
PostgreSQL (load/throwaway.py), the API, `conectades worker` and a receiver on
127.0.0.1, then records donations through the API at a fixed rate (open loop:
request i starts at t0 + i/rate whatever the answers) in interleaved phases:

  off   the tenant's endpoint disabled: each donation writes its event (the trigger
        finds no enabled endpoint)
  on    the endpoint enabled (donation.created): each donation also writes its
        delivery, NOTIFYs the worker, and the worker POSTs it, signed
  queued  the endpoint enabled, the worker stopped: the write path alone

and with `--controls` two more: `again` (off once more: how far two phases of the
same work differ here) and `burn` (off while a spinning process spends the CPU the
median `on` phase so far used beyond the median `off`, machine-wide from /proc/stat),

and reports, per phase (median over rounds): the donation write's mean and p95
latency and the rate reached; for `on`, the delivery lag (receiver's clock minus the
event's `occurred_at`, which precedes the commit: an upper bound of "after commit"),
and whether every donation was delivered once. Targets (issue 16): delivery p95
<= 1 s at 200 donations/s; write mean and p95 with deliveries <= 1.10 x without.

The receiver is load/webhook_receiver.py; the figures and the printed summary are
load/bench_webhooks_report.py; this module drives the phases and is the command.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from db.crypto import throwaway_keys
from infra.postgres import free_port
from infra.servers import ROOT, clean_env, sanic_argv, spawn, stop_group, wait_http_ok
from load.bench_webhooks_report import fmt, lags, pct, render, summarize
from load.webhook_receiver import Receiver

BASE = ROOT / "var" / "bench" / "webhooks"
ITEMS = 50


K6_SCRIPT = """
import http from 'k6/http';
const items = JSON.parse(__ENV.ITEMS);
const params = {headers: {'Content-Type': 'application/json', Authorization: 'Bearer ' + __ENV.KEY},
                responseCallback: http.expectedStatuses(201)};
export const options = {
  scenarios: {donations: {executor: 'constant-arrival-rate', rate: Number(__ENV.RATE),
    timeUnit: '1s', duration: __ENV.DURATION + 's', preAllocatedVUs: 50, maxVUs: 400}},
};
export default function () {
  const item = items[Math.floor(Math.random() * items.length)];
  const r = http.post(__ENV.URL, JSON.stringify({item_id: item, quantity: 1,
    donor_name: 'Bench', donor_contact: 'bench@example.org'}), params);
  // When the client had its answer (after the commit): the lag's lower bound.
  if (r.status === 201) console.log('ACK ' + r.json('id') + ' ' + Date.now());
}
"""


def drive(
    api_url: str, key: str, campaign: dict[str, Any], rate: float, duration: float
) -> dict[str, Any]:
    """Donations at `rate`/s for `duration` s (k6, open loop); k6's summary of them."""
    script, summary = BASE / "donations.js", BASE / "k6-summary.json"
    script.write_text(K6_SCRIPT)
    summary.unlink(missing_ok=True)
    k6 = Path(sys.executable).parent / "k6"
    env = {
        **clean_env(),
        "URL": f"{api_url}/api/v1/campaigns/{campaign['id']}/donations",
        "KEY": key,
        "ITEMS": json.dumps([item["id"] for item in campaign["items"]]),
        "RATE": str(rate),
        "DURATION": str(duration),
    }
    cmd = [
        str(k6 if k6.exists() else "k6"), "run", "--quiet", "--no-usage-report",
        "--summary-trend-stats", "avg,p(50),p(95),max", "--summary-export", str(summary),
        str(script),
    ]  # fmt: skip
    phase_log = BASE / "k6-phase.log"
    with phase_log.open("wb") as out:
        subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    acks: dict[str, float] = {}
    for line in phase_log.read_text(errors="replace").splitlines():
        found = re.search(r"ACK ([0-9a-f-]{36}) (\d+)", line)
        if found:
            acks[found.group(1)] = int(found.group(2)) / 1000
    metrics = json.loads(summary.read_text())["metrics"]
    duration_ms = metrics["http_req_duration{expected_response:true}"]
    reqs = metrics["http_reqs"]
    failed = metrics["http_req_failed"]
    return {
        "sent": int(reqs["count"]),
        "errors": round(failed.get("value", failed.get("rate", 0)) * reqs["count"]),
        "dropped": int(metrics.get("dropped_iterations", {}).get("count", 0)),
        "rate": float(reqs["rate"]),
        "mean_ms": float(duration_ms["avg"]),
        "p95_ms": float(duration_ms["p(95)"]),
        "acks": acks,
    }


async def _provision(admin_dsn: str) -> str:
    import asyncpg

    from tenants.provisioning import tenant_with_key

    conn = await asyncpg.connect(admin_dsn)
    try:
        made = await tenant_with_key(
            conn, slug="bench-webhooks", name="Bench", scopes=["read", "write", "keys"]
        )
        return made.key
    finally:
        await conn.close()


async def _count(admin_dsn: str, query: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        return int(await conn.fetchval(query))
    finally:
        await conn.close()


# A stand-in for the deliveries' CPU (the `burn` control phase): spins `fraction` of
# every 5 ms, sleeps the rest, until killed.
BURN = """
import sys, time
fraction, period = float(sys.argv[1]), 0.005
while True:
    start = time.perf_counter()
    while time.perf_counter() < start + fraction * period:
        pass
    time.sleep(max(0.0, period - (time.perf_counter() - start)))
"""


def busy_seconds() -> float:
    """CPU time the whole machine spent busy so far (/proc/stat: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def burners(cores: float) -> list[subprocess.Popen[bytes]]:
    """Processes that together keep `cores` of CPU busy (at most 0.9 of a core each)."""
    count = max(1, int(cores / 0.9) + 1) if cores > 0 else 0
    return [
        subprocess.Popen([sys.executable, "-c", BURN, str(cores / count)]) for _ in range(count)
    ]


DONATIONS = "SELECT count(*) FROM donation"
UNSETTLED = "SELECT count(*) FROM webhook_delivery WHERE status <> 'succeeded'"


def _phases(
    api_url: str,
    admin_dsn: str,
    key: str,
    receiver: Receiver,
    rate: float,
    duration: float,
    rounds: int,
    log: Any,
    worker_pid: int | None = None,
    controls: bool = False,
) -> dict[str, Any]:
    import httpx  # a dev dependency: imported when the benchmark runs, not with the CLI

    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=api_url, headers=headers, timeout=30) as client:
        items = [
            {"name": f"item {n}", "unit": "unit", "quantity_requested": 10**6} for n in range(ITEMS)
        ]
        r = client.post(
            "/api/v1/campaigns",
            json={"slug": "bench", "title": "Bench", "status": "published", "items": items},
        )
        r.raise_for_status()
        campaign = r.json()
        r = client.post(
            "/api/v1/webhooks",
            json={
                "url": f"http://127.0.0.1:{receiver.port}/hook",
                "event_types": ["donation.created"],
                "enabled": False,
            },
        )
        r.raise_for_status()
        hook = r.json()
        drive(api_url, key, campaign, rate, min(duration, 3))  # warm-up, not counted
        # "queued": the endpoint enabled but the worker stopped (SIGSTOP) while the
        # donations are written, so the writes pay the fan-out trigger and nothing of the
        # delivery work: what the write path itself costs, apart from sharing the cores
        # with the worker and the receiver.
        phases: tuple[str, ...] = ("off", "on")
        if worker_pid is not None:
            phases = (*phases, "queued")
        # Controls: "again" is `off` once more (what one phase against another of the
        # same work gives on this machine: the bench's own noise); "burn" is `off` while
        # other processes spend the CPU `on` spent beyond `off` (the medians over the
        # rounds so far): whether the slowdown is the deliveries' CPU on shared cores,
        # whoever spends it.
        if controls:
            phases = (*phases, "again", "burn")
        results: dict[str, list[dict[str, Any]]] = {phase: [] for phase in phases}
        busy: dict[str, list[float]] = {phase: [] for phase in phases}
        for n in range(rounds):
            # Every other round in reverse order: whatever drifts within a round (the
            # tables growing, autovacuum, a checkpoint) falls on each phase alike.
            for phase in phases if n % 2 == 0 else phases[::-1]:
                enabled = phase in ("on", "queued")
                r = client.patch(f"/api/v1/webhooks/{hook['id']}", json={"enabled": enabled})
                r.raise_for_status()
                receiver.take()
                before = asyncio.run(_count(admin_dsn, DONATIONS))
                if phase == "queued" and worker_pid is not None:
                    os.kill(worker_pid, signal.SIGSTOP)
                # The median of each so far: one phase's machine-wide figure also holds
                # whatever else the shared machine ran meanwhile.
                extra = (
                    max(0.0, statistics.median(busy["on"]) - statistics.median(busy["off"]))
                    if busy["on"] and busy["off"]
                    else 0.0
                )
                burning = burners(extra) if phase == "burn" else []
                busy0, t0 = busy_seconds(), time.monotonic()
                try:
                    result = drive(api_url, key, campaign, rate, duration)
                finally:
                    for proc in burning:
                        proc.kill()
                        proc.wait()
                    if phase == "queued" and worker_pid is not None:
                        os.kill(worker_pid, signal.SIGCONT)
                result["busy_cores"] = (busy_seconds() - busy0) / (time.monotonic() - t0)
                busy[phase].append(result["busy_cores"])
                if phase == "burn":
                    result["burned_cores"] = extra
                written = asyncio.run(_count(admin_dsn, DONATIONS)) - before
                result["written"] = written
                if phase == "queued":  # let the worker catch up before the next phase
                    deadline = time.monotonic() + 120
                    while time.monotonic() < deadline and len(receiver.got) < written:
                        time.sleep(0.2)
                    result["delivered_after"] = len(receiver.take())
                if phase == "on":
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline and len(receiver.got) < written:
                        time.sleep(0.2)
                    time.sleep(1)  # anything sent twice would show now
                    lag, lag_ack, delivered = lags(receiver.take(), result["acks"])
                    result["lag_ack_p50_ms"] = pct(lag_ack, 0.5) * 1000
                    result["lag_ack_p95_ms"] = pct(lag_ack, 0.95) * 1000
                    result["delivered"] = len(delivered)
                    result["delivered_distinct"] = len(set(delivered))
                    result["unsettled"] = asyncio.run(_count(admin_dsn, UNSETTLED))
                    result["lag_p50_ms"] = pct(lag, 0.5) * 1000
                    result["lag_p95_ms"] = pct(lag, 0.95) * 1000
                    result["lag_max_ms"] = max(lag) * 1000 if lag else float("nan")
                result.pop("acks")
                results[phase].append(result)
                log(
                    f"round {n + 1} {phase:>3}: "
                    + ", ".join(f"{k}={fmt(v)}" for k, v in result.items())
                )
        # The capacity run after the rounds needs the endpoint on (a reversed round
        # ends with "off").
        client.patch(f"/api/v1/webhooks/{hook['id']}", json={"enabled": True}).raise_for_status()
    return results


BACKLOG = """
INSERT INTO event (tenant_id, type, resource_type, resource_id, data)
SELECT t.id, 'donation.created', 'donation', r.id, jsonb_build_object('id', r.id, 'quantity', 1)
FROM tenant t, (SELECT gen_random_uuid() AS id FROM generate_series(1, $1)) r
WHERE t.slug = 'bench-webhooks'
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backlog(admin_dsn: str, receiver: Receiver, worker_pid: int, count: int) -> dict[str, Any]:
    """The worker's own capacity: `count` events committed at once (the endpoint
    enabled), the time until all are delivered, and the worker's CPU time for them
    (what holds on a shared machine: CPU per delivery)."""
    import asyncpg

    async def insert() -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(BACKLOG, count)
        finally:
            await conn.close()

    receiver.take()
    cpu0 = cpu_seconds(worker_pid)
    asyncio.run(insert())
    start = time.monotonic()
    deadline = start + 300
    while time.monotonic() < deadline and len(receiver.got) < count:
        time.sleep(0.05)
    elapsed = time.monotonic() - start
    cpu = cpu_seconds(worker_pid) - cpu0
    delivered = len(receiver.take())
    return {
        "events": count,
        "delivered": delivered,
        "seconds": elapsed,
        "per_second": delivered / elapsed,
        "worker_cpu_s": cpu,
        "worker_cpu_ms_per_delivery": cpu * 1000 / max(delivered, 1),
    }


def run(
    rate: float,
    duration: float,
    rounds: int,
    workers: int,
    backlog_events: int = 5000,
    log: Any = print,
    controls: bool = False,
) -> dict[str, Any]:
    from load import throwaway

    # SIGTERM ends the run through its `finally` (the servers it started are stopped).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    receiver = Receiver()
    receiver.start()
    procs = []
    try:
        with throwaway.services(BASE) as urls:
            port = free_port()
            env = clean_env(
                CONECTADES_DATABASE_URL=urls["api"],
                CONECTADES_REDIS_URL=urls["redis"],
                CONECTADES_JWT_SECRET="bench-" + "x" * 40,
                **throwaway_keys(),
                CONECTADES_RATE_LIMIT_RATE="0",
                CONECTADES_AUTH_FAILURE_RATE="0",
                CONECTADES_WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
            )
            api_log, worker_log = BASE / "api.log", BASE / "worker.log"
            api = spawn(sanic_argv("api.server:create_app", port, workers=workers), env, api_log)
            procs.append(api)
            wait_http_ok(api, f"http://127.0.0.1:{port}/health/ready", 60, log=api_log, name="API")
            worker = spawn([sys.executable, "-m", "admin", "worker"], env, worker_log)
            procs.append(worker)
            key = asyncio.run(_provision(urls["admin"]))
            log(
                f"rate {rate:g}/s, {duration:g} s per phase, {rounds} rounds "
                f"({'off, on, queued, again, burn' if controls else 'off, on, queued'}), "
                f"{workers} API workers"
            )
            results = _phases(
                f"http://127.0.0.1:{port}",
                urls["admin"],
                key,
                receiver,
                rate,
                duration,
                rounds,
                log,
                worker_pid=worker.pid,
                controls=controls,
            )
            summary = summarize(results, rate)
            summary["backlog"] = backlog(urls["admin"], receiver, worker.pid, backlog_events)
            log("backlog: " + ", ".join(f"{k}={fmt(v)}" for k, v in summary["backlog"].items()))
            for proc in reversed(procs):
                stop_group(proc)
            return {"rounds": results, "summary": summary}
    finally:
        for proc in procs:
            stop_group(proc)
        receiver.stop()


def bench_webhooks_command(
    rate: Annotated[float, typer.Option(min=1, max=5000, help="Donations per second.")] = 200,
    duration: Annotated[float, typer.Option(min=1, max=600, help="Seconds per phase.")] = 15,
    rounds: Annotated[
        int,
        typer.Option(
            min=1, max=10, help="Rounds of (off, on, queued; with --controls also again, burn)."
        ),
    ] = 2,
    workers: Annotated[int, typer.Option(min=1, max=16, help="API worker processes.")] = 2,
    backlog_events: Annotated[
        int, typer.Option("--backlog", min=1, max=100_000, help="Events for the capacity run.")
    ] = 5000,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the results here.")] = None,
    controls: Annotated[
        bool,
        typer.Option(
            "--controls",
            help="Two more phases per round: 'again' (off once more: the bench's own "
            "noise) and 'burn' (off while other processes spend the CPU 'on' added).",
        ),
    ] = False,
) -> None:
    """Webhook deliveries at a donation rate: delivery lag, and the write latency with
    an enabled endpoint vs without (load/bench_webhooks.py)."""
    result = run(rate, duration, rounds, workers, backlog_events, controls=controls)
    s = result["summary"]
    print(render(s))
    print("JSON " + json.dumps(s))
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    typer.run(bench_webhooks_command)
