"""A campaign page and its recent donations, as anonymous donors see them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from api.cache import PUBLIC_CACHE_CONTROL
from tests.factories import Factory, TenantCtx

NOW = datetime.now(UTC)


@pytest.fixture
def org(factory: Factory) -> TenantCtx:
    return factory.tenant()


@pytest.fixture
def campaign(factory: Factory, org: TenantCtx) -> dict[str, Any]:
    c = factory.campaign_row(
        org,
        title="Inverno sem frio",
        contact="WhatsApp 11 90000-0000",
        ends_at=NOW + timedelta(days=10),
        categories=["roupas"],
        items=(("Cobertor", "unit", 40), ("Doação em dinheiro", "BRL", 100_000)),
    )
    blankets, money = c["items"]
    factory.donation_row(org, c, 10, item_id=blankets["id"], status="pending")
    factory.donation_row(org, c, 3, item_id=blankets["id"], status="pending")
    factory.donation_row(org, c, 15, item_id=blankets["id"], status="confirmed")
    factory.donation_row(org, c, 5, item_id=blankets["id"], status="delivered")
    factory.donation_row(org, c, 7, item_id=blankets["id"], status="cancelled")
    factory.donation_row(org, c, 150_000, item_id=money["id"], status="confirmed")
    return c


def test_get_public_campaign_has_items_with_exact_totals(
    client: httpx.Client, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    r = client.get(f"/api/public/{org.slug}/campaigns/{campaign['slug']}")
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == PUBLIC_CACHE_CONTROL
    body = r.json()
    assert body["id"] == str(campaign["id"])
    assert body["tenant"] == {"slug": org.slug, "name": f"Org {org.slug}"}
    assert body["contact"] == "WhatsApp 11 90000-0000"
    assert datetime.fromisoformat(body["ends_at"]) == campaign["ends_at"]
    assert body["status"] == "published"
    assert body["accepting_pledges"] is True
    blankets, money = body["items"]
    assert blankets == {
        "id": str(campaign["items"][0]["id"]),
        "name": "Cobertor",
        "unit": "unit",
        "quantity_requested": 40,
        "pending_quantity": 13,
        "pending_count": 2,
        "confirmed_quantity": 15,
        "delivered_quantity": 5,
        "contributed_quantity": 20,
        "contributed_count": 2,
        "progress": 0.5,
    }
    assert money["contributed_quantity"] == 150_000
    assert money["progress"] == 1.5  # not capped per item
    assert body["progress"] == pytest.approx((0.5 + 1.0) / 2)  # capped in the mean


def test_get_public_campaign_never_shows_contact_data(
    client: httpx.Client, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    for path in ("", "/donations"):
        r = client.get(f"/api/public/{org.slug}/campaigns/{campaign['slug']}{path}")
        assert r.status_code == 200
        assert "99999-0000" not in r.text and "donor_contact" not in r.text


def test_get_public_campaign_without_items_has_zero_progress(
    client: httpx.Client, factory: Factory, org: TenantCtx
) -> None:
    c = factory.campaign_row(org, items=())
    body = client.get(f"/api/public/{org.slug}/campaigns/{c['slug']}").json()
    assert body["items"] == [] and body["progress"] == 0


def test_get_closed_campaign_shows_it_not_accepting_pledges(
    client: httpx.Client, factory: Factory, org: TenantCtx
) -> None:
    c = factory.campaign_row(org, status="closed")
    body = client.get(f"/api/public/{org.slug}/campaigns/{c['slug']}").json()
    assert body["status"] == "closed" and body["accepting_pledges"] is False


def test_get_past_deadline_campaign_is_not_accepting_pledges(
    client: httpx.Client, factory: Factory, org: TenantCtx
) -> None:
    c = factory.campaign_row(org, ends_at=NOW - timedelta(hours=1))
    body = client.get(f"/api/public/{org.slug}/campaigns/{c['slug']}").json()
    assert body["status"] == "published" and body["accepting_pledges"] is False


@pytest.mark.parametrize("suffix", ["", "/donations"])
def test_get_draft_campaign_is_404(
    client: httpx.Client, factory: Factory, org: TenantCtx, suffix: str
) -> None:
    c = factory.campaign_row(org, status="draft")
    r = client.get(f"/api/public/{org.slug}/campaigns/{c['slug']}{suffix}")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("suffix", ["", "/donations"])
def test_get_campaign_under_another_tenant_is_404(
    client: httpx.Client, factory: Factory, campaign: dict[str, Any], suffix: str
) -> None:
    other = factory.tenant()
    r = client.get(f"/api/public/{other.slug}/campaigns/{campaign['slug']}{suffix}")
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("tenant", "slug"),
    [
        ("no-such-org-zz", "x"),
        ("{org}", "no-such-campaign"),
        ("{org}", "UPPER"),
        ("{org}", "a" * 120),
        ("{org}", "x%27%3B%20DROP%20TABLE%20campaign%3B--"),
        ("{org}", "%F0%9F%98%80"),
    ],
)
def test_get_unknown_campaign_is_404(
    client: httpx.Client, org: TenantCtx, tenant: str, slug: str
) -> None:
    r = client.get(f"/api/public/{tenant.format(org=org.slug)}/campaigns/{slug}")
    assert r.status_code == 404
    r = client.get(f"/api/public/{tenant.format(org=org.slug)}/campaigns/{slug}/donations")
    assert r.status_code == 404


def test_list_public_donations_shows_display_names_and_hides_cancelled(
    client: httpx.Client, factory: Factory, org: TenantCtx
) -> None:
    c = factory.campaign_row(org, items=(("Arroz", "kg", 100),))
    named = factory.donation_row(org, c, 2, donor_name="Joana", message="Boa sorte!")
    anon = factory.donation_row(org, c, 3, donor_name="Carlos", anonymous=True)
    empty = factory.donation_row(org, c, 4, donor_name="  ")
    factory.donation_row(org, c, 5, donor_name="Desistiu", status="cancelled")
    r = client.get(f"/api/public/{org.slug}/campaigns/{c['slug']}/donations")
    assert r.status_code == 200
    assert r.headers["cache-control"] == PUBLIC_CACHE_CONTROL
    data = r.json()["data"]
    assert [d["id"] for d in data] == [str(empty["id"]), str(anon["id"]), str(named["id"])]
    assert [d["display_name"] for d in data] == ["Anonymous", "Anonymous", "Joana"]
    assert "Carlos" not in r.text and "Desistiu" not in r.text
    assert data[2] == {
        "id": str(named["id"]),
        "display_name": "Joana",
        "item_id": str(c["items"][0]["id"]),
        "item_name": "Arroz",
        "unit": "kg",
        "quantity": 2,
        "status": "pending",
        "message": "Boa sorte!",
        "created_at": named["created_at"].isoformat(),
    }


def test_list_public_donations_pages_each_once(
    client: httpx.Client, factory: Factory, org: TenantCtx
) -> None:
    c = factory.campaign_row(org)
    made = {str(factory.donation_row(org, c, i + 1)["id"]) for i in range(17)}
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        body = client.get(
            f"/api/public/{org.slug}/campaigns/{c['slug']}/donations", params=params
        ).json()
        seen += [d["id"] for d in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 17 and set(seen) == made


@pytest.mark.parametrize("cursor", ["garbage!", "WyJ4Il0", "WzEsMl0"])
def test_list_public_donations_with_bad_cursor_is_400(
    client: httpx.Client, org: TenantCtx, campaign: dict[str, Any], cursor: str
) -> None:
    r = client.get(
        f"/api/public/{org.slug}/campaigns/{campaign['slug']}/donations", params={"cursor": cursor}
    )
    assert r.status_code == 400
