"""Partner API: campaigns (list, create with items, read, update, delete)."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.factories import UNKNOWN_ID, Factory, TenantCtx, bearer
from tests.services import Database

URL = "/api/v1/campaigns"
PROBLEM = "application/problem+json"
INJECTION = "Robert'); DROP TABLE campaign;--"
UNICODE = "Feijão 🍚 — ação ☃ 𝄞"
MB = 1024 * 1024


# Helpers shared with test_items.py.


def assert_problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body


def assert_field_error(r: httpx.Response, field: str, status: int = 422) -> dict[str, Any]:
    body = assert_problem(r, status)
    fields = [e["field"] for e in body["errors"]]
    assert field in fields, body
    return body


def campaign_row(db: Database, campaign_id: str | uuid.UUID) -> dict[str, Any] | None:
    row = db.fetchrow("SELECT * FROM campaign WHERE id = $1", uuid.UUID(str(campaign_id)))
    return dict(row) if row else None


def count_campaigns(db: Database, tenant: TenantCtx) -> int:
    count: int = db.fetchval("SELECT count(*) FROM campaign WHERE tenant_id = $1", tenant.id)
    return count


def count_items(db: Database, tenant: TenantCtx) -> int:
    count: int = db.fetchval("SELECT count(*) FROM campaign_item WHERE tenant_id = $1", tenant.id)
    return count


def add_donation(
    db: Database,
    tenant: TenantCtx,
    campaign: dict[str, Any],
    item_index: int = 0,
    quantity: int = 5,
    status: str = "pending",
) -> None:
    """A donation row written as the owner (donation routes are another module's)."""
    db.execute(
        "INSERT INTO donation (tenant_id, campaign_id, item_id, quantity, status) "
        "VALUES ($1, $2, $3, $4, $5)",
        tenant.id,
        uuid.UUID(campaign["id"]),
        uuid.UUID(campaign["items"][item_index]["id"]),
        quantity,
        status,
    )


def valid_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "slug": f"c-{uuid.uuid4().hex[:12]}",
        "title": "Inverno solidário",
        "items": [{"name": "Cobertor", "unit": "unit", "quantity_requested": 30}],
    }
    body.update(overrides)
    return body


@pytest.fixture
def tenant(factory: Factory) -> TenantCtx:
    return factory.tenant()


@pytest.fixture
def other(factory: Factory) -> TenantCtx:
    return factory.tenant()


# Create.


def test_create_campaign_returns_full_shape_and_location(
    factory: Factory, client: httpx.Client, db: Database, tenant: TenantCtx
) -> None:
    c = factory.campaign(tenant, image_url="https://example.org/a.png")
    assert set(c) == {
        "id",
        "slug",
        "title",
        "subtitle",
        "description",
        "image_url",
        "categories",
        "location",
        "contact",
        "starts_at",
        "ends_at",
        "status",
        "created_at",
        "updated_at",
        "items",
        "progress",
    }
    assert c["status"] == "published" and c["progress"] == 0
    assert [i["name"] for i in c["items"]] == ["Arroz", "Feijão"]
    assert set(c["items"][0]) == {
        "id",
        "name",
        "unit",
        "quantity_requested",
        "pending_quantity",
        "pending_count",
        "confirmed_quantity",
        "delivered_quantity",
        "contributed_quantity",
        "contributed_count",
        "progress",
    }
    row = campaign_row(db, c["id"])
    assert row is not None and row["tenant_id"] == tenant.id and row["title"] == c["title"]
    assert count_items(db, tenant) == 2


