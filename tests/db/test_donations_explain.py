"""A public page of a campaign's donations reads about a page of rows, not the campaign.

EXPLAIN (ANALYZE) of the exact statement the API sends (db/queries/public.py), as
the API role inside its tenant's transaction, for a campaign with thousands of
donations among other tenants' donations.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from db.queries.public import SELECT_DONATIONS
from tests.db.test_directory_explain import nodes
from tests.services import Database

N_DONATIONS = 3_000
PAGE = 21

TENANT = "INSERT INTO tenant (slug, name) VALUES ($1, 'Explain') RETURNING id"
CAMPAIGN = """
WITH c AS (INSERT INTO campaign (tenant_id, slug, title, status)
           VALUES ($1, $2, 'Explain', 'published') RETURNING tenant_id, id)
INSERT INTO campaign_item (tenant_id, campaign_id, name, unit, quantity_requested)
SELECT c.tenant_id, c.id, 'Item ' || g, 'kg', 1000000 FROM c, generate_series(1, 4) g
RETURNING tenant_id, campaign_id, id
"""
DONATIONS = """
INSERT INTO donation (tenant_id, campaign_id, item_id, quantity, donor_name, status,
                      created_at)
SELECT $1, $2, ($3::uuid[])[1 + g % 4], 1 + g % 7, 'Donor ' || g,
       CASE WHEN g % 10 = 0 THEN 'cancelled' ELSE 'pending' END,
       now() - g * interval '1 second'
FROM generate_series(1, $4::int) g
"""


@pytest.fixture(scope="module")
def campaign(db: Database) -> Iterator[tuple[uuid.UUID, uuid.UUID]]:
    # As in the load runs: tenants with many campaigns, one of them popular. With the
    # tenant in the statement and again in the RLS policy, the planner used to expect
    # a few dozen of its donations and sorted all of them for every page.
    tenants = []
    for n in range(6):
        tid = db.fetchval(TENANT, f"explain-{uuid.uuid4().hex[:10]}")
        tenants.append(tid)
        for k in range(15):
            rows = db.fetch(CAMPAIGN, tid, f"c-{k}")
            count = N_DONATIONS if (n, k) == (0, 0) else 60
            db.execute(DONATIONS, tid, rows[0]["campaign_id"], [r["id"] for r in rows], count)
            if (n, k) == (0, 0):
                tenant_id, campaign_id = tid, rows[0]["campaign_id"]
    db.execute("ANALYZE tenant, campaign, campaign_item, donation")
    yield tenant_id, campaign_id
    for tid in tenants:
        db.execute("DELETE FROM item_total_slot WHERE tenant_id = $1", tid)
        db.execute("DELETE FROM donation WHERE tenant_id = $1", tid)
        db.execute("DELETE FROM tenant WHERE id = $1", tid)


def explain_as_tenant(db: Database, tenant_id: uuid.UUID, sql: str, args: list[Any]) -> Any:
    async def run() -> str:
        conn = await asyncpg.connect(db.api_dsn)
        try:
            async with conn.transaction():
                await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant_id))
                out: str = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, *args)
                return out
        finally:
            await conn.close()

    return json.loads(db.run(run()))[0]["Plan"]


@pytest.mark.parametrize("deep", [False, True])
def test_public_donations_page_reads_a_page_of_rows(
    db: Database, campaign: tuple[uuid.UUID, uuid.UUID], deep: bool
) -> None:
    tenant_id, campaign_id = campaign
    after: tuple[Any, Any] = (None, None)
    if deep:
        row = db.fetchrow(
            "SELECT created_at, id FROM donation WHERE campaign_id = $1 "
            "ORDER BY created_at DESC, id DESC OFFSET 2000 LIMIT 1",
            campaign_id,
        )
        assert row is not None
        after = (row["created_at"], row["id"])
    plan = explain_as_tenant(
        db, tenant_id, SELECT_DONATIONS, [tenant_id, campaign_id, *after, PAGE]
    )
    all_nodes = list(nodes(plan))
    scans = [n for n in all_nodes if n.get("Relation Name") == "donation"]
    described = [(n["Node Type"], n.get("Index Name"), n["Actual Rows"]) for n in all_nodes]
    assert scans, described
    assert all(n["Node Type"] == "Index Scan" for n in scans), described
    assert all(n.get("Index Name") == "donation_campaign_recent_idx" for n in scans), described
    # About a page of donations (cancelled ones are skipped), not the campaign's thousands.
    assert all(n["Actual Rows"] + n.get("Rows Removed by Filter", 0) <= 2 * PAGE for n in scans), (
        described
    )
    assert plan["Actual Rows"] == PAGE
