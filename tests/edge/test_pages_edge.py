"""Donor pages through the real edge, from client addresses other than the edge's own:
cached like the public API, never sharing one visitor's pledge with another, and
gone within the microcache period when unpublished."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from infra.nginx import LocalNginx
from tests.edge.test_outside import GONE_WITHIN, gone_after, served, stranger
from tests.factories import Factory

_hosts = iter(range(150, 200))


def pledge_form(campaign: dict[str, Any], **overrides: str) -> dict[str, str]:
    data = {
        "item": campaign["items"][0]["id"],
        "quantidade": "5",
        "nome": "Ana",
        "contato": "ana@example.org",
        "mensagem": "",
    }
    data.update(overrides)
    return data


def test_pages_are_microcached_and_posts_never(factory: Factory, edge: LocalNginx) -> None:
    tenant = factory.tenant()
    campaign = factory.campaign(tenant)
    page = f"/o/{tenant.slug}/{campaign['slug']}"
    with stranger(edge, next(_hosts)) as visitor:
        for path in ("/", f"/o/{tenant.slug}", page, f"/?busca={uuid.uuid4().hex}"):
            r = served(visitor, path)
            assert r.headers["content-type"] == "text/html; charset=utf-8"
            assert r.headers["x-content-type-options"] == "nosniff"
        r = visitor.post(page, data=pledge_form(campaign))
        assert r.status_code == 303
        assert r.headers["X-Cache-Status"] == "BYPASS"
        assert visitor.get("/not-a-page").headers["X-Cache-Status"] == "BYPASS"
        big = visitor.get(page, headers={"Accept-Encoding": "gzip"})
        assert big.headers.get("content-encoding") == "gzip"


def test_two_visitors_of_the_cached_page_never_share_a_pledge(
    factory: Factory, db: Any, edge: LocalNginx
) -> None:
    tenant = factory.tenant()
    campaign = factory.campaign(tenant)
    page = f"/o/{tenant.slug}/{campaign['slug']}"
    with stranger(edge, next(_hosts)) as a, stranger(edge, next(_hosts)) as b:
        seen_by_a = served(a, page)
        seen_by_b = served(b, page)
        assert seen_by_a.content == seen_by_b.content  # one cached page for both
        first = a.post(page, data=pledge_form(campaign))
        reload = a.post(page, data=pledge_form(campaign))  # A's reload: the same pledge
        other_values = b.post(page, data=pledge_form(campaign, quantidade="9", nome="Bia"))
        same_values = b.post(page, data=pledge_form(campaign))  # B is not A
        answers = (first, reload, other_values, same_values)
        assert [r.status_code for r in answers] == [303] * 4
        locations = [r.headers["location"] for r in answers]
    assert locations[0] == locations[1]
    assert len({locations[0], locations[2], locations[3]}) == 3
    rows = db.fetch(
        "SELECT donor_name, quantity FROM donation WHERE campaign_id = $1 ORDER BY created_at",
        campaign["id"],
    )
    assert [(r["donor_name"], r["quantity"]) for r in rows] == [("Ana", 5), ("Bia", 9), ("Ana", 5)]


def test_unpublished_campaign_page_is_404_at_the_edge_within_two_seconds(
    factory: Factory, client: httpx.Client, edge: LocalNginx
) -> None:
    tenant = factory.tenant()
    campaign = factory.campaign(tenant)
    page = f"/o/{tenant.slug}/{campaign['slug']}"

    def unpublish() -> None:
        r = client.patch(
            f"/api/v1/campaigns/{campaign['id']}", json={"status": "draft"}, headers=tenant.headers
        )
        assert r.status_code == 200, r.text

    with stranger(edge, next(_hosts)) as visitor:
        took = gone_after(visitor, unpublish, page, f"{page}/obrigado")
        r = visitor.get(page)
    assert took <= GONE_WITHIN + 0.5, took
    assert "Página não encontrada" in r.text