def test_create_campaign_sets_location_header_and_defaults(
    client: httpx.Client, tenant: TenantCtx
) -> None:
    r = client.post(URL, json={"slug": "minimal", "title": "T"}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    c = r.json()
    assert r.headers["location"] == f"{URL}/{c['id']}"
    assert r.headers["content-type"] == "application/json"
    assert c["status"] == "draft" and c["items"] == [] and c["categories"] == []
    assert c["image_url"] is None and c["subtitle"] == "" and c["progress"] == 0
    assert client.get(r.headers["location"], headers=tenant.headers).json() == c


def test_create_campaign_with_100_items(
    client: httpx.Client, db: Database, tenant: TenantCtx
) -> None:
    items = [{"name": f"item {n}", "unit": "kg", "quantity_requested": n + 1} for n in range(100)]
    r = client.post(URL, json=valid_body(items=items), headers=tenant.headers)
    assert r.status_code == 201, r.text
    assert [i["name"] for i in r.json()["items"]] == [i["name"] for i in items]
    assert count_items(db, tenant) == 100


def test_create_campaign_stores_injection_and_unicode_verbatim(
    client: httpx.Client, db: Database, tenant: TenantCtx
) -> None:
    body = valid_body(
        title=INJECTION,
        subtitle=UNICODE,
        description=f"{INJECTION}\n{UNICODE}",
        categories=[UNICODE[:50], "50%_off\\"],
        location="São Paulo 🌆",
        contact="' OR 1=1 --",
        items=[{"name": UNICODE, "unit": "BRL", "quantity_requested": 1}],
    )
    r = client.post(URL, json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    c = r.json()
    row = campaign_row(db, c["id"])
    assert row is not None
    for field in ("title", "subtitle", "description", "categories", "location", "contact"):
        assert c[field] == body[field] == row[field]
    assert c["items"][0]["name"] == UNICODE
    assert db.fetchval("SELECT count(*) FROM campaign") >= 1  # the table is still there


def test_create_campaign_with_taken_slug_is_409_naming_slug(
    factory: Factory, client: httpx.Client, db: Database, tenant: TenantCtx, other: TenantCtx
) -> None:
    factory.campaign(tenant, slug="same-slug")
    r = client.post(URL, json=valid_body(slug="same-slug"), headers=tenant.headers)
    assert_field_error(r, "slug", 409)
    assert count_campaigns(db, tenant) == 1 and count_items(db, tenant) == 2
    # Slugs are unique per tenant only.
    factory.campaign(other, slug="same-slug")


def test_create_campaign_with_ends_before_starts_is_422(
    client: httpx.Client, db: Database, tenant: TenantCtx
) -> None:
    body = valid_body(starts_at="2026-05-02T00:00:00Z", ends_at="2026-05-01T00:00:00Z")
    assert_field_error(client.post(URL, json=body, headers=tenant.headers), "ends_at")
    body = valid_body(starts_at="2026-05-01T00:00:00Z", ends_at="2026-05-01T00:00:00Z")
    assert_field_error(client.post(URL, json=body, headers=tenant.headers), "ends_at")
    assert count_campaigns(db, tenant) == 0


def test_create_campaign_keeps_timestamps(client: httpx.Client, tenant: TenantCtx) -> None:
    body = valid_body(starts_at="2026-05-01T10:00:00-03:00", ends_at="2026-06-01T00:00:00Z")
    r = client.post(URL, json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    c = r.json()
    assert datetime.fromisoformat(c["starts_at"]) == datetime.fromisoformat(body["starts_at"])
    assert datetime.fromisoformat(c["ends_at"]) == datetime.fromisoformat(body["ends_at"])


def item(**overrides: Any) -> list[dict[str, Any]]:
    base: dict[str, Any] = {"name": "Arroz", "unit": "kg", "quantity_requested": 5}
    base.update(overrides)
    return [{k: v for k, v in base.items() if v is not ...}]


BAD_CREATE = [
    # (overrides of a valid body, field named in errors[])
    ({"title": 5}, "title"),
    ({"title": ""}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"title": None}, "title"),
    ({"title": "a\x00b"}, "title"),
    ({"slug": 5}, "slug"),
    ({"slug": "Bad Slug"}, "slug"),
    ({"slug": "-leading"}, "slug"),
    ({"slug": "a" * 101}, "slug"),
    ({"slug": "feijão"}, "slug"),
    ({"subtitle": "x" * 301}, "subtitle"),
    ({"description": "x" * 10_001}, "description"),
    ({"description": "nul \x00 inside"}, "description"),
    ({"image_url": "ftp://example.org/a.png"}, "image_url"),
    ({"image_url": "javascript:alert(1)"}, "image_url"),
    ({"image_url": "https://"}, "image_url"),
    ({"image_url": "https://example.org/" + "a" * 2000}, "image_url"),
    ({"image_url": 5}, "image_url"),
    ({"categories": "x"}, "categories"),
    ({"categories": [1]}, "categories.0"),
    ({"categories": [""]}, "categories.0"),
    ({"categories": ["x" * 51]}, "categories.0"),
    ({"categories": [f"c{n}" for n in range(11)]}, "categories"),
    ({"location": "x" * 201}, "location"),
    ({"contact": "x" * 201}, "contact"),
    ({"status": "open"}, "status"),
    ({"status": None}, "status"),
    ({"starts_at": "2026-05-01T00:00:00"}, "starts_at"),
    ({"starts_at": "yesterday"}, "starts_at"),
    ({"ends_at": 1700000000}, "ends_at"),
    ({"items": "x"}, "items"),
    (
        {"items": [{"name": f"n{n}", "unit": "kg", "quantity_requested": 1} for n in range(101)]},
        "items",
    ),
    ({"items": item(quantity_requested="5")}, "items.0.quantity_requested"),
    ({"items": item(quantity_requested=0)}, "items.0.quantity_requested"),
    ({"items": item(quantity_requested=-1)}, "items.0.quantity_requested"),
    ({"items": item(quantity_requested=1_000_000_001)}, "items.0.quantity_requested"),
    ({"items": item(quantity_requested=2**63)}, "items.0.quantity_requested"),
    ({"items": item(quantity_requested=1.5)}, "items.0.quantity_requested"),
    ({"items": item(quantity_requested=...)}, "items.0.quantity_requested"),
    ({"items": item(name=...)}, "items.0.name"),
    ({"items": item(name=5)}, "items.0.name"),
    ({"items": item(name="")}, "items.0.name"),
    ({"items": item(name="\x00")}, "items.0.name"),
    ({"items": item(unit=...)}, "items.0.unit"),
    ({"items": item(unit="KG")}, "items.0.unit"),
    ({"items": item(unit="brl")}, "items.0.unit"),
    ({"items": item(extra=1)}, "items.0.extra"),
    ({"id": str(uuid.uuid4())}, "id"),
    ({"unknown": 1}, "unknown"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_CREATE)
def test_create_campaign_with_bad_field_is_422_and_writes_nothing(
    client: httpx.Client, db: Database, tenant: TenantCtx, overrides: dict[str, Any], field: str
) -> None:
    r = client.post(URL, json=valid_body(**overrides), headers=tenant.headers)
    assert_field_error(r, field)
    assert count_campaigns(db, tenant) == 0 and count_items(db, tenant) == 0


@pytest.mark.parametrize("missing", ["title"])  # a slug is derived (test_campaign_slugs.py)
def test_create_campaign_without_required_field_is_422(
    client: httpx.Client, db: Database, tenant: TenantCtx, missing: str
) -> None:
    body = valid_body()
    del body[missing]
    body_err = assert_field_error(client.post(URL, json=body, headers=tenant.headers), missing)
    assert body_err["errors"][0]["type"] == "missing"
    assert count_campaigns(db, tenant) == 0


BAD_BODIES = [
    # (raw body, content type, status)
    (b"{", "application/json", 400),
    (b'{"slug": "a", "title": "t",}', "application/json", 400),
    (b"not json", "application/json", 400),
    (b"", "application/json", 400),
    (b"[]", "application/json", 422),
    (b'"text"', "application/json", 422),
    (b'{"slug": "a", "title": "t"}', "text/plain", 415),
    (b"\xff\xfe", "application/json", 400),
]


@pytest.mark.parametrize(("raw", "ctype", "status"), BAD_BODIES)
def test_create_campaign_with_malformed_body_is_4xx(
    client: httpx.Client,
    db: Database,
    tenant: TenantCtx,
    raw: bytes,
    ctype: str,
    status: int,
) -> None:
    headers = {**tenant.headers, "Content-Type": ctype}
    assert_problem(client.post(URL, content=raw, headers=headers), status)
    assert count_campaigns(db, tenant) == 0


def test_create_campaign_with_1mb_body_is_413(
    client: httpx.Client, db: Database, tenant: TenantCtx
) -> None:
    body = valid_body(description="x" * MB)
    assert_problem(client.post(URL, json=body, headers=tenant.headers), 413)
    assert count_campaigns(db, tenant) == 0


# Read.


def test_get_campaign_has_items_totals_and_progress(
    factory: Factory, client: httpx.Client, db: Database, tenant: TenantCtx
) -> None:
    c = factory.campaign(tenant)  # Arroz 500 kg, Feijão 300 kg
    add_donation(db, tenant, c, 0, 100, "confirmed")
    add_donation(db, tenant, c, 0, 150, "delivered")
    add_donation(db, tenant, c, 0, 50, "pending")
    add_donation(db, tenant, c, 0, 7, "cancelled")
    add_donation(db, tenant, c, 1, 600, "confirmed")
    r = client.get(f"{URL}/{c['id']}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "private, no-store"
    got = r.json()
    rice, beans = got["items"]
    assert rice == {
        **c["items"][0],
        "pending_quantity": 50,
        "pending_count": 1,
        "confirmed_quantity": 100,
        "delivered_quantity": 150,
        "contributed_quantity": 250,
        "contributed_count": 2,
        "progress": 0.5,
    }
    assert beans["contributed_quantity"] == 600 and beans["progress"] == 2.0  # not capped
    assert got["progress"] == pytest.approx(0.75)  # mean of 0.5 and min(1, 2.0)


@pytest.mark.parametrize("bad_id", [UNKNOWN_ID, "not-a-uuid", "1", "' OR 1=1 --", "%00", "0" * 33])
def test_get_campaign_with_unknown_or_malformed_id_is_404(
    client: httpx.Client, tenant: TenantCtx, bad_id: str
) -> None:
    assert_problem(client.get(f"{URL}/{bad_id}", headers=tenant.headers), 404)


def test_get_campaign_of_other_tenant_is_404(
    factory: Factory, client: httpx.Client, tenant: TenantCtx, other: TenantCtx
) -> None:
    c = factory.campaign(other)
    assert_problem(client.get(f"{URL}/{c['id']}", headers=tenant.headers), 404)
    assert client.get(f"{URL}/{c['id']}", headers=other.headers).status_code == 200


# List.


def test_list_campaigns_pages_through_25_exactly_once(
    factory: Factory, client: httpx.Client, tenant: TenantCtx, other: TenantCtx
) -> None:
    created = [factory.campaign(tenant, items=[])["id"] for _ in range(25)]
    factory.campaign(other)
    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        r = client.get(URL, params=params, headers=tenant.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["data"]) <= 10
        seen += [c["id"] for c in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(created))  # newest first, each once, none of `other`


def test_list_campaigns_includes_items(
    factory: Factory, client: httpx.Client, tenant: TenantCtx
) -> None:
    c = factory.campaign(tenant)
    data = client.get(URL, headers=tenant.headers).json()["data"]
    assert data == [c]


def test_list_campaigns_filters(factory: Factory, client: httpx.Client, tenant: TenantCtx) -> None:
    a = factory.campaign(
        tenant, title="Agasalhos 100% lã", categories=["roupas"], location="Zona Sul"
    )
    b = factory.campaign(tenant, title="Comida", status="draft", location="Centro")
    c = factory.campaign(tenant, title="Livros_usados", status="closed", categories=["livros"])

    def ids(**params: Any) -> list[str]:
        r = client.get(URL, params=params, headers=tenant.headers)
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()["data"]]

    assert ids() == [c["id"], b["id"], a["id"]]
    assert ids(status="draft") == [b["id"]]
    assert ids(status="published") == [a["id"]]
    assert ids(q="agasalhos") == [a["id"]]
    assert ids(q="100%") == [a["id"]]  # wildcards are literal
    assert ids(q="%") == [a["id"]]
    assert ids(q="_") == [c["id"]]
    assert ids(category="roupas") == [a["id"]]
    assert ids(category="rou") == []
    assert ids(location="sul") == [a["id"]]
    assert ids(location="centro", status="draft") == [b["id"]]
    assert ids(q=INJECTION) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"status": "open"}, "status"),
        ({"q": "x" * 201}, "q"),
        ({"q": "a\x00b"}, "q"),
        ({"category": "x" * 51}, "category"),
        ({"location": "x" * 201}, "location"),
    ],
)
def test_list_campaigns_with_bad_query_is_422(
    client: httpx.Client, tenant: TenantCtx, params: dict[str, str], field: str
) -> None:
    assert_field_error(client.get(URL, params=params, headers=tenant.headers), field)


