"""A public page of a campaign's donations walks an index; it never sorts the campaign.

The plan of the statement the API sends (db/queries/public.py, the function of
migration 0008), as the API role, for a campaign with thousands of donations among
other tenants' donations.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from db.queries.public import SELECT_CAMPAIGN_DONATIONS
from tests.db.test_directory_explain import nodes
from tests.services import Database

N_DONATIONS = 2_000
PAGE = 21

TENANT = "INSERT INTO tenant (slug, name) VALUES ($1, 'Explain') RETURNING id"
CAMPAIGN = """
WITH c AS (INSERT INTO campaign (tenant_id, slug, title, status)
           VALUES ($1, $2, 'Explain', 'published') RETURNING tenant_id, id)
INSERT INTO campaign_item (tenant_id, campaign_id, name, unit, quantity_requested)
SELECT c.tenant_id, c.id, 'Item ' || g, 'kg', 1000000 FROM c, generate_series(1, $3::int) g
RETURNING tenant_id, campaign_id, id
"""
DONATIONS = """
INSERT INTO donation (tenant_id, campaign_id, item_id, quantity, donor_name, status,
                      created_at)
SELECT $1, $2, ($3::uuid[])[1 + g % cardinality($3::uuid[])], 1 + g % 7, 'Donor ' || g,
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
    for n in range(4):
        tid = db.fetchval(TENANT, f"explain-{uuid.uuid4().hex[:10]}")
        tenants.append(tid)
        for k in range(10):
            # About as many items as the load fixture (1,746), most of them elsewhere.
            rows = db.fetch(CAMPAIGN, tid, f"c-{k}", 4 if (n, k) == (0, 0) else 40)
            count = N_DONATIONS if (n, k) == (0, 0) else 300
            db.execute(DONATIONS, tid, rows[0]["campaign_id"], [r["id"] for r in rows], count)
            if (n, k) == (0, 0):
                tenant_id, campaign_id = tid, rows[0]["campaign_id"]
    db.execute("ANALYZE tenant, campaign, campaign_item, donation")
    yield tenant_id, campaign_id
    for tid in tenants:
        db.execute("DELETE FROM item_total_slot WHERE tenant_id = $1", tid)
        db.execute("DELETE FROM donation WHERE tenant_id = $1", tid)
        db.execute("DELETE FROM tenant WHERE id = $1", tid)


def nested_plan(db: Database, sql: str, args: list[Any], relation: str) -> dict[str, Any]:
    """Run `sql` as the API role with auto_explain on, and return the ANALYZE plan of
    the statement inside it that reads `relation` (the functions of migration 0008
    run their query as a nested statement, which EXPLAIN does not show)."""

    async def run() -> list[str]:
        conn = await asyncpg.connect(db.admin_dsn)
        logged: list[str] = []
        conn.add_log_listener(lambda _c, msg: logged.append(msg.message))
        try:
            await conn.execute("LOAD 'auto_explain'")
            for setting in (
                "auto_explain.log_min_duration = 0",
                "auto_explain.log_analyze = on",
                "auto_explain.log_nested_statements = on",
                "auto_explain.log_format = json",
                "client_min_messages = log",
                "ROLE conectades_api",
            ):
                await conn.execute(f"SET {setting}")
            await conn.fetch(sql, *args)
            return logged
        finally:
            await conn.close()

    for message in db.run(run()):
        text = message.split("plan:", 1)[-1]
        if f'"Relation Name": "{relation}"' in text:
            plan: dict[str, Any] = json.loads(text)["Plan"]
            return plan
    raise AssertionError(f"no logged plan reads {relation}")


def test_public_donations_first_page_walks_an_index(
    db: Database, campaign: tuple[uuid.UUID, uuid.UUID]
) -> None:
    """The first page is the one every visitor loads (deeper pages are rare, and the
    planner may rightly sort a short remaining range there)."""
    tenant_id, campaign_id = campaign
    slug = db.fetchval("SELECT slug FROM campaign WHERE id = $1", campaign_id)
    plan = nested_plan(
        db, SELECT_CAMPAIGN_DONATIONS, [tenant_id, slug, None, None, PAGE], "donation"
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


def test_public_donations_page_looks_up_only_its_items(
    db: Database, campaign: tuple[uuid.UUID, uuid.UUID]
) -> None:
    """Each donation of the page finds its item by key. The page's items were
    joined by hashing the items of every tenant, read by a sequential scan that
    evaluates the RLS policy on each row: 1.7 ms a page at 1,746 items in the load
    fixture, against 0.2 ms for the page itself (migration 0009)."""
    tenant_id, campaign_id = campaign
    slug = db.fetchval("SELECT slug FROM campaign WHERE id = $1", campaign_id)
    plan = nested_plan(
        db, SELECT_CAMPAIGN_DONATIONS, [tenant_id, slug, None, None, PAGE], "donation"
    )
    all_nodes = list(nodes(plan))
    described = [
        (n["Node Type"], n.get("Relation Name"), n.get("Index Name"), n["Actual Rows"])
        for n in all_nodes
    ]
    items = [n for n in all_nodes if n.get("Relation Name") == "campaign_item"]
    assert items, described
    assert all(n["Node Type"] in ("Index Scan", "Index Only Scan") for n in items), described
    assert all(n["Actual Rows"] <= 1 for n in items), described
