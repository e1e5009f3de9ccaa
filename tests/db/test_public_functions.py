"""The donor page's one statement (db/queries/public.select_campaign_view) names the
functions' columns by position: the names must be the functions' own, and its answer
must be what the two statements it replaces answer."""

from __future__ import annotations

from typing import Any

import asyncpg

from db.queries import public as pq
from tests.factories import Factory
from tests.services import Database


async def _columns(db: Database, call: str) -> tuple[str, ...]:
    conn = await asyncpg.connect(db.api_dsn)
    try:
        stmt = await conn.prepare(f"SELECT * FROM {call}")
        return tuple(a.name for a in stmt.get_attributes())
    finally:
        await conn.close()


def test_the_view_names_the_functions_columns(db: Database) -> None:
    page = db.run(_columns(db, "public_campaign_page($1, $2)"))
    donations = db.run(_columns(db, "public_campaign_donations($1, $2, $3, $4, $5)"))
    assert page == pq.PAGE_COLUMNS
    assert donations == pq.DONATION_COLUMNS


async def _both(db: Database, tenant_id: Any, slug: str, limit: int) -> tuple[Any, Any]:
    conn = await asyncpg.connect(db.api_dsn)
    try:
        view = await pq.select_campaign_view(conn, tenant_id=tenant_id, slug=slug, limit=limit)
        row, items = await pq.select_campaign_page(conn, tenant_id=tenant_id, slug=slug)
        status, rows = await pq.select_campaign_donations(
            conn, tenant_id=tenant_id, slug=slug, after=None, limit=limit
        )
        return view, (row, items, status, rows)
    finally:
        await conn.close()


def test_the_view_answers_what_the_two_statements_answer(db: Database, factory: Factory) -> None:
    tenant = factory.tenant()
    campaign = factory.campaign_row(tenant, items=(("Arroz", "kg", 100), ("Feijão", "kg", 50)))
    for n in range(1, 8):
        factory.donation_row(tenant, campaign, n, anonymous=n % 3 == 0, message=f"m{n}")
    factory.donation_row(tenant, campaign, 9, status="cancelled")
    view, (row, items, status, rows) = db.run(_both(db, tenant.id, campaign["slug"], 5))
    assert row is not None and view.campaign == dict(row)
    assert view.items == items and [i["name"] for i in items] == ["Arroz", "Feijão"]
    assert items[0]["pending_quantity"] == sum(range(1, 8))
    assert view.donation_status == status == "published"
    assert view.donations == [dict(r) for r in rows]
    assert [d["quantity"] for d in view.donations] == [7, 6, 5, 4, 3]


def test_the_view_of_a_campaign_without_items_or_donations(db: Database, factory: Factory) -> None:
    tenant = factory.tenant()
    campaign = factory.campaign_row(tenant, items=())
    view, _ = db.run(_both(db, tenant.id, campaign["slug"], 5))
    assert view.campaign is not None and view.campaign["slug"] == campaign["slug"]
    assert (view.items, view.donation_status, view.donations) == ([], "published", [])


def test_the_view_of_an_unknown_or_other_tenants_campaign_is_empty(
    db: Database, factory: Factory
) -> None:
    owner, other = factory.tenant(), factory.tenant()
    campaign = factory.campaign_row(owner)
    factory.donation_row(owner, campaign, 3)
    for tenant_id, slug in ((owner.id, "no-such-slug"), (other.id, campaign["slug"])):
        view, _ = db.run(_both(db, tenant_id, slug, 5))
        assert (view.campaign, view.items, view.donation_status, view.donations) == (
            None,
            [],
            None,
            [],
        )