def _cursor(value: Any) -> str:
    import orjson

    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "x" * 600,
        _cursor({"a": 1}),
        _cursor([]),
        _cursor(["2026-01-01T00:00:00+00:00"]),
        _cursor(["not a date", UNKNOWN_ID]),
        _cursor(["2026-01-01T00:00:00", UNKNOWN_ID]),  # naive
        _cursor(["2026-01-01T00:00:00+00:00", "not-a-uuid"]),
        _cursor([1, 2]),
        _cursor([None, None]),
        _cursor(["2026-01-01T00:00:00+00:00", UNKNOWN_ID, 3]),
    ],
)
def test_list_campaigns_with_bad_cursor_is_400(
    client: httpx.Client, tenant: TenantCtx, cursor: str
) -> None:
    assert_problem(client.get(URL, params={"cursor": cursor}, headers=tenant.headers), 400)


# Update.


def test_update_campaign_changes_only_given_fields(
    factory: Factory, client: httpx.Client, db: Database, tenant: TenantCtx
) -> None:
    c = factory.campaign(tenant, image_url="https://example.org/a.png")
    changes = {"title": "Novo título", "status": "closed", "categories": ["a", "b"]}
    r = client.patch(f"{URL}/{c['id']}", json=changes, headers=tenant.headers)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["updated_at"] > c["updated_at"]
    assert {**c, **changes, "updated_at": got["updated_at"]} == got
    row = campaign_row(db, c["id"])
    assert row is not None and row["title"] == "Novo título" and row["status"] == "closed"
    assert row["image_url"] == "https://example.org/a.png"


