"""Partner API: donations (record, list, read, confirm/deliver/cancel)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from api.pagination import encode_cursor
from db.crypto import Keyring
from tests.factories import UNKNOWN_ID, Factory, TenantCtx
from tests.services import CONTACT_KEYS, Database

RING = Keyring.from_env(CONTACT_KEYS)

DONATION_KEYS = {
    "id",
    "campaign_id",
    "item_id",
    "quantity",
    "donor_name",
    "donor_contact",
    "anonymous",
    "message",
    "status",
    "source",
    "created_at",
    "confirmed_at",
    "delivered_at",
    "cancelled_at",
}


def seed_campaign(db: Database, tenant: TenantCtx, items: int = 2) -> dict[str, Any]:
    """A published campaign with `items` needs, written as the owner (no API involved),
    shaped like the API's campaign (`id`, `items[].id`) so factory.donation accepts it."""
    cid = db.fetchval(
        "INSERT INTO campaign (tenant_id, slug, title, status) "
        "VALUES ($1, $2, 'Arrecadação', 'published') RETURNING id",
        tenant.id,
        f"c-{uuid.uuid4().hex[:12]}",
    )
    item_ids = [
        db.fetchval(
            "INSERT INTO campaign_item (tenant_id, campaign_id, name, unit, quantity_requested) "
            "VALUES ($1, $2, $3, 'kg', 500) RETURNING id",
            tenant.id,
            cid,
            f"Item {n}",
        )
        for n in range(items)
    ]
    return {"id": str(cid), "items": [{"id": str(i)} for i in item_ids]}


def donation_count(db: Database, tenant: TenantCtx) -> int:
    count: int = db.fetchval("SELECT count(*) FROM donation WHERE tenant_id = $1", tenant.id)
    return count


