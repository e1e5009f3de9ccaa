"""The audit log through the partner API: one row per write (api/audit.py), failures
included, unauthenticated junk left out, no secrets or donor contacts in it, and
GET /api/v1/audit for owners only, tenant-isolated, with filters and cursor paging."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from sanic import Sanic

from api.audit import audited_route
from api.server import create_app
from tests.factories import Factory, TenantCtx, bearer
from tests.services import Database, api_env

PASSWORD = "uma senha de auditoria 42"
IP = "203.0.113.7"


@pytest.fixture
def tenant(factory: Factory) -> TenantCtx:
    return factory.tenant()


def call(
    client: httpx.Client,
    method: str,
    path: str,
    headers: dict[str, str],
    *,
    ip: str = IP,
    **kw: Any,
) -> tuple[httpx.Response, str]:
    """A request with its own X-Request-ID and a client address (the test client is
    a trusted proxy, as the edge is): the response and that request id."""
    rid = f"t-{uuid.uuid4().hex}"
    sent = {**headers, "X-Request-ID": rid, "X-Real-IP": ip}
    r = client.request(method, path, headers=sent, **kw)
    return r, rid


def rows_of(db: Database, request_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = db.fetch(
        "SELECT *, host(client_ip) AS ip FROM audit_log WHERE request_id = $1", request_id
    )
    return rows


def one_row(db: Database, request_id: str) -> asyncpg.Record:
    rows = rows_of(db, request_id)
    assert len(rows) == 1, rows
    return rows[0]


def key_row(db: Database, tenant: TenantCtx) -> asyncpg.Record:
    row = db.fetchrow(
        "SELECT id, prefix FROM api_key WHERE tenant_id = $1 AND $2 LIKE prefix || '%'",
        tenant.id,
        tenant.key,
    )
    assert row is not None
    return row


def assert_row(
    row: asyncpg.Record,
    *,
    tenant: TenantCtx,
    action: str,
    resource_type: str,
    resource_id: Any,
    status: int,
    actor_kind: str = "api_key",
) -> None:
    assert row["tenant_id"] == tenant.id
    assert (row["action"], row["resource_type"]) == (action, resource_type)
    assert str(row["resource_id"]) == str(resource_id)
    assert row["status"] == status
    assert row["success"] is (status < 400)
    assert row["actor_kind"] == actor_kind
    assert row["ip"] == IP
    assert row["method"] in ("POST", "PUT", "PATCH", "DELETE")


# --- recording ----------------------------------------------------------------------


def test_every_write_kind_leaves_exactly_one_row(
    client: httpx.Client, db: Database, factory: Factory, tenant: TenantCtx
) -> None:
    key = key_row(db, tenant)
    h = tenant.headers

    def check(r: httpx.Response, rid: str, status: int, action: str, rtype: str, rid_: Any) -> None:
        assert r.status_code == status, r.text
        assert r.headers["X-Request-ID"] == rid
        row = one_row(db, rid)
        assert_row(row, tenant=tenant, action=action, resource_type=rtype, resource_id=rid_,
                   status=status)  # fmt: skip
        assert row["actor_id"] == key["id"] and row["actor_display"] == key["prefix"]
        assert row["request_id"] == rid

    body = {
        "slug": f"c-{uuid.uuid4().hex[:12]}",
        "title": "Agasalhos",
        "status": "published",
        "items": [{"name": "Cobertor", "unit": "unit", "quantity_requested": 30}],
    }
    r, rid = call(client, "POST", "/api/v1/campaigns", h, json=body)
    campaign = r.json()
    cid = campaign["id"]
    check(r, rid, 201, "campaign.create", "campaign", cid)
    assert one_row(db, rid)["path"] == "/api/v1/campaigns"

    r, rid = call(client, "PATCH", f"/api/v1/campaigns/{cid}", h, json={"title": "Agasalhos 2"})
    check(r, rid, 200, "campaign.update", "campaign", cid)

    r, rid = call(client, "POST", f"/api/v1/campaigns/{cid}/items", h,
                  json={"name": "Meias", "unit": "unit", "quantity_requested": 10})  # fmt: skip
    item_id = r.json()["id"]
    check(r, rid, 201, "item.create", "item", item_id)
    r, rid = call(client, "PATCH", f"/api/v1/campaigns/{cid}/items/{item_id}", h,
                  json={"quantity_requested": 12})  # fmt: skip
    check(r, rid, 200, "item.update", "item", item_id)
    r, rid = call(client, "DELETE", f"/api/v1/campaigns/{cid}/items/{item_id}", h)
    check(r, rid, 204, "item.delete", "item", item_id)

    donation_body = {"item_id": campaign["items"][0]["id"], "quantity": 2, "donor_name": "Ana"}
    r, rid = call(client, "POST", f"/api/v1/campaigns/{cid}/donations", h, json=donation_body)
    did = r.json()["id"]
    check(r, rid, 201, "donation.create", "donation", did)
    for verb in ("confirm", "deliver"):
        r, rid = call(client, "POST", f"/api/v1/donations/{did}/{verb}", h)
        check(r, rid, 200, f"donation.{verb}", "donation", did)
    r, rid = call(client, "POST", f"/api/v1/donations/{did}/anonymize", h)
    check(r, rid, 200, "donation.anonymize", "donation", did)
    other = factory.donation(tenant, campaign)
    r, rid = call(client, "POST", f"/api/v1/donations/{other['id']}/cancel", h)
    check(r, rid, 200, "donation.cancel", "donation", other["id"])

    r, rid = call(client, "POST", "/api/v1/keys", h, json={"scopes": ["read"]})
    new_key = r.json()["id"]
    check(r, rid, 201, "key.create", "key", new_key)
    r, rid = call(client, "DELETE", f"/api/v1/keys/{new_key}", h)
    check(r, rid, 204, "key.revoke", "key", new_key)

    r, rid = call(client, "POST", "/api/v1/cache/purge", h)
    check(r, rid, 202, "cache.purge", "cache", None)

    bare = factory.campaign(tenant)
    r, rid = call(client, "DELETE", f"/api/v1/campaigns/{bare['id']}", h)
    check(r, rid, 204, "campaign.delete", "campaign", bare["id"])


def test_idempotent_replay_is_a_row_of_its_own_with_the_same_resource(
    client: httpx.Client, db: Database, factory: Factory, tenant: TenantCtx
) -> None:
    campaign = factory.campaign(tenant)
    body = {"item_id": campaign["items"][0]["id"], "quantity": 1}
    headers = {**tenant.headers, "Idempotency-Key": str(uuid.uuid4())}
    path = f"/api/v1/campaigns/{campaign['id']}/donations"
    first, rid1 = call(client, "POST", path, headers, json=body)
    again, rid2 = call(client, "POST", path, headers, json=body)
    assert first.status_code == again.status_code == 201
    assert one_row(db, rid1)["resource_id"] == one_row(db, rid2)["resource_id"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "action", "resource_type"),
    [
        ("POST", "/api/v1/campaigns", {}, 422, "campaign.create", "campaign"),
        ("POST", "/api/v1/campaigns", "not json", 400, "campaign.create", "campaign"),
        ("PATCH", "/api/v1/campaigns/{unknown}", {"title": "x"}, 404, "campaign.update",
         "campaign"),
        ("DELETE", "/api/v1/keys/{unknown}", None, 404, "key.revoke", "key"),
        ("POST", "/api/v1/donations/{unknown}/confirm", None, 404, "donation.confirm",
         "donation"),
        ("DELETE", "/api/v1/campaigns/not-a-uuid", None, 404, "campaign.delete", "campaign"),
    ],
)  # fmt: skip
def test_failed_write_is_recorded_with_its_status(
    client: httpx.Client,
    db: Database,
    tenant: TenantCtx,
    method: str,
    path: str,
    body: Any,
    status: int,
    action: str,
    resource_type: str,
) -> None:
    unknown = uuid.uuid4()
    kw: dict[str, Any] = {}
    if isinstance(body, str):
        kw["content"] = body
        kw["headers"] = {"Content-Type": "application/json"}
    elif body is not None:
        kw["json"] = body
    extra = kw.pop("headers", {})
    r, rid = call(client, method, path.format(unknown=unknown), {**tenant.headers, **extra}, **kw)
    assert r.status_code == status, r.text
    row = one_row(db, rid)
    expected_id = unknown if "{unknown}" in path else None
    assert_row(row, tenant=tenant, action=action, resource_type=resource_type,
               resource_id=expected_id, status=status)  # fmt: skip


def test_conflict_and_forbidden_are_recorded(
    client: httpx.Client, db: Database, factory: Factory, tenant: TenantCtx
) -> None:
    campaign = factory.campaign(tenant)
    donation = factory.donation(tenant, campaign)
    r, rid = call(client, "POST", f"/api/v1/donations/{donation['id']}/deliver", tenant.headers)
    assert r.status_code == 409
    assert_row(one_row(db, rid), tenant=tenant, action="donation.deliver",
               resource_type="donation", resource_id=donation["id"], status=409)  # fmt: skip
    r, rid = call(client, "DELETE", f"/api/v1/campaigns/{campaign['id']}", tenant.headers)
    assert r.status_code == 409
    assert one_row(db, rid)["status"] == 409

    reader = factory.key(tenant, ("read",))
    r, rid = call(client, "POST", "/api/v1/campaigns", bearer(reader), json={"title": "x"})
    assert r.status_code == 403
    row = one_row(db, rid)
    assert row["status"] == 403 and row["success"] is False
    assert row["actor_display"] and reader.startswith(row["actor_display"])


def test_unauthenticated_writes_and_public_pledges_are_not_recorded(
    client: httpx.Client, db: Database, factory: Factory, tenant: TenantCtx
) -> None:
    campaign = factory.campaign(tenant)
    rids = []
    for headers in ({}, bearer("cnd_live_nope_nope"), bearer("not.a.jwt")):
        r, rid = call(client, "POST", "/api/v1/campaigns", headers, json={"title": "x"})
        assert r.status_code == 401
        rids.append(rid)
    wrong = {"tenant": tenant.slug, "username": "nobody", "password": "wrong pass"}
    r, rid = call(client, "POST", "/api/token/", {}, json=wrong)
    assert r.status_code == 401
    rids.append(rid)
    r, rid = call(client, "POST", "/api/token/refresh/", {}, json={"refresh": "x.y.z"})
    assert r.status_code == 401
    rids.append(rid)
    r, rid = call(
        client, "POST", f"/api/public/{tenant.slug}/campaigns/{campaign['slug']}/donations",
        {"Idempotency-Key": str(uuid.uuid4())},
        json={"item_id": campaign["items"][0]["id"], "quantity": 1, "donor_name": "Bia",
              "donor_contact": "bia@example.org"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    rids.append(rid)
    for rid in rids:
        assert rows_of(db, rid) == []


def test_staff_login_refresh_and_writes_name_the_user(
    client: httpx.Client, db: Database, factory: Factory, tenant: TenantCtx
) -> None:
    username = f"ana-{uuid.uuid4().hex[:8]}"
    user_id = factory.staff_user(tenant, username, "editor", PASSWORD)
    credentials = {"tenant": tenant.slug, "username": username, "password": PASSWORD}
    login, rid = call(client, "POST", "/api/token/", {}, json=credentials)
    assert login.status_code == 200
    row = one_row(db, rid)
    assert_row(row, tenant=tenant, action="staff_user.login", resource_type="staff_user",
               resource_id=user_id, status=200, actor_kind="staff_user")  # fmt: skip
    assert row["actor_id"] == user_id and row["actor_display"] == username

    refreshed, rid = call(client, "POST", "/api/token/refresh/", {},
                          json={"refresh": login.json()["refresh"]})  # fmt: skip
    assert refreshed.status_code == 200
    assert one_row(db, rid)["action"] == "staff_user.refresh"

    r, rid = call(client, "POST", "/api/v1/campaigns", bearer(refreshed.json()["access"]),
                  json={"title": "Pelo editor", "slug": f"c-{uuid.uuid4().hex[:12]}"})  # fmt: skip
    assert r.status_code == 201, r.text
    row = one_row(db, rid)
    assert (row["actor_kind"], row["actor_id"], row["actor_display"]) == (
        "staff_user", user_id, username)  # fmt: skip


def test_rows_hold_no_secret_and_no_donor_contact(
    client: httpx.Client, db: Database, factory: Factory, tenant: TenantCtx
) -> None:
    secrets: list[str] = [tenant.key, tenant.key.split("_", 3)[3], PASSWORD]
    issued = client.post("/api/v1/keys", json={"scopes": ["read"]}, headers=tenant.headers)
    assert issued.status_code == 201
    secrets += [issued.json()["key"], issued.json()["key"].split("_", 3)[3]]
    username = f"caio-{uuid.uuid4().hex[:8]}"
    factory.staff_user(tenant, username, "owner", PASSWORD)
    login = client.post(
        "/api/token/", json={"tenant": tenant.slug, "username": username, "password": PASSWORD}
    )
    assert login.status_code == 200
    secrets += [login.json()["access"], login.json()["refresh"]]
    campaign = factory.campaign(tenant)
    contact, message = "segredo.doadora@example.org", "mensagem-particular-xyz"
    donor = "Doadora Reservada Qwz"
    factory.donation(tenant, campaign, donor_contact=contact, message=message, donor_name=donor)
    # A failed write with the same fields (the body is never read into the row).
    r = client.post(
        f"/api/v1/campaigns/{campaign['id']}/donations",
        json={"item_id": str(uuid.uuid4()), "quantity": 1, "donor_contact": contact},
        headers=bearer(login.json()["access"]),
    )
    assert r.status_code == 422
    secrets += [contact, message, donor, f"Bearer {tenant.key}"]

    rows = db.fetch("SELECT a::text FROM audit_log a WHERE tenant_id = $1", tenant.id)
    assert len(rows) >= 5  # key, login, campaign, donation, the failed donation
    dump = "\n".join(r[0] for r in rows)
    for secret in secrets:
        assert secret not in dump


def test_an_audit_row_that_cannot_be_written_does_not_fail_the_request(
    client: httpx.Client, db: Database, factory: Factory, tenant: TenantCtx
) -> None:
    def lost() -> float:
        text = client.get("/metrics").text
        found = re.findall(r'^conectades_audit_failures_total\{action="campaign.create"\} (\S+)$',
                           text, re.M)  # fmt: skip
        return float(found[0]) if found else 0.0

    before = lost()
    db.execute("REVOKE INSERT ON audit_log FROM conectades_app")
    try:
        body = {"title": "x", "slug": f"c-{uuid.uuid4().hex[:12]}"}
        r, rid = call(client, "POST", "/api/v1/campaigns", tenant.headers, json=body)
    finally:
        db.execute("GRANT INSERT ON audit_log TO conectades_app")
    assert r.status_code == 201, r.text
    assert rows_of(db, rid) == []
    assert lost() == before + 1


# --- reading ------------------------------------------------------------------------


def owner_token(client: httpx.Client, factory: Factory, tenant: TenantCtx, role: str) -> str:
    username = f"{role}-{uuid.uuid4().hex[:8]}"
    factory.staff_user(tenant, username, role, PASSWORD)
    r = client.post(
        "/api/token/", json={"tenant": tenant.slug, "username": username, "password": PASSWORD}
    )
    assert r.status_code == 200, r.text
    token: str = r.json()["access"]
    return token


def test_owner_lists_newest_first_with_filters_and_cursor(
    client: httpx.Client, db: Database, factory: Factory, tenant: TenantCtx
) -> None:
    key = key_row(db, tenant)
    first = factory.campaign(tenant)
    second = factory.campaign(tenant)
    client.patch(f"/api/v1/campaigns/{first['id']}", json={"title": "x"}, headers=tenant.headers)

    r = client.get("/api/v1/audit", headers=tenant.headers)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [d["action"] for d in data[:3]] == ["campaign.update", "campaign.create",
                                               "campaign.create"]  # fmt: skip
    assert [d["resource_id"] for d in data[:3]] == [first["id"], second["id"], first["id"]]
    top = data[0]
    assert top["actor_kind"] == "api_key" and top["actor_id"] == str(key["id"])
    assert top["actor_display"] == key["prefix"] and top["status"] == 200 and top["success"]
    assert set(top) >= {"occurred_at", "client_ip", "request_id", "method", "path"}
    assert "tenant_id" not in top and "detail" not in top

    by_resource = client.get(f"/api/v1/audit?resource={first['id']}", headers=tenant.headers)
    assert [d["action"] for d in by_resource.json()["data"]] == ["campaign.update",
                                                                 "campaign.create"]  # fmt: skip
    by_type = client.get("/api/v1/audit?resource=campaign&action=campaign.update",
                         headers=tenant.headers).json()["data"]  # fmt: skip
    assert [d["resource_id"] for d in by_type] == [first["id"]]
    for actor in (str(key["id"]), key["prefix"]):
        mine = client.get("/api/v1/audit", params={"actor": actor}, headers=tenant.headers)
        assert len(mine.json()["data"]) == 3
    nobody = client.get(f"/api/v1/audit?actor={uuid.uuid4()}", headers=tenant.headers)
    assert nobody.json() == {"data": [], "next_cursor": None}

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/audit", params=params, headers=tenant.headers).json()
        seen += [d["id"] for d in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [d["id"] for d in data] and len(seen) == 3


def test_staff_owner_reads_and_others_are_forbidden(
    client: httpx.Client, factory: Factory, tenant: TenantCtx
) -> None:
    factory.campaign(tenant)
    owner = owner_token(client, factory, tenant, "owner")
    r = client.get("/api/v1/audit", headers=bearer(owner))
    assert r.status_code == 200 and r.json()["data"]
    for role in ("editor", "viewer"):
        token = owner_token(client, factory, tenant, role)
        r = client.get("/api/v1/audit", headers=bearer(token))
        assert r.status_code == 403, r.text
        assert r.headers["content-type"] == "application/problem+json"
    for scopes in (("read",), ("read", "write")):
        r = client.get("/api/v1/audit", headers=bearer(factory.key(tenant, scopes)))
        assert r.status_code == 403, r.text
    assert client.get("/api/v1/audit").status_code == 401


def test_tenant_never_sees_another_tenants_rows(
    client: httpx.Client, db: Database, factory: Factory
) -> None:
    a, b = factory.tenant(), factory.tenant()
    campaign = factory.campaign(a)
    a_rows = client.get("/api/v1/audit", headers=a.headers).json()["data"]
    assert a_rows
    factory.campaign(b)
    b_rows = client.get("/api/v1/audit", params={"limit": "100"}, headers=b.headers).json()["data"]
    assert {r["id"] for r in b_rows}.isdisjoint({r["id"] for r in a_rows})
    a_key = key_row(db, a)
    for query in (
        {"resource": campaign["id"]},
        {"actor": str(a_key["id"])},
        {"actor": a_key["prefix"]},
    ):
        r = client.get("/api/v1/audit", params=query, headers=b.headers)
        assert r.status_code == 200 and r.json() == {"data": [], "next_cursor": None}
    # A's cursor is only a position: in B's hands it pages B's own rows.
    factory.campaign(a)
    page = client.get("/api/v1/audit", params={"limit": "1"}, headers=a.headers).json()
    assert page["next_cursor"] is not None
    r = client.get("/api/v1/audit", params={"cursor": page["next_cursor"]}, headers=b.headers)
    assert r.status_code == 200
    assert {x["id"] for x in r.json()["data"]}.isdisjoint({x["id"] for x in a_rows})


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ("limit=0", 422, "limit"),
        ("limit=101", 422, "limit"),
        ("limit=abc", 422, "limit"),
        ("cursor=not-a-cursor", 400, None),
        ("cursor=" + "A" * 600, 400, None),
        ("action=campaign", 422, "action"),
        ("action=Campaign.Create", 422, "action"),
        ("actor=a%20b%21", 422, "actor"),
        ("actor=" + "x" * 201, 422, "actor"),
        ("resource=Bad%21", 422, "resource"),
        ("resource=" + "a" * 51, 422, "resource"),
    ],
)
def test_bad_query_parameters_are_4xx_naming_the_field(
    client: httpx.Client, tenant: TenantCtx, query: str, status: int, field: str | None
) -> None:
    r = client.get(f"/api/v1/audit?{query}", headers=tenant.headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    if field:
        assert [e["field"] for e in r.json()["errors"]] == [field]


# --- coverage -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(db: Database) -> Iterator[Sanic]:  # type: ignore[type-arg]
    """The app as the API server builds it (same code, same settings), not served."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in api_env(db).items():
            env.setenv(name, value)
        app = create_app()
    try:
        yield app
    finally:
        Sanic.unregister_app(app)