def test_update_campaign_null_clears_nullable_fields(
    factory: Factory, client: httpx.Client, tenant: TenantCtx
) -> None:
    c = factory.campaign(
        tenant,
        image_url="https://example.org/a.png",
        starts_at="2026-01-01T00:00:00Z",
        ends_at="2026-02-01T00:00:00Z",
    )
    body = {"image_url": None, "starts_at": None, "ends_at": None}
    r = client.patch(f"{URL}/{c['id']}", json=body, headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in body} == body


def test_update_campaign_every_field(
    factory: Factory, client: httpx.Client, tenant: TenantCtx
) -> None:
    c = factory.campaign(tenant)
    body = {
        "slug": "renamed",
        "title": "T",
        "subtitle": "S",
        "description": UNICODE,
        "image_url": "http://example.org/x",
        "categories": [],
        "location": INJECTION,
        "contact": "wa.me/5511",
        "starts_at": "2026-01-01T00:00:00+00:00",
        "ends_at": "2026-02-01T00:00:00+00:00",
        "status": "draft",
    }
    r = client.patch(f"{URL}/{c['id']}", json=body, headers=tenant.headers)
    assert r.status_code == 200, r.text
    got = r.json()
    assert {k: got[k] for k in body} == body
    assert got["items"] == c["items"]


