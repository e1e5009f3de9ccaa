"""`conectades db prune` and the events outbox: events are kept at least 30 days
(CONECTADES_EVENT_RETENTION_DAYS, default 90, refused below 30), older ones go in
batches, and the feed no longer lists them."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from tests.factories import Factory
from tests.services import Database, run_cli

AGES = ("100 days", "91 days", "89 days", "31 days", "29 days", "1 hour")


def seed_events(db: Database, tenant_id: uuid.UUID) -> None:
    """One event per age, its data naming the age (the owner role bypasses RLS)."""
    for age in AGES:
        db.execute(
            "INSERT INTO event (tenant_id, type, resource_type, resource_id, data, occurred_at) "
            "VALUES ($1, 'campaign.updated', 'campaign', $2, jsonb_build_object('age', $3::text), "
            "now() - $4::text::interval)",
            tenant_id,
            uuid.uuid4(),
            age,
            age,
        )


def kept(db: Database, tenant_id: uuid.UUID) -> list[str]:
    rows = db.fetch(
        "SELECT data->>'age' AS age FROM event WHERE tenant_id = $1 ORDER BY occurred_at",
        tenant_id,
    )
    return [r["age"] for r in rows]


def prune(db: Database, **env: str) -> Any:
    done = run_cli(db, "db", "prune", "--batch", "1", "--json", extra_env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_prune_deletes_events_past_90_days_by_default_in_batches(
    db: Database, factory: Factory, client: httpx.Client
) -> None:
    tenant = factory.tenant()
    seed_events(db, tenant.id)
    done = prune(db)
    assert done["events"] >= 2  # ours; other tests' old events may go too
    assert kept(db, tenant.id) == ["89 days", "31 days", "29 days", "1 hour"]
    listed = client.get("/api/v1/events", headers=tenant.headers).json()["data"]
    assert [e["data"]["age"] for e in listed] == ["89 days", "31 days", "29 days", "1 hour"]
    assert prune(db)["events"] == 0


def test_prune_honours_a_shorter_retention_down_to_30_days(db: Database, factory: Factory) -> None:
    tenant = factory.tenant()
    seed_events(db, tenant.id)
    prune(db, CONECTADES_EVENT_RETENTION_DAYS="30")
    assert kept(db, tenant.id) == ["29 days", "1 hour"]


def test_prune_refuses_a_retention_under_30_days_and_deletes_nothing(
    db: Database, factory: Factory
) -> None:
    tenant = factory.tenant()
    seed_events(db, tenant.id)
    for value in ("29", "0", "-5", "abc"):
        done = run_cli(db, "db", "prune", extra_env={"CONECTADES_EVENT_RETENTION_DAYS": value})
        assert done.returncode != 0, value
        assert "CONECTADES_EVENT_RETENTION_DAYS must be at least 30 days" in done.stderr
        assert "Traceback" not in done.stderr
    assert len(kept(db, tenant.id)) == len(AGES)
