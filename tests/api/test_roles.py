"""Staff roles on the partner API: owner (everything), editor (campaigns and
donations), viewer (read). A staff access token works wherever an API key does."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.factories import Factory, TenantCtx, bearer
from tests.services import Database

PASSWORD = "staff password 123"


def staff_headers(
    client: httpx.Client, factory: Factory, tenant: TenantCtx, role: str
) -> dict[str, str]:
    username = f"{role}-{uuid.uuid4().hex[:10]}"
    factory.staff_user(tenant, username, role, PASSWORD)
    r = client.post(
        "/api/token/", json={"tenant": tenant.slug, "username": username, "password": PASSWORD}
    )
    assert r.status_code == 200, r.text
    return bearer(r.json()["access"])


def campaign_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "slug": f"c-{uuid.uuid4().hex[:12]}",
        "title": "Agasalhos para o inverno",
        "status": "published",
        "items": [{"name": "Cobertor", "unit": "unit", "quantity_requested": 30}],
    }
    body.update(overrides)
    return body


def assert_forbidden(r: httpx.Response) -> None:
    assert r.status_code == 403, r.text
    assert r.headers["content-type"] == "application/problem+json"


@pytest.fixture
def tenant(factory: Factory) -> TenantCtx:
    return factory.tenant()


def campaign_count(db: Database, tenant: TenantCtx) -> int:
    count: int = db.fetchval("SELECT count(*) FROM campaign WHERE tenant_id = $1", tenant.id)
    return count


# --- viewer ----------------------------------------------------------------------------


def test_viewer_can_list_and_read_campaigns(
    client: httpx.Client, factory: Factory, tenant: TenantCtx
) -> None:
    campaign = factory.campaign(tenant)
    headers = staff_headers(client, factory, tenant, "viewer")
    r = client.get("/api/v1/campaigns", headers=headers)
    assert r.status_code == 200, r.text
    assert [c["id"] for c in r.json()["data"]] == [campaign["id"]]
    r = client.get(f"/api/v1/campaigns/{campaign['id']}", headers=headers)
    assert r.status_code == 200, r.text
    r = client.get("/api/v1/donations", headers=headers)
    assert r.status_code == 200, r.text


def test_viewer_cannot_create_campaigns(
    client: httpx.Client, factory: Factory, db: Database, tenant: TenantCtx
) -> None:
    headers = staff_headers(client, factory, tenant, "viewer")
    r = client.post("/api/v1/campaigns", json=campaign_body(), headers=headers)
    assert_forbidden(r)
    assert "viewer" in r.json()["detail"]
    assert campaign_count(db, tenant) == 0


def test_viewer_cannot_change_campaigns_or_donations(
    client: httpx.Client, factory: Factory, db: Database, tenant: TenantCtx
) -> None:
    campaign = factory.campaign(tenant)
    donation = factory.donation(tenant, campaign)
    headers = staff_headers(client, factory, tenant, "viewer")
    url = f"/api/v1/campaigns/{campaign['id']}"
    assert_forbidden(client.patch(url, json={"title": "Mudou"}, headers=headers))
    assert_forbidden(client.delete(url, headers=headers))
    item_id = campaign["items"][0]["id"]
    assert_forbidden(
        client.post(f"{url}/donations", json={"item_id": item_id, "quantity": 1}, headers=headers)
    )
    assert_forbidden(client.post(f"/api/v1/donations/{donation['id']}/confirm", headers=headers))
    row = db.fetchrow("SELECT title FROM campaign WHERE id = $1", uuid.UUID(campaign["id"]))
    assert row is not None and row["title"] == campaign["title"]
    status = db.fetchval("SELECT status FROM donation WHERE id = $1", uuid.UUID(donation["id"]))
    assert status == "pending"
    campaign_id = uuid.UUID(campaign["id"])
    assert db.fetchval("SELECT count(*) FROM donation WHERE campaign_id = $1", campaign_id) == 1


def test_viewer_cannot_manage_keys(
    client: httpx.Client, factory: Factory, tenant: TenantCtx
) -> None:
    headers = staff_headers(client, factory, tenant, "viewer")
    assert_forbidden(client.get("/api/v1/keys", headers=headers))


# --- editor ----------------------------------------------------------------------------


def test_editor_can_create_and_update_campaigns_and_record_donations(
    client: httpx.Client, factory: Factory, tenant: TenantCtx
) -> None:
    headers = staff_headers(client, factory, tenant, "editor")
    r = client.post("/api/v1/campaigns", json=campaign_body(), headers=headers)
    assert r.status_code == 201, r.text
    campaign = r.json()
    url = f"/api/v1/campaigns/{campaign['id']}"
    r = client.patch(url, json={"title": "Agasalhos 2026"}, headers=headers)
    assert r.status_code == 200, r.text
    body = {"item_id": campaign["items"][0]["id"], "quantity": 3}
    r = client.post(f"{url}/donations", json=body, headers=headers)
    assert r.status_code == 201, r.text
    r = client.post(f"/api/v1/donations/{r.json()['id']}/confirm", headers=headers)
    assert r.status_code == 200, r.text


def test_editor_cannot_manage_keys(
    client: httpx.Client, factory: Factory, db: Database, tenant: TenantCtx
) -> None:
    headers = staff_headers(client, factory, tenant, "editor")
    r = client.get("/api/v1/keys", headers=headers)
    assert_forbidden(r)
    assert "editor" in r.json()["detail"]
    assert_forbidden(client.post("/api/v1/keys", json={"scopes": ["read"]}, headers=headers))
    assert db.fetchval("SELECT count(*) FROM api_key WHERE tenant_id = $1", tenant.id) == 1


# --- owner -----------------------------------------------------------------------------


def test_owner_can_list_issue_and_revoke_keys(
    client: httpx.Client, factory: Factory, tenant: TenantCtx
) -> None:
    headers = staff_headers(client, factory, tenant, "owner")
    r = client.get("/api/v1/keys", headers=headers)
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 1
    r = client.post("/api/v1/keys", json={"scopes": ["read"], "label": "site"}, headers=headers)
    assert r.status_code == 201, r.text
    issued = r.json()
    assert client.get("/api/v1/campaigns", headers=bearer(issued["key"])).status_code == 200
    r = client.delete(f"/api/v1/keys/{issued['id']}", headers=headers)
    assert r.status_code == 204, r.text


def test_owner_can_do_what_an_editor_can(
    client: httpx.Client, factory: Factory, tenant: TenantCtx
) -> None:
    headers = staff_headers(client, factory, tenant, "owner")
    r = client.post("/api/v1/campaigns", json=campaign_body(), headers=headers)
    assert r.status_code == 201, r.text


# --- another tenant ----------------------------------------------------------------------


def test_staff_token_on_other_tenants_campaign_is_404(
    client: httpx.Client, factory: Factory, db: Database, tenant: TenantCtx
) -> None:
    other = factory.tenant()
    theirs = factory.campaign(other)
    donation = factory.donation(other, theirs)
    headers = staff_headers(client, factory, tenant, "owner")
    url = f"/api/v1/campaigns/{theirs['id']}"

    assert client.get(url, headers=headers).status_code == 404
    assert client.patch(url, json={"title": "Hacked"}, headers=headers).status_code == 404
    assert client.delete(url, headers=headers).status_code == 404
    body = {"item_id": theirs["items"][0]["id"], "quantity": 1}
    assert client.post(f"{url}/donations", json=body, headers=headers).status_code == 404
    assert client.get(f"/api/v1/donations/{donation['id']}", headers=headers).status_code == 404
    r = client.post(f"/api/v1/donations/{donation['id']}/confirm", headers=headers)
    assert r.status_code == 404

    row = db.fetchrow("SELECT title FROM campaign WHERE id = $1", uuid.UUID(theirs["id"]))
    assert row is not None and row["title"] == theirs["title"]
    campaign_id = uuid.UUID(theirs["id"])
    assert db.fetchval("SELECT count(*) FROM donation WHERE campaign_id = $1", campaign_id) == 1
    status = db.fetchval("SELECT status FROM donation WHERE id = $1", uuid.UUID(donation["id"]))
    assert status == "pending"


def test_staff_token_lists_only_its_tenants_campaigns(
    client: httpx.Client, factory: Factory, tenant: TenantCtx
) -> None:
    other = factory.tenant()
    factory.campaign(other)
    mine = factory.campaign(tenant)
    headers = staff_headers(client, factory, tenant, "viewer")
    r = client.get("/api/v1/campaigns", headers=headers)
    assert r.status_code == 200, r.text
    assert [c["id"] for c in r.json()["data"]] == [mine["id"]]