def test_update_campaign_period_checked_against_stored_value(
    factory: Factory, client: httpx.Client, db: Database, tenant: TenantCtx
) -> None:
    c = factory.campaign(tenant, starts_at="2026-03-01T00:00:00Z")
    before = campaign_row(db, c["id"])
    r = client.patch(
        f"{URL}/{c['id']}", json={"ends_at": "2026-02-01T00:00:00Z"}, headers=tenant.headers
    )
    assert_field_error(r, "ends_at")
    assert campaign_row(db, c["id"]) == before


def test_update_campaign_to_taken_slug_is_409(
    factory: Factory, client: httpx.Client, db: Database, tenant: TenantCtx
) -> None:
    factory.campaign(tenant, slug="taken")
    c = factory.campaign(tenant)
    before = campaign_row(db, c["id"])
    r = client.patch(f"{URL}/{c['id']}", json={"slug": "taken"}, headers=tenant.headers)
    assert_field_error(r, "slug", 409)
    assert campaign_row(db, c["id"]) == before


BAD_UPDATE = [
    ({"title": 5}, "title"),
    ({"title": None}, "title"),
    ({"title": ""}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"slug": None}, "slug"),
    ({"slug": "UPPER"}, "slug"),
    ({"subtitle": None}, "subtitle"),
    ({"description": "\x00"}, "description"),
    ({"categories": "x"}, "categories"),
    ({"categories": None}, "categories"),
    ({"location": None}, "location"),
    ({"contact": 1}, "contact"),
    ({"status": "open"}, "status"),
    ({"status": None}, "status"),
    ({"image_url": "ftp://x"}, "image_url"),
    ({"starts_at": "2026-05-02T00:00:00Z", "ends_at": "2026-05-01T00:00:00Z"}, "ends_at"),
    ({"id": str(uuid.uuid4())}, "id"),
    ({"created_at": "2026-05-01T00:00:00Z"}, "created_at"),
    ({"items": []}, "items"),
    ({"tenant_id": str(uuid.uuid4())}, "tenant_id"),
]