def write_routes(app: Sanic) -> list[Any]:  # type: ignore[type-arg]
    return [
        r
        for r in app.router.routes
        if r.methods & {"POST", "PUT", "PATCH", "DELETE"} and r.path.startswith("api/v1/")
    ]


def test_every_partner_write_route_is_audited(app: Sanic) -> None:  # type: ignore[type-arg]
    routes = write_routes(app)
    assert len(routes) >= 14  # those of 2026-12-03; webhooks add theirs
    for route in routes:
        found = audited_route(route)
        assert found is not None, route.name
        assert re.fullmatch(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*", found.action), route.name


def test_every_partner_write_route_records_one_row_end_to_end(
    app: Sanic,  # type: ignore[type-arg]
    client: httpx.Client,
    db: Database,
    tenant: TenantCtx,
) -> None:
    """Each registered write route (those added later too), called with unknown ids
    and an empty body: whatever it answers, exactly one row with its action."""
    for route in write_routes(app):
        path = "/" + re.sub(r"<[^>]+>", lambda _: str(uuid.uuid4()), route.path)
        for method in sorted(route.methods & {"POST", "PUT", "PATCH", "DELETE"}):
            r, rid = call(client, method, path, tenant.headers, json={})
            assert r.status_code < 500, (route.name, r.text)
            row = one_row(db, rid)
            expected = audited_route(route)
            assert expected is not None
            assert row["action"] == expected.action, route.name
            assert row["status"] == r.status_code and row["request_id"] == rid


def test_a_donations_export_is_audited_but_other_reads_are_not(
    client: httpx.Client, db: Database, factory: Factory, tenant: TenantCtx
) -> None:
    """The CSV export hands out donors' contacts in bulk: who exported, when, from where."""
    campaign = factory.campaign(tenant)
    factory.donation(tenant, campaign, donor_contact="ana@example.org")
    r, rid = call(client, "GET", "/api/v1/donations/export?format=csv", tenant.headers)
    assert r.status_code == 200, r.text
    assert "ana@example.org" in r.text
    row = one_row(db, rid)
    assert (row["action"], row["resource_type"], row["method"]) == (
        "donation.export",
        "donation",
        "GET",
    )
    assert row["resource_id"] is None and row["status"] == 200 and row["ip"] == IP
    assert "ana@example.org" not in str(dict(row))
    listed, rid = call(client, "GET", "/api/v1/donations", tenant.headers)
    assert listed.status_code == 200 and rows_of(db, rid) == []
