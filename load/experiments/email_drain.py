"""Experiment: what one pledge and one email cost the machine (issue 20), measured
on the running `./start.sh` stack.

It stops the stack's worker (SIGSTOP), makes --pledges public pledges one after
another through the API port (each with its own Idempotency-Key and an email
contact, so each queues a receipt; a notice too when the campaign's contact is an
address), resumes the worker and waits until no email job is pending. It prints
the CPU time (`/proc`, psutil; PostgreSQL's of every backend, those opened
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

import asyncpg
import httpx
import psutil

from load.stack import local_stack

PENDING = "SELECT count(*) FROM email_job WHERE status = 'pending'"


def _service(root: psutil.Process, needle: str) -> psutil.Process:
    """The supervisor's child whose command line contains `needle`."""
    for child in root.children():
        if needle in " ".join(child.cmdline()):
            return child
    raise SystemExit(f"no {needle!r} process under the stack's supervisor: is it up?")


def _supervisor() -> psutil.Process:
    for proc in psutil.process_iter(["cmdline"]):
        if "supervisord" in " ".join(proc.info["cmdline"] or []):
            return proc
    raise SystemExit("the stack's supervisor is not running: ./start.sh first")


def _cpu(procs: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for p in procs:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return out


def _tree(root: psutil.Process) -> list[psutil.Process]:
    return [root, *root.children(recursive=True)]


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


async def _pending(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval(PENDING)
        return count
    finally:
        await conn.close()


def one_round(pledges: int, tenant: str) -> dict[str, float]:
    stack = local_stack()
    root = _supervisor()
    worker, sink = _service(root, "admin worker"), _service(root, "infra.smtp_sink")
    postgres = _service(root, "postgres -D")
    api = _service(root, "api.server")
    client = httpx.Client(base_url=stack.api_url or stack.base_url, timeout=10)
    slug, item = _pledge_target(client, tenant)
    with _stopped(worker):
        _pledge_target(client, tenant)  # the API's memo of the organization, warm
        start = {"api": _cpu(_tree(api)), "pg": _cpu(_tree(postgres))}
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
        pledged = {"api": _cpu(_tree(api)), "pg": _cpu(_tree(postgres))}
        jobs = asyncio.run(_pending(stack.admin_dsn))
        before = {"worker": _cpu([worker]), "sink": _cpu([sink]), "pg": _cpu(_tree(postgres))}
        started = time.monotonic()
    while asyncio.run(_pending(stack.admin_dsn)) > 0:
        time.sleep(0.1)
    took = time.monotonic() - started
    after = {"worker": _cpu([worker]), "sink": _cpu([sink]), "pg": _cpu(_tree(postgres))}
    per = {
        part: sum(v - before[part].get(pid, 0.0) for pid, v in after[part].items()) / jobs * 1e3
        for part in after
    }
    per_pledge = {
        f"pledge_{part}": sum(v - start[part].get(pid, 0.0) for pid, v in pledged[part].items())
        / pledges
        * 1e3
        for part in pledged
    }
    return {"jobs": jobs, "seconds": took, **per, **per_pledge}


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
