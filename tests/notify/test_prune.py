"""`conectades db prune` and email jobs: settled jobs go once as old as the events
kept (CONECTADES_EVENT_RETENTION_DAYS), never before a notice's link expires
(CONECTADES_CONFIRM_LINK_TTL); a job still pending is never deleted."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.factories import Factory
from tests.notify.conftest import jobs, pledge, unique
from tests.services import Database, run_cli


def prune(db: Database, **env: str) -> Any:
    done = run_cli(db, "db", "prune", "--batch", "1", "--json", extra_env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def aged(db: Database, donation_id: str, age: str, status: str) -> None:
    db.execute(
        "UPDATE email_job SET created_at = now() - $2::text::interval, status = $3 "
        "WHERE donation_id = $1::text::uuid",
        donation_id,
        age,
        status,
    )


def test_prune_deletes_settled_email_jobs_past_the_retention_only(
    db: Database, factory: Factory, client: httpx.Client
) -> None:
    org = factory.tenant()
    campaign = factory.campaign(org, contact=unique("org"))
    old_sent, old_pending, skipped, link_alive = (
        pledge(client, org, campaign, contact=unique("d"))["id"] for _ in range(4)
    )
    aged(db, old_sent, "91 days", "sent")
    aged(db, old_pending, "91 days", "pending")
    aged(db, skipped, "89 days", "skipped")
    aged(db, link_alive, "40 days", "sent")

    done = prune(
        db, CONECTADES_EVENT_RETENTION_DAYS="30", CONECTADES_CONFIRM_LINK_TTL=str(50 * 86400)
    )
    assert done["email_jobs"] >= 4  # old_sent and skipped (two each); other tests' may go too
    assert jobs(db, old_sent) == {} and jobs(db, skipped) == {}
    assert sorted(jobs(db, old_pending)) == ["notice", "receipt"]  # never sent: kept
    assert sorted(jobs(db, link_alive)) == ["notice", "receipt"]  # its link is valid 50 days

    done = prune(db)  # defaults: 90 days
    assert sorted(jobs(db, link_alive)) == ["notice", "receipt"]
    assert sorted(jobs(db, old_pending)) == ["notice", "receipt"]