def assert_problem(r: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body


@pytest.fixture
def tenant(factory: Factory) -> TenantCtx:
    return factory.tenant()


@pytest.fixture
def campaign(factory: Factory, tenant: TenantCtx) -> dict[str, Any]:
    """Created through the API (two items); `seed_campaign` serves the other tenants."""
    return factory.campaign(tenant)


def donations_url(campaign: dict[str, Any]) -> str:
    return f"/api/v1/campaigns/{campaign['id']}/donations"


def valid_body(campaign: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    body = {
        "item_id": campaign["items"][0]["id"],
        "quantity": 5,
        "donor_name": "Maria",
        "donor_contact": "+55 11 99999-0000",
    }
    body.update(overrides)
    return body


# --- create -------------------------------------------------------------------------


def test_create_donation_returns_201_with_donation_shape(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    r = client.post(donations_url(campaign), json=valid_body(campaign), headers=tenant.headers)
    assert r.status_code == 201, r.text
    assert r.headers["content-type"] == "application/json"
    assert "no-store" in r.headers["cache-control"]
    assert "Idempotent-Replayed" not in r.headers
    d = r.json()
    assert r.headers["location"] == f"/api/v1/donations/{d['id']}"
    assert set(d) == DONATION_KEYS
    assert d["campaign_id"] == campaign["id"]
    assert d["item_id"] == campaign["items"][0]["id"]
    assert (d["quantity"], d["status"], d["source"]) == (5, "pending", "partner")
    assert (d["anonymous"], d["message"]) == (False, "")
    assert d["confirmed_at"] is None and d["delivered_at"] is None and d["cancelled_at"] is None
    row = db.fetchrow("SELECT tenant_id, quantity, status FROM donation WHERE id = $1", d["id"])
    assert row is not None and tuple(row) == (tenant.id, 5, "pending")


def test_create_donation_with_only_required_fields_uses_defaults(
    client: httpx.Client, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    body = {"item_id": campaign["items"][1]["id"], "quantity": 1}
    r = client.post(donations_url(campaign), json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    d = r.json()
    assert (d["donor_name"], d["donor_contact"], d["anonymous"], d["message"]) == (
        "",
        "",
        False,
        "",
    )
    assert d["item_id"] == campaign["items"][1]["id"]


def test_create_confirmed_donation_sets_confirmed_at(
    client: httpx.Client, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    body = valid_body(campaign, status="confirmed")
    d = client.post(donations_url(campaign), json=body, headers=tenant.headers).json()
    assert d["status"] == "confirmed"
    assert d["confirmed_at"] is not None and d["delivered_at"] is None


def test_create_delivered_donation_sets_confirmed_and_delivered_at(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    body = valid_body(campaign, status="delivered", quantity=7)
    d = client.post(donations_url(campaign), json=body, headers=tenant.headers).json()
    assert d["status"] == "delivered"
    assert d["confirmed_at"] is not None and d["delivered_at"] is not None
    totals = db.fetchrow(
        "SELECT delivered_quantity, delivered_count, pending_count FROM item_totals "
        "WHERE item_id = $1",
        uuid.UUID(campaign["items"][0]["id"]),
    )
    assert totals is not None and tuple(totals) == (7, 1, 0)


@pytest.mark.parametrize(
    "text",
    [
        "Robert'); DROP TABLE donation;--",
        "' OR '1'='1",
        "Ação \u2013 中文 \u2013 😀 \u2013 \u202eabc \u2013 e\u0301 combining",
        "<script>alert(1)</script>",
        "${jndi:ldap://x}",
    ],
)
def test_create_donation_stores_sql_and_unicode_strings_verbatim(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any], text: str
) -> None:
    body = valid_body(campaign, donor_name=text, message=text, donor_contact=text)
    r = client.post(donations_url(campaign), json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    assert r.json()["donor_name"] == text
    row = db.fetchrow("SELECT * FROM donation WHERE id = $1", r.json()["id"])
    assert row is not None
    # Contact and message are stored encrypted (db/crypto.py), verbatim once decrypted.
    assert (row["donor_name"], RING.message_of(row), RING.donor_contact_of(row)) == (text,) * 3


def test_create_donation_accepts_maximal_quantity_and_text_lengths(
    client: httpx.Client, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    body = valid_body(
        campaign,
        quantity=1_000_000_000,
        donor_name="n" * 200,
        donor_contact="c" * 200,
        message="m" * 1000,
        anonymous=True,
    )
    r = client.post(donations_url(campaign), json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    assert r.json()["quantity"] == 1_000_000_000 and r.json()["anonymous"] is True


DROP = object()

BAD_BODIES: list[tuple[str, str, Any]] = [
    # (field, why, value) — DROP removes the field
    ("item_id", "missing", DROP),
    ("item_id", "null", None),
    ("item_id", "number", 123),
    ("item_id", "not a uuid", "not-a-uuid"),
    ("item_id", "sql", "1' OR '1'='1"),
    ("quantity", "missing", DROP),
    ("quantity", "null", None),
    ("quantity", "zero", 0),
    ("quantity", "negative", -1),
    ("quantity", "above maximum", 1_000_000_001),
    ("quantity", "huge", 10**30),
    ("quantity", "bigint overflow", 2**63),
    ("quantity", "string", "5"),
    ("quantity", "float", 5.5),
    ("quantity", "integral float too large", 2e9),
    ("quantity", "bool", True),
    ("quantity", "list", [5]),
    ("donor_name", "too long", "x" * 201),
    ("donor_name", "number", 42),
    ("donor_name", "null", None),
    ("donor_name", "nul char", "a\x00b"),
    ("donor_contact", "too long", "x" * 201),
    ("message", "too long", "x" * 1001),
    ("anonymous", "string", "yes"),
    ("anonymous", "int", 1),
    ("status", "cancelled at creation", "cancelled"),
    ("status", "unknown", "approved"),
    ("status", "case", "PENDING"),
    ("source", "not a field", "public"),
    ("tenant_id", "not a field", "00000000-0000-0000-0000-000000000000"),
]


@pytest.mark.parametrize(
    ("field", "why", "value"), BAD_BODIES, ids=[f"{f}-{w}" for f, w, _ in BAD_BODIES]
)
def test_create_donation_with_bad_field_is_422_and_writes_nothing(
    client: httpx.Client,
    db: Database,
    tenant: TenantCtx,
    campaign: dict[str, Any],
    field: str,
    why: str,
    value: Any,
) -> None:
    body = valid_body(campaign)
    if value is DROP:
        body.pop(field)
    else:
        body[field] = value
    r = client.post(donations_url(campaign), json=body, headers=tenant.headers)
    assert_problem(r, 422, field)
    assert donation_count(db, tenant) == 0


def test_create_donation_with_lone_surrogate_is_422(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    raw = (
        '{"item_id": "' + campaign["items"][0]["id"] + '", "quantity": 1, "donor_name": "\\ud800"}'
    ).encode()
    r = client.post(
        donations_url(campaign),
        content=raw,
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    assert r.status_code in (400, 422), r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert donation_count(db, tenant) == 0


@pytest.mark.parametrize("raw", [b"[]", b'"x"', b"5", b"null", b"true"])
def test_create_donation_with_non_object_body_is_422(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any], raw: bytes
) -> None:
    r = client.post(
        donations_url(campaign),
        content=raw,
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    assert_problem(r, 422)
    assert donation_count(db, tenant) == 0


@pytest.mark.parametrize("raw", [b"{", b'{"quantity": }', b"{'a': 1}", b"\xff\xfe", b"   "])
def test_create_donation_with_malformed_json_is_400(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any], raw: bytes
) -> None:
    r = client.post(
        donations_url(campaign),
        content=raw,
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    assert_problem(r, 400)
    assert donation_count(db, tenant) == 0


def test_create_donation_with_wrong_content_type_is_415(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    r = client.post(
        donations_url(campaign),
        content=b"item_id=x&quantity=1",
        headers={**tenant.headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_problem(r, 415)
    assert donation_count(db, tenant) == 0


@pytest.mark.parametrize("coding", ["gzip", "br", "deflate, gzip"])
def test_create_donation_with_a_compressed_body_is_415_saying_so(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any], coding: str
) -> None:
    """A content coding the API does not undo is refused as such (RFC 9110: 415 with
    Accept-Encoding), not parsed as garbage into "not valid JSON"; here the body is
    even valid JSON, so a server that ignored the header would have written it."""
    r = client.post(
        donations_url(campaign),
        content=orjson.dumps(valid_body(campaign)),
        headers={**tenant.headers, "Content-Type": "application/json", "Content-Encoding": coding},
    )
    assert_problem(r, 415)
    assert "Content-Encoding" in r.json()["detail"]
    assert r.headers["Accept-Encoding"] == "identity"
    assert donation_count(db, tenant) == 0
    identity = client.post(
        donations_url(campaign),
        content=orjson.dumps(valid_body(campaign)),
        headers={
            **tenant.headers,
            "Content-Type": "application/json",
            "Content-Encoding": "identity",
        },
    )
    assert identity.status_code == 201, identity.text


def test_create_donation_with_1mb_body_is_413(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    body = valid_body(campaign, message="x" * (1024 * 1024))
    r = client.post(donations_url(campaign), json=body, headers=tenant.headers)
    assert_problem(r, 413)
    assert donation_count(db, tenant) == 0


@pytest.mark.parametrize(
    "campaign_id", [UNKNOWN_ID, "not-a-uuid", "1' OR '1'='1", "%00", "0" * 300]
)
def test_create_donation_for_unknown_or_malformed_campaign_is_404(
    client: httpx.Client,
    db: Database,
    tenant: TenantCtx,
    campaign: dict[str, Any],
    campaign_id: str,
) -> None:
    r = client.post(
        f"/api/v1/campaigns/{campaign_id}/donations",
        json=valid_body(campaign),
        headers=tenant.headers,
    )
    assert_problem(r, 404)
    assert donation_count(db, tenant) == 0


def test_create_donation_for_other_tenants_campaign_is_404_and_writes_nothing(
    client: httpx.Client, db: Database, factory: Factory, tenant: TenantCtx
) -> None:
    other = factory.tenant()
    theirs = seed_campaign(db, other)
    r = client.post(donations_url(theirs), json=valid_body(theirs), headers=tenant.headers)
    assert_problem(r, 404)
    assert donation_count(db, tenant) == 0
    assert donation_count(db, other) == 0


def test_create_donation_with_other_tenants_item_is_422_and_writes_nothing(
    client: httpx.Client,
    db: Database,
    factory: Factory,
    tenant: TenantCtx,
    campaign: dict[str, Any],
) -> None:
    other = factory.tenant()
    theirs = seed_campaign(db, other)
    body = valid_body(campaign, item_id=theirs["items"][0]["id"])
    r = client.post(donations_url(campaign), json=body, headers=tenant.headers)
    assert_problem(r, 422, "item_id")
    assert donation_count(db, tenant) == 0
    assert donation_count(db, other) == 0


def test_create_donation_with_item_of_another_campaign_is_422(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    second = seed_campaign(db, tenant)
    body = valid_body(campaign, item_id=second["items"][0]["id"])
    r = client.post(donations_url(campaign), json=body, headers=tenant.headers)
    assert_problem(r, 422, "item_id")
    body = valid_body(campaign, item_id=str(uuid.uuid4()))
    assert_problem(client.post(donations_url(campaign), json=body, headers=tenant.headers), 422)
    assert donation_count(db, tenant) == 0


def test_create_donation_with_read_only_key_is_403_and_writes_nothing(
    client: httpx.Client,
    db: Database,
    factory: Factory,
    tenant: TenantCtx,
    campaign: dict[str, Any],
) -> None:
    ro = factory.key(tenant, ("read",))
    r = client.post(
        donations_url(campaign),
        json=valid_body(campaign),
        headers={"Authorization": f"Bearer {ro}"},
    )
    assert_problem(r, 403)
    assert donation_count(db, tenant) == 0


@pytest.mark.parametrize("auth", [None, "Bearer nope", "Bearer cnd_live_bogus_value", "Basic x"])
def test_donation_routes_without_valid_credentials_are_401(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any], auth: Any
) -> None:
    headers = {"Authorization": auth} if auth else {}
    assert_problem(
        client.post(donations_url(campaign), json=valid_body(campaign), headers=headers), 401
    )
    assert_problem(client.get(donations_url(campaign), headers=headers), 401)
    assert_problem(client.get("/api/v1/donations", headers=headers), 401)
    assert_problem(client.post(f"/api/v1/donations/{uuid.uuid4()}/confirm", headers=headers), 401)
    assert donation_count(db, tenant) == 0


# --- read ---------------------------------------------------------------------------


def test_get_donation_returns_it(
    client: httpx.Client, factory: Factory, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    made = factory.donation(tenant, campaign, quantity=3)
    r = client.get(f"/api/v1/donations/{made['id']}", headers=tenant.headers)
    assert r.status_code == 200
    assert r.json() == made


def test_get_donation_with_read_only_key_works(
    client: httpx.Client, factory: Factory, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    made = factory.donation(tenant, campaign)
    ro = factory.key(tenant, ("read",))
    r = client.get(f"/api/v1/donations/{made['id']}", headers={"Authorization": f"Bearer {ro}"})
    assert r.status_code == 200 and r.json()["id"] == made["id"]


@pytest.mark.parametrize("donation_id", [UNKNOWN_ID, "nope", "1' OR '1'='1", "0" * 300])
def test_get_unknown_or_malformed_donation_is_404(
    client: httpx.Client, tenant: TenantCtx, donation_id: str
) -> None:
    assert_problem(client.get(f"/api/v1/donations/{donation_id}", headers=tenant.headers), 404)


def test_get_donation_of_other_tenant_is_404(
    client: httpx.Client, factory: Factory, db: Database, tenant: TenantCtx
) -> None:
    other = factory.tenant()
    theirs = factory.donation(other, seed_campaign(db, other))
    assert_problem(client.get(f"/api/v1/donations/{theirs['id']}", headers=tenant.headers), 404)


# --- transitions --------------------------------------------------------------------

LEGAL = [
    ("pending", "confirm", "confirmed"),
    ("pending", "cancel", "cancelled"),
    ("confirmed", "deliver", "delivered"),
    ("confirmed", "cancel", "cancelled"),
]
ILLEGAL = [
    ("pending", "deliver"),
    ("confirmed", "confirm"),
    ("delivered", "confirm"),
    ("delivered", "deliver"),
    ("delivered", "cancel"),
    ("cancelled", "confirm"),
    ("cancelled", "deliver"),
    ("cancelled", "cancel"),
]
TIMESTAMP = {"confirmed": "confirmed_at", "delivered": "delivered_at", "cancelled": "cancelled_at"}


def _donation_in(
    client: httpx.Client, tenant: TenantCtx, campaign: dict[str, Any], status: str
) -> dict[str, Any]:
    """A donation brought to `status` through the API."""
    create_as = "pending" if status == "cancelled" else status
    body = valid_body(campaign, status=create_as)
    d: dict[str, Any] = client.post(
        donations_url(campaign), json=body, headers=tenant.headers
    ).json()
    if status == "cancelled":
        r = client.post(f"/api/v1/donations/{d['id']}/cancel", headers=tenant.headers)
        assert r.status_code == 200
        d = r.json()
    assert d["status"] == status
    return d


@pytest.mark.parametrize(("start", "action", "end"), LEGAL)
def test_legal_transition_updates_status_and_timestamp(
    client: httpx.Client,
    db: Database,
    tenant: TenantCtx,
    campaign: dict[str, Any],
    start: str,
    action: str,
    end: str,
) -> None:
    d = _donation_in(client, tenant, campaign, start)
    r = client.post(f"/api/v1/donations/{d['id']}/{action}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == end and out[TIMESTAMP[end]] is not None
    assert set(out) == DONATION_KEYS
    if start == "confirmed":
        assert out["confirmed_at"] == d["confirmed_at"]  # earlier timestamps are kept
    assert db.fetchval("SELECT status FROM donation WHERE id = $1", uuid.UUID(d["id"])) == end
    got = client.get(f"/api/v1/donations/{d['id']}", headers=tenant.headers).json()
    assert got == out


@pytest.mark.parametrize(("start", "action"), ILLEGAL)
def test_illegal_transition_is_409_naming_the_current_status(
    client: httpx.Client,
    db: Database,
    tenant: TenantCtx,
    campaign: dict[str, Any],
    start: str,
    action: str,
) -> None:
    d = _donation_in(client, tenant, campaign, start)
    r = client.post(f"/api/v1/donations/{d['id']}/{action}", headers=tenant.headers)
    body = assert_problem(r, 409)
    assert body["type"] == "/problems/illegal-transition"
    assert start in body["detail"]
    row = db.fetchrow(
        "SELECT status, confirmed_at, delivered_at, cancelled_at FROM donation WHERE id = $1",
        uuid.UUID(d["id"]),
    )
    assert row is not None and row["status"] == start
    for status, column in TIMESTAMP.items():
        assert (row[column] is None) == (d[column] is None), status


@pytest.mark.parametrize("action", ["confirm", "deliver", "cancel"])
@pytest.mark.parametrize("donation_id", [UNKNOWN_ID, "nope", "1' OR '1'='1"])
def test_transition_of_unknown_or_malformed_donation_is_404(
    client: httpx.Client, tenant: TenantCtx, action: str, donation_id: str
) -> None:
    r = client.post(f"/api/v1/donations/{donation_id}/{action}", headers=tenant.headers)
    assert_problem(r, 404)


@pytest.mark.parametrize("action", ["confirm", "deliver", "cancel"])
def test_transition_of_other_tenants_donation_is_404_and_changes_nothing(
    client: httpx.Client, db: Database, factory: Factory, tenant: TenantCtx, action: str
) -> None:
    other = factory.tenant()
    theirs = factory.donation(other, seed_campaign(db, other), status="confirmed")
    r = client.post(f"/api/v1/donations/{theirs['id']}/{action}", headers=tenant.headers)
    assert_problem(r, 404)
    row = db.fetchrow(
        "SELECT status, delivered_at, cancelled_at FROM donation WHERE id = $1",
        uuid.UUID(theirs["id"]),
    )
    assert row is not None and tuple(row) == ("confirmed", None, None)


@pytest.mark.parametrize("action", ["confirm", "deliver", "cancel"])
def test_transition_with_read_only_key_is_403_and_changes_nothing(
    client: httpx.Client,
    db: Database,
    factory: Factory,
    tenant: TenantCtx,
    campaign: dict[str, Any],
    action: str,
) -> None:
    d = _donation_in(client, tenant, campaign, "confirmed")
    ro = factory.key(tenant, ("read",))
    r = client.post(
        f"/api/v1/donations/{d['id']}/{action}", headers={"Authorization": f"Bearer {ro}"}
    )
    assert_problem(r, 403)
    assert db.fetchval("SELECT status FROM donation WHERE id = $1", uuid.UUID(d["id"])) == (
        "confirmed"
    )


def test_transitions_keep_item_totals_exact(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    a = _donation_in(client, tenant, campaign, "pending")
    b = _donation_in(client, tenant, campaign, "pending")
    c = _donation_in(client, tenant, campaign, "pending")
    for did, action in [(a, "confirm"), (b, "confirm"), (b, "deliver"), (c, "cancel")]:
        r = client.post(f"/api/v1/donations/{did['id']}/{action}", headers=tenant.headers)
        assert r.status_code == 200
    totals = db.fetchrow(
        "SELECT pending_count, confirmed_quantity, confirmed_count, delivered_quantity, "
        "delivered_count, cancelled_count FROM item_totals WHERE item_id = $1",
        uuid.UUID(campaign["items"][0]["id"]),
    )
    assert totals is not None and tuple(totals) == (0, 5, 1, 5, 1, 1)


# --- lists --------------------------------------------------------------------------


def _page_through(
    client: httpx.Client, url: str, headers: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(100):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        r = client.get(url, params=query, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        assert set(page) == {"data", "next_cursor"}
        seen.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("paging did not end")


def test_list_campaign_donations_pages_each_exactly_once_newest_first(
    client: httpx.Client,
    factory: Factory,
    db: Database,
    tenant: TenantCtx,
    campaign: dict[str, Any],
) -> None:
    made = [factory.donation(tenant, campaign, quantity=n + 1) for n in range(7)]
    other_campaign = seed_campaign(db, tenant)
    factory.donation(tenant, other_campaign)
    seen = _page_through(client, donations_url(campaign), tenant.headers, limit=3)
    assert [d["id"] for d in seen] == [d["id"] for d in reversed(made)]
    assert seen[0] == made[-1]


def test_list_all_donations_pages_each_exactly_once_across_campaigns(
    client: httpx.Client,
    factory: Factory,
    db: Database,
    tenant: TenantCtx,
    campaign: dict[str, Any],
) -> None:
    second = seed_campaign(db, tenant)
    made = [factory.donation(tenant, c) for c in (campaign, second, campaign, second, campaign)]
    other = factory.tenant()
    factory.donation(other, seed_campaign(db, other))
    for limit in (1, 2, 5, 100):
        seen = _page_through(client, "/api/v1/donations", tenant.headers, limit=limit)
        assert [d["id"] for d in seen] == [d["id"] for d in reversed(made)], limit


def test_list_donations_filters_by_campaign_status_and_since(
    client: httpx.Client,
    factory: Factory,
    db: Database,
    tenant: TenantCtx,
    campaign: dict[str, Any],
) -> None:
    second = seed_campaign(db, tenant)
    old = factory.donation(tenant, campaign)
    db.execute(
        "UPDATE donation SET created_at = now() - interval '2 days' WHERE id = $1",
        uuid.UUID(old["id"]),
    )
    p = factory.donation(tenant, campaign)
    c = factory.donation(tenant, campaign, status="confirmed")
    s = factory.donation(tenant, second, status="delivered")
    h = tenant.headers
    url = "/api/v1/donations"

    def ids(**params: Any) -> set[str]:
        return {d["id"] for d in _page_through(client, url, h, **params)}

    assert ids() == {old["id"], p["id"], c["id"], s["id"]}
    assert ids(campaign_id=campaign["id"]) == {old["id"], p["id"], c["id"]}
    assert ids(campaign_id=second["id"]) == {s["id"]}
    assert ids(status="pending") == {old["id"], p["id"]}
    assert ids(status="delivered") == {s["id"]}
    assert ids(status="cancelled") == set()
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert ids(since=since) == {p["id"], c["id"], s["id"]}
    assert ids(since=since, status="pending", campaign_id=campaign["id"], limit=1) == {p["id"]}
    # the per-campaign list takes the same status and since filters
    got = _page_through(client, donations_url(campaign), h, status="pending", since=since)
    assert {d["id"] for d in got} == {p["id"]}
    # another tenant's campaign as a filter: nothing, not an error
    other = factory.tenant()
    theirs = seed_campaign(db, other)
    factory.donation(other, theirs)
    assert ids(campaign_id=theirs["id"]) == set()


def test_list_donations_since_accepts_unencoded_plus_offset(
    client: httpx.Client, factory: Factory, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    made = factory.donation(tenant, campaign)
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    r = client.get(f"/api/v1/donations?since={past}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert [d["id"] for d in r.json()["data"]] == [made["id"]]
    assert (
        client.get("/api/v1/donations?since=2999-01-01T00:00:00Z", headers=tenant.headers).json()[
            "data"
        ]
        == []
    )


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("status", "approved"),
        ("status", "' OR 1=1 --"),
        ("since", "yesterday"),
        ("since", "2026-01-01T00:00:00"),  # no offset
        ("since", "0001-01-01T00:00:00+14:00"),  # not representable in UTC
        ("since", "2026-13-01T00:00:00Z"),
        ("campaign_id", "nope"),
        ("campaign_id", "1' OR '1'='1"),
        ("limit", "0"),
        ("limit", "101"),
        ("limit", "ten"),
    ],
)
def test_list_donations_with_bad_filter_is_422(
    client: httpx.Client, tenant: TenantCtx, campaign: dict[str, Any], param: str, value: str
) -> None:
    assert_problem(
        client.get("/api/v1/donations", params={param: value}, headers=tenant.headers), 422, param
    )
    if param != "campaign_id":
        r = client.get(donations_url(campaign), params={param: value}, headers=tenant.headers)
        assert_problem(r, 422, param)


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "x" * 600,
        encode_cursor(["2026-01-01T00:00:00+00:00"]),
        encode_cursor(["2026-01-01T00:00:00", UNKNOWN_ID]),
        encode_cursor(["not a time", UNKNOWN_ID]),
        encode_cursor(["2026-01-01T00:00:00+00:00", "not a uuid"]),
        encode_cursor([1, 2]),
        encode_cursor([None, None]),
        encode_cursor([{"a": 1}, []]),
    ],
)
def test_list_donations_with_bad_cursor_is_400(
    client: httpx.Client, tenant: TenantCtx, campaign: dict[str, Any], cursor: str
) -> None:
    for url in ("/api/v1/donations", donations_url(campaign)):
        assert_problem(client.get(url, params={"cursor": cursor}, headers=tenant.headers), 400)


def test_list_donations_of_other_tenants_campaign_is_404(
    client: httpx.Client, factory: Factory, db: Database, tenant: TenantCtx
) -> None:
    other = factory.tenant()
    theirs = seed_campaign(db, other)
    factory.donation(other, theirs)
    assert_problem(client.get(donations_url(theirs), headers=tenant.headers), 404)


@pytest.mark.parametrize("campaign_id", [UNKNOWN_ID, "nope"])
def test_list_donations_of_unknown_campaign_is_404(
    client: httpx.Client, tenant: TenantCtx, campaign_id: str
) -> None:
    r = client.get(f"/api/v1/campaigns/{campaign_id}/donations", headers=tenant.headers)
    assert_problem(r, 404)


def test_list_donations_of_empty_campaign_is_an_empty_page(
    client: httpx.Client, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    r = client.get(donations_url(campaign), headers=tenant.headers)
    assert r.status_code == 200
    assert r.json() == {"data": [], "next_cursor": None}


def test_list_donations_never_shows_other_tenants_rows(
    client: httpx.Client, factory: Factory, db: Database, tenant: TenantCtx
) -> None:
    other = factory.tenant()
    factory.donation(other, seed_campaign(db, other))
    r = client.get("/api/v1/donations", headers=tenant.headers)
    assert r.status_code == 200 and r.json() == {"data": [], "next_cursor": None}
