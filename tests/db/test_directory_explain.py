"""The directory's plans at 100k campaigns: a page reads an index range, never the table.

Runs EXPLAIN (ANALYZE) of the exact statements the API sends (db/queries/public.py),
as the API role, for the first page and a page deep in the listing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from db.queries.public import DirectoryFilter, Order, directory_query
from tests.services import Database

N_CAMPAIGNS = 100_000
PAGE = 21  # limit + 1, as the API fetches

BULK_SQL = """
INSERT INTO campaign (tenant_id, slug, title, description, categories, location,
                      starts_at, ends_at, status, created_at)
SELECT ($1::uuid[])[1 + g % cardinality($1::uuid[])],
       'bulk-' || g,
       'Campanha ' || md5(g::text),
       'Descrição ' || md5((g * 7)::text),
       ARRAY[(ARRAY['alimentos', 'roupas', 'brinquedos', 'serviços', 'outros'])[1 + g % 5]],
       (ARRAY['Centro', 'Pinheiros', 'Mooca', 'Lapa'])[1 + g % 4],
       now() - interval '400 days',
       CASE WHEN g % 3 = 0 THEN NULL ELSE now() + ((g % 400) - 100) * interval '1 day' END,
       CASE WHEN g % 10 = 0 THEN 'draft' ELSE 'published' END,
       now() - g * interval '1 minute'
FROM generate_series(1, $2::int) g
"""

# Where a deep page starts: the sort key of the row half-way through the listing.
DEEP_KEY = {
    "recent": "SELECT created_at, id FROM public_campaign "
    "ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1",
    "oldest": "SELECT created_at, id FROM public_campaign "
    "ORDER BY created_at, id OFFSET $1 LIMIT 1",
    "deadline": "SELECT deadline_key, id FROM public_campaign "
    "ORDER BY deadline_key, id OFFSET $1 LIMIT 1",
}
INDEX = {
    "recent": "campaign_public_recent_idx",
    "oldest": "campaign_public_recent_idx",
    "deadline": "campaign_public_deadline_idx",
}
TENANT_INDEX = {
    "recent": "campaign_tenant_recent_idx",  # from 0001: (tenant_id, created_at, id)
    "oldest": "campaign_tenant_recent_idx",
    "deadline": "campaign_public_tenant_deadline_idx",
}


@pytest.fixture(scope="module")
def bulk(db: Database) -> Iterator[list[uuid.UUID]]:
    tenants = [
        db.fetchval(
            "INSERT INTO tenant (slug, name) VALUES ($1, $2) RETURNING id",
            f"bulk-{uuid.uuid4().hex[:10]}",
            f"Bulk {i}",
        )
        for i in range(4)
    ]
    db.execute(BULK_SQL, tenants, N_CAMPAIGNS)
    # A small tenant among the big ones: its pages must not walk the others' rows.
    small = db.fetchval(
        "INSERT INTO tenant (slug, name) VALUES ($1, 'Small') RETURNING id",
        f"bulk-{uuid.uuid4().hex[:10]}",
    )
    db.execute(BULK_SQL, [small], 2_000)
    tenants.append(small)
    db.execute("ANALYZE campaign")
    db.execute("ANALYZE tenant")
    yield tenants
    db.execute("DELETE FROM tenant WHERE id = ANY($1::uuid[])", tenants)
    db.execute("ANALYZE campaign")


def explain(db: Database, sql: str, args: list[Any]) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, FORMAT JSON) as the API role; the top plan node."""

    async def run() -> str:
        conn = await asyncpg.connect(db.api_dsn)
        try:
            out: str = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, *args)
            return out
        finally:
            await conn.close()

    plan: dict[str, Any] = json.loads(db.run(run()))[0]["Plan"]
    return plan


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def assert_index_range(plan: dict[str, Any], index: str) -> None:
    all_nodes = list(nodes(plan))
    scans = [n for n in all_nodes if n.get("Index Name") == index]
    assert scans, f"{index} not used: {[(n['Node Type'], n.get('Index Name')) for n in all_nodes]}"
    assert all(n["Node Type"] in ("Index Scan", "Index Only Scan") for n in scans)
    # A page reads about a page of rows, not the table.
    assert all(n["Actual Rows"] <= 10 * PAGE for n in scans)
    assert not [n for n in all_nodes if n["Node Type"] == "Sort"]
    assert not [
        n for n in all_nodes if n["Node Type"] == "Seq Scan" and n["Relation Name"] == "campaign"
    ]


