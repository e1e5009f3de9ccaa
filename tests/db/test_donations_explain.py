"""A public page of a campaign's donations walks an index; it never sorts the campaign.

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

N_DONATIONS = 2_000
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
    # As in the load runs: tenants with many campaigns, one of them popular but far
    # from all of its tenant's donations (so walking the tenant's index is no page read). With the
    # tenant in the statement and again in the RLS policy, the planner used to expect
    # a few dozen of its donations and sorted all of them for every page.
    tenants = []
    for n in range(6):
        tid = db.fetchval(TENANT, f"explain-{uuid.uuid4().hex[:10]}")
        tenants.append(tid)
        for k in range(15):
            rows = db.fetch(CAMPAIGN, tid, f"c-{k}")
            count = N_DONATIONS if (n, k) == (0, 0) else 400
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


def test_public_donations_first_page_walks_an_index(
    db: Database, campaign: tuple[uuid.UUID, uuid.UUID]
) -> None:
    """The first page is the one every visitor loads (deeper pages are rare, and the
    planner may rightly sort a short remaining range there)."""
    tenant_id, campaign_id = campaign
    plan = explain_as_tenant(
        db, tenant_id, SELECT_DONATIONS, [tenant_id, campaign_id, None, None, PAGE]
    )
    all_nodes = list(nodes(plan))
    scans = [n for n in all_nodes if n.get("Relation Name") == "donation"]
    described = [
        (n["Node Type"], n.get("Index Name"), n["Actual Rows"], n.get("Rows Removed by Filter"))
        for n in all_nodes
    ]
    assert scans, described
    assert all(n["Node Type"] == "Index Scan" for n in scans), described
    # An ordered walk that stops after the page: no sort of the campaign's donations
    # (a Sort may order the joined page itself: it then holds PAGE rows).
    sorts = [n for n in all_nodes if n["Node Type"] == "Sort"]
    assert all(n["Plans"][0]["Actual Rows"] <= PAGE for n in sorts), described
    assert plan["Actual Rows"] == PAGE
