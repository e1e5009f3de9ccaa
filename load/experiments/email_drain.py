"""Experiment: what one pledge and one email cost the machine (issue 20), measured
on the running `./start.sh` stack.

It stops the stack's worker (SIGSTOP), makes --pledges public pledges one after
another through the API port (each with its own Idempotency-Key and an email
contact, so each queues a receipt; a notice too when the campaign's contact is an
address), resumes the worker and waits until no email job is pending. It prints
the CPU time (`/proc`, load/cpu.py: PostgreSQL's of every backend, those opened
meanwhile included) of the API and PostgreSQL per pledge while pledging, and of
the worker process, the SMTP sink and PostgreSQL per email job while draining,
and how long the drain took. Each round is one line; the median is printed last.

Usage (from the repository root, with the stack up):

    .venv/bin/python -m load.experiments.email_drain
    .venv/bin/python -m load.experiments.email_drain --pledges 500 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
import psutil

from load.cpu import CpuMeter, beside_roots
from load.stack import local_stack

ROOT = Path(__file__).resolve().parents[2]
PENDING = "SELECT count(*) FROM email_job WHERE status = 'pending'"


@contextmanager
def _stopped(proc: psutil.Process) -> Iterator[None]:
    proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGCONT)


def _pledge_target(client: httpx.Client, tenant: str) -> tuple[str, str]:
    slug = client.get(f"/api/public/{tenant}/campaigns").json()["data"][0]["slug"]
    item = client.get(f"/api/public/{tenant}/campaigns/{slug}").json()["items"][0]["id"]
    return slug, item


async def _pending(dsn: str, *, until_none: bool = False) -> int:
    """Email jobs pending now; with `until_none`, polled on one connection until none."""
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval(PENDING)
        while until_none and count:
            await asyncio.sleep(0.1)
            count = await conn.fetchval(PENDING)
        return count
    finally:
        await conn.close()


def one_round(pledges: int, tenant: str) -> dict[str, float]:
    stack = local_stack()
    worker = beside_roots(ROOT).get("worker")
    if worker is None:
        raise SystemExit("no job worker of this checkout's stack: ./start.sh first")
    client = httpx.Client(base_url=stack.api_url or stack.base_url, timeout=10)
    slug, item = _pledge_target(client, tenant)  # also warms the API's memo of the org
    server = CpuMeter.for_ports(stack.ports())
    with _stopped(worker):
        server.start()
        for i in range(pledges):
            r = client.post(
                f"/api/public/{tenant}/campaigns/{slug}/donations",
                # Distinct addresses: the public pledge limit is per client address.
                headers={
                    "Idempotency-Key": str(uuid.uuid4()),
                    "X-Forwarded-For": f"10.9.{i // 250}.{i % 250 + 1}",
                },
                json={
                    "item_id": item,
                    "quantity": 1,
                    "donor_name": "Bench",
                    "donor_contact": f"bench{i}@example.org",
                    "message": "obrigado",
                },
            )
            r.raise_for_status()
        pledging = server.stop()
        jobs = asyncio.run(_pending(stack.admin_dsn))
        beside = CpuMeter.beside(ROOT)
        server.start()
        beside.start()
        started = time.monotonic()
    asyncio.run(_pending(stack.admin_dsn, until_none=True))
    took = time.monotonic() - started
    draining, aside = server.stop(), beside.stop()
    return {
        "jobs": jobs,
        "seconds": took,
        "pledge_api": pledging.seconds["api"] / pledges * 1e3,
        "pledge_pg": pledging.seconds["postgres"] / pledges * 1e3,
        "worker": aside.seconds.get("worker", 0.0) / jobs * 1e3,
        "sink": aside.seconds.get("mail", 0.0) / jobs * 1e3,
        "pg": draining.seconds["postgres"] / jobs * 1e3,
    }


def _line(label: str, row: dict[str, float]) -> str:
    return (
        f"{label}: CPU ms per pledge: api {row['pledge_api']:.2f}, "
        f"postgres {row['pledge_pg']:.2f}; {row['jobs']:.0f} email jobs drained in "
        f"{row['seconds']:.1f} s, CPU ms per job: worker {row['worker']:.2f}, "
        f"SMTP sink {row['sink']:.2f}, postgres {row['pg']:.2f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m load.experiments.email_drain",
        description="CPU per pledge (API, PostgreSQL) and per email job drained by the "
        "stack's worker (worker, SMTP sink, PostgreSQL), on the running ./start.sh stack; "
        "its worker is paused while pledging.",
    )
    parser.add_argument("--pledges", type=int, default=500, help="pledges per round (500)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (3); the median is last")
    parser.add_argument("--tenant", default="demo", help="organization slug (demo)")
    args = parser.parse_args(argv)
    rows = []
    for n in range(args.rounds):
        rows.append(one_round(args.pledges, args.tenant))
        print(_line(f"round {n + 1}", rows[-1]), flush=True)
    print(_line("median", {k: statistics.median(r[k] for r in rows) for k in rows[0]}))


if __name__ == "__main__":
    main()
