"""The worker's email job: `drain_email_batch` claims due email jobs
(db/queries/email.py), sends each one and settles it; `EmailJob` is its place in
the worker's loop (worker/loop.py), which polls it (no NOTIFY: migration 0021).

At least once: a claim leases the job (EMAIL_LEASE s), the message is sent outside
any transaction, and only then is the job marked sent, with the rest of its batch
once every send of the batch ended; a worker that dies between the two leaves the
job due again after the lease, and the message goes out again with the same
Message-ID. A failure worth retrying (the server is down, a 4xx)
waits EMAIL_RETRY_BASE * 2^(attempt-1) s (capped at EMAIL_RETRY_MAX, +-20 %), up to
EMAIL_MAX_ATTEMPTS attempts; a 5xx refusal fails at once. Nothing about a job's
recipient is logged.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from typing import Any, Protocol

import asyncpg

from db.crypto import CONTACT, MESSAGE
from db.queries import email as eq
from notify import messages
from notify.settings import EmailSettings
from notify.smtp import Mailer, SendFailed

log = logging.getLogger("conectades.email")
ACQUIRE_TIMEOUT = 5.0


class Keyring(Protocol):
    """The donor-data accessor (db/crypto.py: Keyring): a donation row's contact and
    message, decrypted (None when one cannot be opened: logged and counted there)."""

    def readable(self, row: Mapping[str, Any], column: str) -> str | None: ...


def backoff(settings: EmailSettings, attempt: int) -> float:
    delay = min(settings.EMAIL_RETRY_BASE * 2.0 ** max(0, attempt - 1), settings.EMAIL_RETRY_MAX)
    return float(delay * random.uniform(0.8, 1.2))


async def drain_email_batch(
    pool: asyncpg.Pool, settings: EmailSettings, keyring: Keyring, mailer: Mailer
) -> int:
    """Send one batch of due email jobs over `mailer`'s connections and settle them
    together; how many jobs were claimed (0: none due).

    Two statements per batch: the claim brings each job's message context, and one
    UPDATE settles every job of the batch once all its sends ended (migration 0029:
    per job, a read and a settle in transactions of their own cost PostgreSQL as
    much as the pledge did)."""
    if not settings.enabled:
        return 0
    async with pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
        jobs = await eq.claim_messages(conn, batch=settings.EMAIL_BATCH, lease=settings.EMAIL_LEASE)
    if not jobs:
        return 0
    outcomes = await asyncio.gather(*(_run(settings, keyring, mailer, job) for job in jobs))
    try:
        async with pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
            await eq.settle(conn, outcomes)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        # Due again when their leases end: sent ones go out again, same Message-ID.
        log.warning("%d email jobs not settled: %r", len(jobs), exc)
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
    settings: EmailSettings, keyring: Keyring, mailer: Mailer, job: asyncpg.Record
) -> eq.Settled:
    """Build and send one claimed job's message; how its attempt ended."""
    job_id, attempt = job["job_id"], job["attempts"]
    if not job["found"]:
        return eq.Settled(job_id, attempt, "skipped", reason="donation gone")
    contact = keyring.readable(job, CONTACT)
    if contact is None and job["kind"] == "receipt":
        # The receipt's recipient is that contact: retried like a bug, so restoring
        # the key in time still sends it; given up at the last attempt.
        failure = SendFailed("the donor's contact cannot be opened", permanent=False)
        return _failed(settings, job, failure)
    try:
        # The organization's notice goes without a value that cannot be opened:
        # it carries the confirmation link, which matters more than either.
        message = messages.build(
            settings,
            job_id=job_id,
            tenant_id=job["tenant_id"],
            kind=job["kind"],
            created_at=job["job_created_at"],
            row=job,
            donor_contact=contact or "",
            donor_message=keyring.readable(job, MESSAGE) or "",
        )
    except Exception as exc:  # a bug
        return _bug(settings, job, exc, "building")
    if message is None:
        return eq.Settled(job_id, attempt, "skipped", reason="no email address")
    try:
        await mailer.send(message)
    except SendFailed as exc:
        return _failed(settings, job, exc)
    except Exception as exc:  # a bug, not the server's answer: this job only
        return _bug(settings, job, exc, "sending")
    log.info("email job %s (%s) sent", job_id, job["kind"])
    return eq.Settled(job_id, attempt, "sent")


def _bug(settings: EmailSettings, job: asyncpg.Record, exc: Exception, doing: str) -> eq.Settled:
    """A message that could not be built or sent for a reason of ours: retried like
    a send failure, so a fix in time still sends it; given up at the last attempt."""
    log.exception("email job %s (%s): failed while %s", job["job_id"], job["kind"], doing)
    failure = SendFailed(f"{type(exc).__name__} while {doing}", permanent=False)
    return _failed(settings, job, failure)


def _failed(settings: EmailSettings, job: asyncpg.Record, exc: SendFailed) -> eq.Settled:
    job_id, attempt, reason = job["job_id"], job["attempts"], str(exc)
    if exc.permanent or attempt >= settings.EMAIL_MAX_ATTEMPTS:
        log.warning("email job %s (%s) failed after %d attempts: %s",
                    job_id, job["kind"], attempt, reason)  # fmt: skip
        return eq.Settled(job_id, attempt, "failed", reason=reason)
    delay = backoff(settings, attempt)
    log.info("email job %s (%s) attempt %d: %s; again in %.0f s",
             job_id, job["kind"], attempt, reason, delay)  # fmt: skip
    return eq.Settled(job_id, attempt, "retry", delay=delay, reason=reason)