@pytest.mark.parametrize(("body", "field"), BAD_UPDATE)
def test_update_campaign_with_bad_field_is_422_and_changes_nothing(
    factory: Factory,
    client: httpx.Client,
    db: Database,
    tenant: TenantCtx,
    body: dict[str, Any],
    field: str,
) -> None:
    c = factory.campaign(tenant)
    before = campaign_row(db, c["id"])
    assert_field_error(client.patch(f"{URL}/{c['id']}", json=body, headers=tenant.headers), field)
    assert campaign_row(db, c["id"]) == before


@pytest.mark.parametrize(("raw", "ctype", "status"), BAD_BODIES)
def test_update_campaign_with_malformed_body_is_4xx(
    factory: Factory,
    client: httpx.Client,
    db: Database,
    tenant: TenantCtx,
    raw: bytes,
    ctype: str,
    status: int,
) -> None:
    c = factory.campaign(tenant)
    before = campaign_row(db, c["id"])
    headers = {**tenant.headers, "Content-Type": ctype}
    assert_problem(client.patch(f"{URL}/{c['id']}", content=raw, headers=headers), status)
    assert campaign_row(db, c["id"]) == before


def test_update_campaign_with_1mb_body_is_413(
    factory: Factory, client: httpx.Client, db: Database, tenant: TenantCtx
) -> None:
    c = factory.campaign(tenant)
    before = campaign_row(db, c["id"])
    r = client.patch(f"{URL}/{c['id']}", json={"description": "x" * MB}, headers=tenant.headers)
    assert_problem(r, 413)
    assert campaign_row(db, c["id"]) == before


@pytest.mark.parametrize("bad_id", [UNKNOWN_ID, "not-a-uuid", "' OR 1=1 --"])
def test_update_campaign_with_unknown_or_malformed_id_is_404(
    client: httpx.Client, tenant: TenantCtx, bad_id: str
) -> None:
    r = client.patch(f"{URL}/{bad_id}", json={"title": "x"}, headers=tenant.headers)
    assert_problem(r, 404)


def test_update_campaign_of_other_tenant_is_404_and_unchanged(
    factory: Factory, client: httpx.Client, db: Database, tenant: TenantCtx, other: TenantCtx
) -> None:
    c = factory.campaign(other)
    before = campaign_row(db, c["id"])
    r = client.patch(f"{URL}/{c['id']}", json={"title": "hijacked"}, headers=tenant.headers)
    assert_problem(r, 404)
    assert campaign_row(db, c["id"]) == before


# Delete.


def test_delete_campaign_removes_it_and_its_items(
    factory: Factory, client: httpx.Client, db: Database, tenant: TenantCtx
) -> None:
    c = factory.campaign(tenant)
    r = client.delete(f"{URL}/{c['id']}", headers=tenant.headers)
    assert r.status_code == 204 and r.content == b""
    assert campaign_row(db, c["id"]) is None and count_items(db, tenant) == 0
    assert_problem(client.get(f"{URL}/{c['id']}", headers=tenant.headers), 404)
    assert_problem(client.delete(f"{URL}/{c['id']}", headers=tenant.headers), 404)


def test_delete_campaign_with_donations_is_409_and_says_close_it(
    factory: Factory, client: httpx.Client, db: Database, tenant: TenantCtx
) -> None:
    c = factory.campaign(tenant)
    add_donation(db, tenant, c, 1, 3, "cancelled")
    before = campaign_row(db, c["id"])
    body = assert_problem(client.delete(f"{URL}/{c['id']}", headers=tenant.headers), 409)
    assert "closed" in body["detail"] and "PATCH" in body["detail"]
    assert campaign_row(db, c["id"]) == before and count_items(db, tenant) == 2
    r = client.patch(f"{URL}/{c['id']}", json={"status": "closed"}, headers=tenant.headers)
    assert r.status_code == 200 and r.json()["status"] == "closed"


