"""`conectades worker`: the background worker process.

One asyncio process; its jobs (webhook deliveries, the pledges' emails when SMTP is
configured, folding the item totals' slots; worker/loop.py says how to add one)
share a pool as the API's database role, so row-level security applies to
everything it writes (the folding is a SECURITY DEFINER function, migration 0028).
SIGTERM or SIGINT: stop claiming, let deliveries in flight finish
(`WORKER_SHUTDOWN_TIMEOUT`), exit 0. A SIGKILL loses nothing: leases expire. Run any
number of them: claims never overlap (FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import asyncpg
import uvloop

from db.crypto import KeyConfigError, Keyring
from db.pool import RoleGuard, create_pool
from notify.jobs import EmailJob
from notify.settings import EmailConfigError, EmailSettings
from worker.config import WorkerConfig
from worker.loop import Job, Loop
from worker.totals import TotalsJob
from worker.webhooks import CHANNEL, WebhookJob

log = logging.getLogger("conectades.worker")


def jobs(pool: asyncpg.Pool, cfg: WorkerConfig, loop: Loop) -> list[Job]:
    """Every kind of job this process runs (add new ones here)."""
    webhooks = WebhookJob(pool, cfg, loop.wake)
    found = [Job("webhooks", webhooks.drain, channels=(CHANNEL,), close=webhooks.close)]
    email = email_job(pool)
    if email is not None:
        found.append(email)
    if cfg.TOTALS_COMPACT_INTERVAL > 0:
        totals = TotalsJob(pool, cfg)
        found.append(Job("totals", totals.drain))
    return found


def email_job(pool: asyncpg.Pool) -> Job | None:
    """The pledges' emails (notify/jobs.py), when CONECTADES_SMTP_HOST is set; its
    settings and the donor-contact keys are checked here, so a worker that cannot
    send says why at once and does not start."""
    try:
        settings = EmailSettings.from_env()
        if not settings.enabled:
            log.warning("email is off (no CONECTADES_SMTP_HOST): email jobs wait in email_job")
            return None
        keyring = Keyring.from_env()
    except (EmailConfigError, KeyConfigError) as exc:
        raise SystemExit(f"worker: {exc}") from None
    email = EmailJob(pool, settings, keyring)
    # Polled, not woken: a NOTIFY from each pledge serialized their commits (0021).
    return Job("email", email.drain, close=email.close)


async def serve(cfg: WorkerConfig) -> None:
    pool = await create_pool(
        cfg.DATABASE_URL,
        min_size=1,
        max_size=cfg.DB_POOL_MAX,
        command_timeout=cfg.DB_COMMAND_TIMEOUT,
        statement_cache_size=100,
        init=RoleGuard(),
        lazy=True,
    )
    loop = Loop([], listen_dsn=cfg.DATABASE_URL, poll_interval=cfg.WORKER_POLL_INTERVAL)
    loop.jobs = jobs(pool, cfg, loop)
    running = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        running.add_signal_handler(sig, loop.stop)
    log.info("worker: started (%s)", ", ".join(job.name for job in loop.jobs))
    try:
        await loop.run()
    finally:
        await pool.close()
    log.info("worker: stopped")


def lower_priority(nice: int) -> int:
    """Run this process at niceness `nice` at least (0-19; never raised back: only
    root may) and return the niceness it runs at. The jobs tolerate seconds; on
    cores shared with the request path the scheduler then runs the API, PostgreSQL
    and the edge first, and the jobs take what they leave (BENCHMARKS.md, session 34)."""
    if not 0 <= nice <= 19:
        raise ValueError(f"niceness must be 0-19, not {nice}")
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if nice > current:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    return max(nice, current)


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    cfg = WorkerConfig.from_env()
    nice = lower_priority(cfg.WORKER_NICE)
    log.info("worker: niceness %d", nice)
    # uvloop, as the API runs on (Sanic): a delivery's POST cost 0.06-0.11 ms of CPU
    # on it against 0.10-0.14 ms on asyncio's own loop (docs/decisions.md, 7).
    uvloop.run(serve(cfg))


if __name__ == "__main__":
    main()
