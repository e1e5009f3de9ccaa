"""Email jobs (migration 0019): claimed across tenants by the worker together with
what their messages say, and settled as a batch (migration 0029); the notice's
confirm link is used once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

import asyncpg

# Each claimed job (job_id, tenant_id, donation_id, kind, attempts, job_created_at)
# with its message's context: `email_message_context`'s columns, `id` the donation's,
# all NULL and `found` false when the donation (or its campaign, item or tenant) is
# gone.
CLAIM_EMAIL_MESSAGES = "SELECT * FROM claim_email_messages($1, $2)"
SETTLE_EMAIL_JOBS = "SELECT settle_email_jobs($1, $2, $3, $4, $5)"

# Everything a message says, in one read (the confirm link's page; the worker gets
# the same columns with its claim): the view of migration 0029. The donor's contact
# and message come sealed (migration 0018): the caller opens them with
# db/crypto.py's Keyring (`donor_contact_of`, `message_of`, which need id and
# tenant_id).
SELECT_MESSAGE_CONTEXT = "SELECT * FROM email_message_context WHERE tenant_id = $1 AND id = $2"

SELECT_LINK_JOB = """
SELECT id, donation_id, link_used_at FROM email_job
WHERE tenant_id = $1 AND id = $2 AND kind = 'notice'
"""
USE_LINK = """
UPDATE email_job SET link_used_at = clock_timestamp()
WHERE tenant_id = $1 AND id = $2 AND donation_id = $3 AND kind = 'notice'
  AND link_used_at IS NULL
RETURNING link_used_at
"""


class Settled(NamedTuple):
    """How one claimed attempt of a job ended: 'sent', 'skipped' (nothing to send),
    'failed' (given up) or 'retry' (due again in `delay` seconds)."""

    job_id: UUID
    attempt: int
    outcome: str
    delay: float = 0.0
    reason: str = ""


async def claim_messages(
    conn: asyncpg.Connection, *, batch: int, lease: float
) -> list[asyncpg.Record]:
    """Up to `batch` due jobs of any tenant, each leased for `lease` seconds, with
    their messages' context (CLAIM_EMAIL_MESSAGES)."""
    rows: list[asyncpg.Record] = await conn.fetch(CLAIM_EMAIL_MESSAGES, batch, lease)
    return rows


async def select_message_context(
    conn: asyncpg.Connection, *, tenant_id: UUID, donation_id: UUID
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(SELECT_MESSAGE_CONTEXT, tenant_id, donation_id)
    return row


async def settle(conn: asyncpg.Connection, outcomes: Sequence[Settled]) -> int:
    """Settle the claimed attempts in one statement; how many were still theirs to
    settle (an attempt whose lease ran out and was claimed again is left alone)."""
    settled: int = await conn.fetchval(
        SETTLE_EMAIL_JOBS,
        [o.job_id for o in outcomes],
        [o.attempt for o in outcomes],
        [o.outcome for o in outcomes],
        [o.delay for o in outcomes],
        [o.reason for o in outcomes],
    )
    return settled


async def select_link_job(
    conn: asyncpg.Connection, *, tenant_id: UUID, job_id: UUID
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(SELECT_LINK_JOB, tenant_id, job_id)
    return row


async def use_link(
    conn: asyncpg.Connection, *, tenant_id: UUID, job_id: UUID, donation_id: UUID
) -> datetime | None:
    """Mark the notice's link used; None if it was used before (or is not this job's)."""
    used: datetime | None = await conn.fetchval(USE_LINK, tenant_id, job_id, donation_id)
    return used


# `conectades db prune` (owner role, every tenant): settled jobs hold no personal
# data, only the record of what was sent; a notice's row is also its link's
# single-use state, so it is kept at least as long as the link is valid.
DELETE_SETTLED = """
DELETE FROM email_job WHERE id IN (
    SELECT id FROM email_job
    WHERE status <> 'pending' AND created_at < now() - make_interval(secs => $1)
    LIMIT $2
)
"""


async def delete_settled(conn: asyncpg.Connection, *, older_than: float, limit: int) -> int:
    """Delete up to `limit` sent, skipped or failed jobs created over `older_than` s ago."""
    done = await conn.execute(DELETE_SETTLED, older_than, limit)
    return int(str(done).split()[-1])
