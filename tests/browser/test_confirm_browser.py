"""The emailed "Confirmar recebimento" page in a real browser through the edge: axe
finds no serious or critical violation on the page, after confirming, or on a bad
link's page; the button works with JavaScript off; the edge never caches it."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from infra.nginx import LocalNginx
from notify import links
from tests.browser.test_pages_browser import axe_violations
from tests.factories import Factory, TenantCtx
from tests.services import LINK_SECRET, Database


@pytest.fixture
def org(factory: Factory) -> TenantCtx:
    return factory.tenant()


def notice_link(client: httpx.Client, db: Database, org: TenantCtx, factory: Factory) -> str:
    """A pledge's notice link, signed as the worker signs it (its job's id and time)."""
    campaign = factory.campaign(org, title=f"Cobertores {uuid.uuid4().hex[:6]}",
                                contact="ong@example.org")  # fmt: skip
    r = client.post(
        f"/api/public/{org.slug}/campaigns/{campaign['slug']}/donations",
        json={"item_id": campaign["items"][0]["id"], "quantity": 3, "donor_name": "Rita",
              "donor_contact": "rita@example.org"},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    job = db.fetchrow(
        "SELECT id, created_at FROM email_job WHERE donation_id = $1 AND kind = 'notice'",
        uuid.UUID(r.json()["id"]),
    )
    assert job is not None
    token = links.sign(LINK_SECRET, job_id=job["id"], tenant_id=org.id,
                       issued=job["created_at"], ttl=3600)  # fmt: skip
    return links.PATH + token


def test_confirm_page_passes_axe_and_confirms(
    page: Page, client: httpx.Client, db: Database, org: TenantCtx, factory: Factory,
    page_edge: LocalNginx,
) -> None:  # fmt: skip
    path = notice_link(client, db, org, factory)
    r = httpx.get(page_edge.url + path)
    assert r.headers["x-cache-status"] not in ("HIT", "STALE")
    assert r.headers["cache-control"] == "private, no-store"
    page.goto(path)
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirmar recebimento")
    assert axe_violations(page) == []
    page.get_by_role("button", name="Confirmar recebimento").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Recebimento confirmado")
    assert axe_violations(page) == []
    page.goto(path + "x")
    expect(page.get_by_role("heading", level=1)).to_have_text("Link inválido")
    assert axe_violations(page) == []


def test_confirm_button_works_without_javascript(
    page_without_js: Page, client: httpx.Client, db: Database, org: TenantCtx, factory: Factory
) -> None:
    path = notice_link(client, db, org, factory)
    page_without_js.goto(path)
    page_without_js.get_by_role("button", name="Confirmar recebimento").click()
    expect(page_without_js.get_by_role("heading", level=1)).to_have_text("Recebimento confirmado")


def test_confirm_page_is_never_served_from_the_edge_cache(
    client: httpx.Client, db: Database, org: TenantCtx, factory: Factory, page_edge: LocalNginx
) -> None:
    path = notice_link(client, db, org, factory)
    seen: list[Any] = []
    for _ in range(3):
        r = httpx.get(page_edge.url + path)
        assert r.status_code == 200
        seen.append(r.headers.get("x-cache-status"))
    assert not {"HIT", "STALE", "UPDATING"} & set(seen), seen
    r = httpx.post(page_edge.url + path)
    assert r.status_code == 303
    after = httpx.get(page_edge.url + path)
    assert "Recebimento confirmado" in after.text
