"""The worker's email job: `drain_email_batch` claims due email jobs
(db/queries/email.py), sends each one and settles it; `EmailJob` is its place in
the worker's loop (worker/loop.py), which polls it (no NOTIFY: migration 0021).

At least once: a claim leases the job (EMAIL_LEASE s), the message is sent outside
any transaction, and only then is the job marked sent; a worker that dies between
the two leaves the job due again after the lease, and the message goes out again
with the same Message-ID. A failure worth retrying (the server is down, a 4xx)
waits EMAIL_RETRY_BASE * 2^(attempt-1) s (capped at EMAIL_RETRY_MAX, +-20 %), up to
EMAIL_MAX_ATTEMPTS attempts; a 5xx refusal fails at once. Nothing about a job's
recipient is logged.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol
from uuid import UUID

import asyncpg

from db.queries import email as eq
from db.tenancy import tenant_transaction
from notify import messages
from notify.settings import EmailSettings
from notify.smtp import Mailer, SendFailed

log = logging.getLogger("conectades.email")
ACQUIRE_TIMEOUT = 5.0


class Keyring(Protocol):
    """The donor-data accessor (db/crypto.py: Keyring): a donation row's contact and
    message, decrypted."""

    def donor_contact_of(self, row: Mapping[str, Any]) -> str: ...
    def message_of(self, row: Mapping[str, Any]) -> str: ...


def backoff(settings: EmailSettings, attempt: int) -> float:
    delay = min(settings.EMAIL_RETRY_BASE * 2.0 ** max(0, attempt - 1), settings.EMAIL_RETRY_MAX)
    return float(delay * random.uniform(0.8, 1.2))


async def drain_email_batch(
    pool: asyncpg.Pool, settings: EmailSettings, keyring: Keyring, mailer: Mailer
) -> int:
    """Send one batch of due email jobs over `mailer`'s connections; how many jobs
    were claimed (0: none due)."""
    if not settings.enabled:
        return 0
    async with pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
        jobs = await eq.claim_jobs(conn, batch=settings.EMAIL_BATCH, lease=settings.EMAIL_LEASE)
    if jobs:
        await asyncio.gather(*(_run(pool, settings, keyring, mailer, job) for job in jobs))
    return len(jobs)


class EmailJob:
    """`drain` for the worker's loop (worker/loop.py: Job)."""

    def __init__(self, pool: asyncpg.Pool, settings: EmailSettings, keyring: Keyring) -> None:
        self.pool, self.settings, self.keyring = pool, settings, keyring
        # SMTP connections kept from one batch to the next (closed after 5 s idle).
        self.mailer = Mailer(settings, keep=settings.EMAIL_BATCH)
        if not settings.enabled:
            log.warning("email is off (no CONECTADES_SMTP_HOST): jobs wait in email_job")

    async def drain(self) -> int:
        return await drain_email_batch(self.pool, self.settings, self.keyring, self.mailer)

    async def close(self) -> None:
        # A drain is awaited whole by the loop: nothing is in flight, only kept
        # connections to QUIT.
        await self.mailer.close()


async def _run(
    pool: asyncpg.Pool,
    settings: EmailSettings,
    keyring: Keyring,
    mailer: Mailer,
    job: asyncpg.Record,
) -> None:
    try:
        await _process(pool, settings, keyring, mailer, job)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        # The database, not the message: not settled, due again when its lease ends.
        log.warning("email job %s (%s): not settled: %r", job["id"], job["kind"], exc)
    except Exception as exc:
        # A message that cannot be built (a bug, an unreadable contact): retried like
        # a send failure, so a fix in time still sends it; given up at the last attempt.
        log.exception("email job %s (%s) could not be built", job["id"], job["kind"])
        failure = SendFailed(f"{type(exc).__name__} while building", permanent=False)
        await _failed(pool, settings, job, failure)


async def _process(
    pool: asyncpg.Pool,
    settings: EmailSettings,
    keyring: Keyring,
    mailer: Mailer,
    job: asyncpg.Record,
) -> None:
    tid, job_id, attempt = job["tenant_id"], job["id"], job["attempts"]
    async with tenant_transaction(pool, tid, acquire_timeout=ACQUIRE_TIMEOUT) as conn:
        row = await eq.select_message_context(conn, tenant_id=tid, donation_id=job["donation_id"])
    message = None
    if row is not None:
        message = messages.build(
            settings,
            job_id=job_id,
            tenant_id=tid,
            kind=job["kind"],
            created_at=job["created_at"],
            row=row,
            donor_contact=keyring.donor_contact_of(row),
            donor_message=keyring.message_of(row),
        )
    if message is None:
        reason = "no email address" if row is not None else "donation gone"
        await _settle(pool, tid, eq.mark_done, job_id, attempt, status="skipped", reason=reason)
        return
    try:
        await mailer.send(message)
    except SendFailed as exc:
        await _failed(pool, settings, job, exc)
        return
    await _settle(pool, tid, eq.mark_sent, job_id, attempt)
    log.info("email job %s (%s) sent", job_id, job["kind"])


async def _failed(
    pool: asyncpg.Pool, settings: EmailSettings, job: asyncpg.Record, exc: SendFailed
) -> None:
    tid, job_id, attempt, reason = job["tenant_id"], job["id"], job["attempts"], str(exc)
    if exc.permanent or attempt >= settings.EMAIL_MAX_ATTEMPTS:
        log.warning("email job %s (%s) failed after %d attempts: %s",
                    job_id, job["kind"], attempt, reason)  # fmt: skip
        await _settle(pool, tid, eq.mark_done, job_id, attempt, status="failed", reason=reason)
    else:
        delay = backoff(settings, attempt)
        log.info("email job %s (%s) attempt %d: %s; again in %.0f s",
                 job_id, job["kind"], attempt, reason, delay)  # fmt: skip
        await _settle(pool, tid, eq.mark_retry, job_id, attempt, delay=delay, reason=reason)


async def _settle(
    pool: asyncpg.Pool,
    tid: UUID,
    mark: Callable[..., Awaitable[bool]],
    job_id: UUID,
    attempt: int,
    **kw: Any,
) -> None:
    async with tenant_transaction(pool, tid, acquire_timeout=ACQUIRE_TIMEOUT) as conn:
        await mark(conn, tenant_id=tid, job_id=job_id, attempt=attempt, **kw)
