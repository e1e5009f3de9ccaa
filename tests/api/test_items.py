"""Partner API: the items (needs) of a campaign."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.api.test_campaigns import (
    BAD_BODIES,
    INJECTION,
    MB,
    UNICODE,
    add_donation,
    assert_field_error,
    assert_problem,
    campaign_row,
    count_items,
)
from tests.factories import UNKNOWN_ID, Factory, TenantCtx, bearer
from tests.services import Database


def items_url(campaign: dict[str, Any]) -> str:
    return f"/api/v1/campaigns/{campaign['id']}/items"


def item_url(campaign: dict[str, Any], index: int = 0) -> str:
    return f"{items_url(campaign)}/{campaign['items'][index]['id']}"


def item_row(db: Database, item_id: str) -> dict[str, Any] | None:
    row = db.fetchrow("SELECT * FROM campaign_item WHERE id = $1", uuid.UUID(item_id))
    return dict(row) if row else None


NEW_ITEM = {"name": "Cobertor", "unit": "unit", "quantity_requested": 30}


@pytest.fixture
def tenant(factory: Factory) -> TenantCtx:
    return factory.tenant()


@pytest.fixture
def other(factory: Factory) -> TenantCtx:
    return factory.tenant()


@pytest.fixture
def campaign(factory: Factory, tenant: TenantCtx) -> dict[str, Any]:
    return factory.campaign(tenant)  # Arroz 500 kg, Feijão 300 kg


# Create.


def test_create_item_returns_item_and_location(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    r = client.post(items_url(campaign), json=NEW_ITEM, headers=tenant.headers)
    assert r.status_code == 201, r.text
    got = r.json()
    assert r.headers["location"] == f"{items_url(campaign)}/{got['id']}"
    assert got == {
        "id": got["id"],
        **NEW_ITEM,
        "pending_quantity": 0,
        "pending_count": 0,
        "confirmed_quantity": 0,
        "delivered_quantity": 0,
        "contributed_quantity": 0,
        "contributed_count": 0,
        "progress": 0.0,
    }
    row = item_row(db, got["id"])
    assert row is not None and row["tenant_id"] == tenant.id
    assert str(row["campaign_id"]) == campaign["id"]
    c = client.get(f"/api/v1/campaigns/{campaign['id']}", headers=tenant.headers).json()
    assert [i["name"] for i in c["items"]] == ["Arroz", "Feijão", "Cobertor"]
    assert c["updated_at"] > campaign["updated_at"]


def test_create_item_stores_injection_and_unicode_verbatim(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    for name in (INJECTION, UNICODE):
        body = {**NEW_ITEM, "name": name}
        r = client.post(items_url(campaign), json=body, headers=tenant.headers)
        assert r.status_code == 201, r.text
        assert r.json()["name"] == name
        row = item_row(db, r.json()["id"])
        assert row is not None and row["name"] == name


@pytest.mark.parametrize("unit", ["kg", "unit", "l", "hour", "BRL", "USD"])
def test_create_item_accepts_every_unit(
    client: httpx.Client, tenant: TenantCtx, campaign: dict[str, Any], unit: str
) -> None:
    r = client.post(items_url(campaign), json={**NEW_ITEM, "unit": unit}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    assert r.json()["unit"] == unit


def test_create_item_beyond_100_is_409(
    factory: Factory, client: httpx.Client, db: Database, tenant: TenantCtx
) -> None:
    items = [{"name": f"n{n}", "unit": "kg", "quantity_requested": 1} for n in range(100)]
    c = factory.campaign(tenant, items=items)
    assert_problem(client.post(items_url(c), json=NEW_ITEM, headers=tenant.headers), 409)
    assert count_items(db, tenant) == 100


BAD_ITEM = [
    ({"name": 5}, "name"),
    ({"name": ""}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"name": None}, "name"),
    ({"name": "a\x00b"}, "name"),
    ({"unit": "KG"}, "unit"),
    ({"unit": "brl"}, "unit"),
    ({"unit": "kg "}, "unit"),
    ({"unit": 1}, "unit"),
    ({"unit": None}, "unit"),
    ({"quantity_requested": "5"}, "quantity_requested"),
    ({"quantity_requested": 0}, "quantity_requested"),
    ({"quantity_requested": -1}, "quantity_requested"),
    ({"quantity_requested": 1_000_000_001}, "quantity_requested"),
    ({"quantity_requested": 2**63}, "quantity_requested"),
    ({"quantity_requested": 1.5}, "quantity_requested"),
    ({"quantity_requested": 1.5e9}, "quantity_requested"),
    ({"quantity_requested": True}, "quantity_requested"),
    ({"quantity_requested": None}, "quantity_requested"),
    ({"id": str(uuid.uuid4())}, "id"),
    ({"campaign_id": str(uuid.uuid4())}, "campaign_id"),
    ({"confirmed_quantity": 5}, "confirmed_quantity"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_ITEM)
def test_create_item_with_bad_field_is_422_and_writes_nothing(
    client: httpx.Client,
    db: Database,
    tenant: TenantCtx,
    campaign: dict[str, Any],
    overrides: dict[str, Any],
    field: str,
) -> None:
    body = {**NEW_ITEM, **overrides}
    assert_field_error(client.post(items_url(campaign), json=body, headers=tenant.headers), field)
    assert count_items(db, tenant) == 2


def test_create_item_with_a_whole_float_quantity_takes_it_as_an_integer(
    client: httpx.Client, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    """JSON has one number type: 5.0 is the integer 5, as the schema's `integer` says
    (schemathesis sends such numbers); 5.5 and "5" stay 422 (BAD_ITEM)."""
    body = {**NEW_ITEM, "quantity_requested": 5.0}
    r = client.post(items_url(campaign), json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    assert r.json()["quantity_requested"] == 5 and '"quantity_requested":5,' in r.text


@pytest.mark.parametrize("missing", ["name", "unit", "quantity_requested"])
def test_create_item_without_required_field_is_422(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any], missing: str
) -> None:
    body = {k: v for k, v in NEW_ITEM.items() if k != missing}
    r = client.post(items_url(campaign), json=body, headers=tenant.headers)
    assert assert_field_error(r, missing)["errors"][0]["type"] == "missing"
    assert count_items(db, tenant) == 2


@pytest.mark.parametrize(("raw", "ctype", "status"), BAD_BODIES)
def test_create_item_with_malformed_body_is_4xx(
    client: httpx.Client,
    db: Database,
    tenant: TenantCtx,
    campaign: dict[str, Any],
    raw: bytes,
    ctype: str,
    status: int,
) -> None:
    headers = {**tenant.headers, "Content-Type": ctype}
    assert_problem(client.post(items_url(campaign), content=raw, headers=headers), status)
    assert count_items(db, tenant) == 2


def test_create_item_with_1mb_body_is_413(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    body = {**NEW_ITEM, "name": "x" * MB}
    assert_problem(client.post(items_url(campaign), json=body, headers=tenant.headers), 413)
    assert count_items(db, tenant) == 2


@pytest.mark.parametrize("bad_id", [UNKNOWN_ID, "not-a-uuid", "' OR 1=1 --"])
def test_create_item_on_unknown_or_malformed_campaign_is_404(
    client: httpx.Client, db: Database, tenant: TenantCtx, bad_id: str
) -> None:
    r = client.post(f"/api/v1/campaigns/{bad_id}/items", json=NEW_ITEM, headers=tenant.headers)
    assert_problem(r, 404)
    assert count_items(db, tenant) == 0


def test_create_item_on_other_tenants_campaign_is_404_and_writes_nothing(
    factory: Factory, client: httpx.Client, db: Database, tenant: TenantCtx, other: TenantCtx
) -> None:
    c = factory.campaign(other)
    before = campaign_row(db, c["id"])
    assert_problem(client.post(items_url(c), json=NEW_ITEM, headers=tenant.headers), 404)
    assert count_items(db, other) == 2 and count_items(db, tenant) == 0
    assert campaign_row(db, c["id"]) == before


# Update.


def test_update_item_changes_only_given_fields(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    sibling_before = item_row(db, campaign["items"][1]["id"])
    r = client.patch(item_url(campaign), json={"quantity_requested": 1000}, headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {**campaign["items"][0], "quantity_requested": 1000}
    r = client.patch(
        item_url(campaign), json={"name": UNICODE, "unit": "l"}, headers=tenant.headers
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        **campaign["items"][0],
        "quantity_requested": 1000,
        "name": UNICODE,
        "unit": "l",
    }
    row = item_row(db, campaign["items"][0]["id"])
    assert row is not None and (row["name"], row["unit"], row["quantity_requested"]) == (
        UNICODE,
        "l",
        1000,
    )
    assert item_row(db, campaign["items"][1]["id"]) == sibling_before


def test_update_item_with_empty_body_changes_nothing(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    before = item_row(db, campaign["items"][0]["id"])
    r = client.patch(item_url(campaign), json={}, headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert r.json() == campaign["items"][0]
    assert item_row(db, campaign["items"][0]["id"]) == before


def test_update_item_returns_totals_and_allows_quantity_change_with_donations(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    add_donation(db, tenant, campaign, 0, 100, "confirmed")
    add_donation(db, tenant, campaign, 0, 20, "pending")
    body = {"quantity_requested": 50, "name": "Arroz integral", "unit": "kg"}  # same unit
    r = client.patch(item_url(campaign), json=body, headers=tenant.headers)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["contributed_quantity"] == 100 and got["pending_quantity"] == 20
    assert got["progress"] == 2.0  # over-fulfilled needs are not capped per item


def test_update_item_unit_with_donations_is_409_and_unchanged(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    add_donation(db, tenant, campaign, 0, 5, "cancelled")
    before = item_row(db, campaign["items"][0]["id"])
    r = client.patch(
        item_url(campaign), json={"unit": "unit", "name": "other"}, headers=tenant.headers
    )
    assert_field_error(r, "unit", 409)
    assert item_row(db, campaign["items"][0]["id"]) == before
    # The other item has no donations: its unit can change.
    r = client.patch(item_url(campaign, 1), json={"unit": "unit"}, headers=tenant.headers)
    assert r.status_code == 200, r.text


BAD_ITEM_UPDATE = [
    *[(o, f) for o, f in BAD_ITEM if f in ("name", "unit", "quantity_requested", "id")],
    ({"campaign_id": str(uuid.uuid4())}, "campaign_id"),
]


@pytest.mark.parametrize(("body", "field"), BAD_ITEM_UPDATE)
def test_update_item_with_bad_field_is_422_and_changes_nothing(
    client: httpx.Client,
    db: Database,
    tenant: TenantCtx,
    campaign: dict[str, Any],
    body: dict[str, Any],
    field: str,
) -> None:
    before = item_row(db, campaign["items"][0]["id"])
    assert_field_error(client.patch(item_url(campaign), json=body, headers=tenant.headers), field)
    assert item_row(db, campaign["items"][0]["id"]) == before


@pytest.mark.parametrize(("raw", "ctype", "status"), BAD_BODIES)
def test_update_item_with_malformed_body_is_4xx(
    client: httpx.Client,
    db: Database,
    tenant: TenantCtx,
    campaign: dict[str, Any],
    raw: bytes,
    ctype: str,
    status: int,
) -> None:
    before = item_row(db, campaign["items"][0]["id"])
    headers = {**tenant.headers, "Content-Type": ctype}
    assert_problem(client.patch(item_url(campaign), content=raw, headers=headers), status)
    assert item_row(db, campaign["items"][0]["id"]) == before


def test_update_item_with_1mb_body_is_413(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    before = item_row(db, campaign["items"][0]["id"])
    r = client.patch(item_url(campaign), json={"name": "x" * MB}, headers=tenant.headers)
    assert_problem(r, 413)
    assert item_row(db, campaign["items"][0]["id"]) == before


def _bad_item_paths(campaign: dict[str, Any], sibling: dict[str, Any]) -> list[str]:
    base = "/api/v1/campaigns"
    real_item = campaign["items"][0]["id"]
    return [
        f"{base}/{campaign['id']}/items/{uuid.uuid4()}",  # unknown item
        f"{base}/{campaign['id']}/items/not-a-uuid",  # malformed item
        f"{base}/{uuid.uuid4()}/items/{real_item}",  # unknown campaign
        f"{base}/not-a-uuid/items/{real_item}",  # malformed campaign
        f"{base}/{sibling['id']}/items/{real_item}",  # item of another campaign
    ]


def test_update_item_with_unknown_or_mismatched_ids_is_404(
    factory: Factory, client: httpx.Client, db: Database, tenant: TenantCtx
) -> None:
    campaign, sibling = factory.campaign(tenant), factory.campaign(tenant)
    before = item_row(db, campaign["items"][0]["id"])
    for path in _bad_item_paths(campaign, sibling):
        assert_problem(client.patch(path, json={"name": "x"}, headers=tenant.headers), 404)
    assert item_row(db, campaign["items"][0]["id"]) == before


def test_update_item_of_other_tenant_is_404_and_unchanged(
    factory: Factory, client: httpx.Client, db: Database, tenant: TenantCtx, other: TenantCtx
) -> None:
    c = factory.campaign(other)
    before = item_row(db, c["items"][0]["id"])
    campaign_before = campaign_row(db, c["id"])
    r = client.patch(item_url(c), json={"name": "hijacked"}, headers=tenant.headers)
    assert_problem(r, 404)
    assert item_row(db, c["items"][0]["id"]) == before
    assert campaign_row(db, c["id"]) == campaign_before


# Delete.


def test_delete_item_removes_it(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    r = client.delete(item_url(campaign), headers=tenant.headers)
    assert r.status_code == 204 and r.content == b""
    assert item_row(db, campaign["items"][0]["id"]) is None
    c = client.get(f"/api/v1/campaigns/{campaign['id']}", headers=tenant.headers).json()
    assert [i["name"] for i in c["items"]] == ["Feijão"]
    assert_problem(client.delete(item_url(campaign), headers=tenant.headers), 404)


def test_delete_item_with_donations_is_409_and_kept(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    add_donation(db, tenant, campaign, 0, 5, "pending")
    before = item_row(db, campaign["items"][0]["id"])
    body = assert_problem(client.delete(item_url(campaign), headers=tenant.headers), 409)
    assert "donations" in body["detail"]
    assert item_row(db, campaign["items"][0]["id"]) == before


def test_delete_item_with_unknown_or_mismatched_ids_is_404(
    factory: Factory, client: httpx.Client, db: Database, tenant: TenantCtx
) -> None:
    campaign, sibling = factory.campaign(tenant), factory.campaign(tenant)
    for path in _bad_item_paths(campaign, sibling):
        assert_problem(client.delete(path, headers=tenant.headers), 404)
    assert count_items(db, tenant) == 4


def test_delete_item_of_other_tenant_is_404_and_kept(
    factory: Factory, client: httpx.Client, db: Database, tenant: TenantCtx, other: TenantCtx
) -> None:
    c = factory.campaign(other)
    before = item_row(db, c["items"][0]["id"])
    assert_problem(client.delete(item_url(c), headers=tenant.headers), 404)
    assert item_row(db, c["items"][0]["id"]) == before and count_items(db, other) == 2


# Credentials and scopes.

ROUTES = [
    ("POST", "collection", NEW_ITEM),
    ("PATCH", "item", {"name": "x"}),
    ("DELETE", "item", None),
]


def _call(
    client: httpx.Client,
    campaign: dict[str, Any],
    method: str,
    target: str,
    body: dict[str, Any] | None,
    headers: dict[str, str],
) -> httpx.Response:
    path = items_url(campaign) if target == "collection" else item_url(campaign)
    return client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "target", "body"), ROUTES)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer"}, bearer("cnd_live_unknown_" + "x" * 43), bearer("nope")],
    ids=["none", "empty-bearer", "unknown-key", "garbage"],
)
def test_item_routes_without_valid_credentials_are_401(
    client: httpx.Client,
    db: Database,
    tenant: TenantCtx,
    campaign: dict[str, Any],
    method: str,
    target: str,
    body: dict[str, Any] | None,
    headers: dict[str, str],
) -> None:
    before = item_row(db, campaign["items"][0]["id"])
    assert_problem(_call(client, campaign, method, target, body, headers), 401)
    assert item_row(db, campaign["items"][0]["id"]) == before and count_items(db, tenant) == 2


@pytest.mark.parametrize(("method", "target", "body"), ROUTES)
def test_item_routes_with_read_only_key_are_403(
    factory: Factory,
    client: httpx.Client,
    db: Database,
    tenant: TenantCtx,
    campaign: dict[str, Any],
    method: str,
    target: str,
    body: dict[str, Any] | None,
) -> None:
    before = item_row(db, campaign["items"][0]["id"])
    read_only = bearer(factory.key(tenant, ("read",)))
    assert_problem(_call(client, campaign, method, target, body, read_only), 403)
    assert item_row(db, campaign["items"][0]["id"]) == before and count_items(db, tenant) == 2