@pytest.mark.parametrize("bad_id", [UNKNOWN_ID, "not-a-uuid", "' OR 1=1 --"])
def test_delete_campaign_with_unknown_or_malformed_id_is_404(
    client: httpx.Client, tenant: TenantCtx, bad_id: str
) -> None:
    assert_problem(client.delete(f"{URL}/{bad_id}", headers=tenant.headers), 404)


def test_delete_campaign_of_other_tenant_is_404_and_kept(
    factory: Factory, client: httpx.Client, db: Database, tenant: TenantCtx, other: TenantCtx
) -> None:
    c = factory.campaign(other)
    before = campaign_row(db, c["id"])
    assert_problem(client.delete(f"{URL}/{c['id']}", headers=tenant.headers), 404)
    assert campaign_row(db, c["id"]) == before and count_items(db, other) == 2


# Credentials and scopes.

ENDPOINTS = [
    ("GET", URL),
    ("POST", URL),
    ("GET", f"{URL}/{{id}}"),
    ("PATCH", f"{URL}/{{id}}"),
    ("DELETE", f"{URL}/{{id}}"),
]
WRITES = [(m, p) for m, p in ENDPOINTS if m != "GET"]


def _call(
    client: httpx.Client, method: str, path: str, campaign: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    body = {"title": "x"} if method == "PATCH" else valid_body() if method == "POST" else None
    return client.request(method, path.format(id=campaign["id"]), json=body, headers=headers)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        bearer("cnd_live_unknown_" + "x" * 43),
        bearer("not-a-key-or-token"),
    ],
    ids=["none", "empty-bearer", "basic", "unknown-key", "garbage"],
)
def test_campaign_routes_without_valid_credentials_are_401(
    factory: Factory,
    client: httpx.Client,
    db: Database,
    tenant: TenantCtx,
    method: str,
    path: str,
    headers: dict[str, str],
) -> None:
    c = factory.campaign(tenant)
    before = campaign_row(db, c["id"])
    assert_problem(_call(client, method, path, c, headers), 401)
    assert campaign_row(db, c["id"]) == before and count_campaigns(db, tenant) == 1


def test_campaign_routes_with_revoked_key_are_401(
    factory: Factory, client: httpx.Client, db: Database, tenant: TenantCtx
) -> None:
    c = factory.campaign(tenant)
    key = factory.key(tenant, ("read", "write"))
    db.execute("UPDATE api_key SET revoked_at = now() WHERE tenant_id = $1", tenant.id)
    for method, path in ENDPOINTS:
        assert_problem(_call(client, method, path, c, bearer(key)), 401)


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_campaign_writes_with_read_only_key_are_403(
    factory: Factory,
    client: httpx.Client,
    db: Database,
    tenant: TenantCtx,
    method: str,
    path: str,
) -> None:
    c = factory.campaign(tenant)
    before = campaign_row(db, c["id"])
    read_only = bearer(factory.key(tenant, ("read",)))
    assert_problem(_call(client, method, path, c, read_only), 403)
    assert campaign_row(db, c["id"]) == before and count_campaigns(db, tenant) == 1


def test_campaign_reads_with_read_only_key_work(
    factory: Factory, client: httpx.Client, tenant: TenantCtx
) -> None:
    c = factory.campaign(tenant)
    read_only = bearer(factory.key(tenant, ("read",)))
    assert client.get(URL, headers=read_only).status_code == 200
    assert client.get(f"{URL}/{c['id']}", headers=read_only).json() == c


def test_campaign_reads_with_write_only_key_are_403(
    factory: Factory, client: httpx.Client, tenant: TenantCtx
) -> None:
    c = factory.campaign(tenant)
    write_only = bearer(factory.key(tenant, ("write",)))
    assert_problem(client.get(URL, headers=write_only), 403)
    assert_problem(client.get(f"{URL}/{c['id']}", headers=write_only), 403)