def deep_key(db: Database, order: str, offset: int) -> tuple[Any, uuid.UUID]:
    row = db.fetchrow(DEEP_KEY[order], offset)
    assert row is not None
    return row[0], row[1]


@pytest.mark.parametrize("order", ["recent", "oldest", "deadline"])
def test_directory_pages_use_an_index_range_at_100k_campaigns(
    db: Database, bulk: list[uuid.UUID], order: Order
) -> None:
    for status in ("all", "active"):
        f = DirectoryFilter(order=order, status=status)  # type: ignore[arg-type]
        first = explain(db, *directory_query(f, after=None, limit=PAGE))
        assert_index_range(first, INDEX[order])
        deep = explain(db, *directory_query(f, after=deep_key(db, order, 50_000), limit=PAGE))
        assert_index_range(deep, INDEX[order])
        assert deep["Actual Rows"] == PAGE


@pytest.mark.parametrize("order", ["recent", "oldest", "deadline"])
def test_tenant_directory_pages_use_an_index_range_at_100k_campaigns(
    db: Database, bulk: list[uuid.UUID], order: Order
) -> None:
    f = DirectoryFilter(order=order, status="all", tenant_id=bulk[-1])
    first = explain(db, *directory_query(f, after=None, limit=PAGE))
    assert_index_range(first, TENANT_INDEX[order])
    row = db.fetchrow(
        DEEP_KEY[order].replace(
            "FROM public_campaign", "FROM public_campaign WHERE tenant_id = $2"
        ),
        1_000,
        bulk[-1],
    )
    assert row is not None
    deep = explain(db, *directory_query(f, after=(row[0], row[1]), limit=PAGE))
    assert_index_range(deep, TENANT_INDEX[order])


def test_directory_search_uses_the_trigram_index_at_100k_campaigns(
    db: Database, bulk: list[uuid.UUID]
) -> None:
    term = db.fetchval("SELECT substr(md5('4242'), 3, 6)")  # in one bulk title
    f = DirectoryFilter(order="recent", status="all", q=term.upper())
    plan = explain(db, *directory_query(f, after=None, limit=PAGE))
    all_nodes = list(nodes(plan))
    assert any(n.get("Index Name") == "campaign_public_search_idx" for n in all_nodes)
    assert not [
        n for n in all_nodes if n["Node Type"] == "Seq Scan" and n["Relation Name"] == "campaign"
    ]
    assert plan["Actual Rows"] >= 1


def _sums_slots(plan: dict[str, Any]) -> bool:
    return any(n.get("Relation Name") == "item_total_slot" for n in nodes(plan))


@pytest.mark.parametrize("order", ["recent", "deadline", "progress"])
def test_without_progress_the_directory_sums_no_slots(
    db: Database, bulk: list[uuid.UUID], order: Order
) -> None:
    """The old listing (500 campaigns a page) reads the items' totals anyway and
    computes progress from them: its directory statement must not sum every
    campaign's item slots as well, except to order by progress."""
    f = DirectoryFilter(order=order, status="all")
    with_progress = explain(db, *directory_query(f, after=None, limit=500))
    without = explain(db, *directory_query(f, after=None, limit=500, progress=False))
    assert _sums_slots(with_progress)
    assert _sums_slots(without) == (order == "progress")
