"""A page of the events feed walks the (tenant_id, xid, seq) index from the cursor
and stops after the page; it never sorts or reads the tenant's whole feed.

The plan of the statement the API sends (db/queries/events.py: SELECT_EVENTS), as
the API role inside a tenant transaction, for a tenant with 20,000 events among
other tenants' events."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from db.queries.events import EVENT_TYPES, SELECT_EVENTS, SELECT_HORIZON
from db.tenancy import begin_as_tenant
from tests.db.test_directory_explain import nodes
from tests.services import Database

PAGE = 21
TENANT = "INSERT INTO tenant (slug, name) VALUES ($1, 'Explain') RETURNING id"
# One transaction per batch, as the API writes them: many xids.
EVENTS = """
INSERT INTO event (tenant_id, type, resource_type, resource_id, data)
SELECT $1, ($2::text[])[1 + g % cardinality($2::text[])], 'donation', gen_random_uuid(),
       jsonb_build_object('n', g)
FROM generate_series(1, $3::int) g
"""


@pytest.fixture(scope="module")
def tenant(db: Database) -> Iterator[uuid.UUID]:
    tenants = [db.fetchval(TENANT, f"explain-ev-{uuid.uuid4().hex[:10]}") for _ in range(4)]
    for n, tid in enumerate(tenants):
        for _ in range(20 if n == 0 else 3):
            db.execute(EVENTS, tid, list(EVENT_TYPES), 1000)
    db.execute("ANALYZE event")
    yield tenants[0]
    for tid in tenants:
        db.execute("DELETE FROM tenant WHERE id = $1", tid)


def plan_of(db: Database, tenant_id: uuid.UUID, after: tuple[int, int], types: Any) -> Any:
    async def run() -> Any:
        conn = await asyncpg.connect(db.api_dsn)
        try:
            await conn.execute(begin_as_tenant(tenant_id))
            horizon = await conn.fetchval(SELECT_HORIZON)
            plan = await conn.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + SELECT_EVENTS,
                tenant_id,
                str(after[0]),
                after[1],
                horizon,
                types,
                None,
                PAGE,
            )
            await conn.execute("ROLLBACK")
            return json.loads(plan)[0]["Plan"]
        finally:
            await conn.close()

    return db.run(run())


def middle(db: Database, tenant_id: uuid.UUID) -> tuple[int, int]:
    row = db.fetchrow(
        "SELECT xid::text AS xid, seq FROM event WHERE tenant_id = $1 "
        "ORDER BY xid, seq OFFSET 10000 LIMIT 1",
        tenant_id,
    )
    assert row is not None
    return int(row["xid"]), row["seq"]


@pytest.mark.parametrize("where", ["start", "middle"])
def test_feed_page_walks_the_index_from_the_cursor(
    db: Database, tenant: uuid.UUID, where: str
) -> None:
    after = (0, 0) if where == "start" else middle(db, tenant)
    plan = plan_of(db, tenant, after, None)
    all_nodes = list(nodes(plan))
    described = [(n["Node Type"], n.get("Index Name"), n["Actual Rows"]) for n in all_nodes]
    scans = [n for n in all_nodes if n.get("Relation Name") == "event"]
    assert scans and all(n.get("Index Name") == "event_tenant_order_idx" for n in scans), described
    assert not [n for n in all_nodes if n["Node Type"] == "Sort"], described
    assert all(n["Actual Rows"] <= PAGE for n in scans), described
    assert plan["Actual Rows"] == PAGE


def test_feed_page_of_one_type_reads_about_a_page(db: Database, tenant: uuid.UUID) -> None:
    """One type in eight: the walk filters, and stops after the page."""
    plan = plan_of(db, tenant, middle(db, tenant), ["donation.confirmed"])
    all_nodes = list(nodes(plan))
    described = [
        (n["Node Type"], n.get("Index Name"), n["Actual Rows"], n.get("Rows Removed by Filter"))
        for n in all_nodes
    ]
    assert not [n for n in all_nodes if n["Node Type"] in ("Sort", "Seq Scan")], described
    read = sum(n["Actual Rows"] + n.get("Rows Removed by Filter", 0) for n in all_nodes)
    assert read <= 20 * PAGE, described
    assert plan["Actual Rows"] == PAGE
