"""The webhooks routes: permissions, validation (the URL's SSRF check included),
paging, unknown and other tenants' ids. No worker runs here: nothing is sent."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.factories import Factory, bearer
from tests.services import Database
from tests.worker.conftest import create_webhook, record_event

LOOPBACK = "http://127.0.0.1:9/discard"
GOOD = {"url": "https://hooks.example.org/conectades", "event_types": ["donation.created"]}


def _errors(r: httpx.Response) -> list[str]:
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    return [e["field"] for e in r.json().get("errors") or []]


def test_create_shows_the_secret_once_and_never_again(
    hooks_factory: Factory, hooks_client: httpx.Client
) -> None:
    tenant = hooks_factory.tenant()
    r = hooks_client.post(
        "/api/v1/webhooks", json={**GOOD, "description": "CRM"}, headers=tenant.headers
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert r.headers["location"] == f"/api/v1/webhooks/{created['id']}"
    assert created["secret"].startswith("whsec_")
    assert created["enabled"] is True and created["description"] == "CRM"
    got = hooks_client.get(f"/api/v1/webhooks/{created['id']}", headers=tenant.headers).json()
    listed = hooks_client.get("/api/v1/webhooks", headers=tenant.headers).json()["data"]
    assert "secret" not in got and all("secret" not in w for w in listed)
    assert [w["id"] for w in listed] == [created["id"]]


def test_managing_webhooks_needs_the_keys_permission(
    hooks_factory: Factory, hooks_client: httpx.Client
) -> None:
    tenant = hooks_factory.tenant()
    hook = create_webhook(hooks_client, tenant, GOOD["url"])
    writer = bearer(hooks_factory.key(tenant, ("read", "write")))
    for method, path in [
        ("GET", "/api/v1/webhooks"),
        ("POST", "/api/v1/webhooks"),
        ("GET", f"/api/v1/webhooks/{hook['id']}"),
        ("PATCH", f"/api/v1/webhooks/{hook['id']}"),
        ("DELETE", f"/api/v1/webhooks/{hook['id']}"),
        ("POST", f"/api/v1/webhooks/{hook['id']}/rotate"),
        ("GET", f"/api/v1/webhooks/{hook['id']}/deliveries"),
    ]:
        r = hooks_client.request(
            method, path, json=GOOD if method != "GET" else None, headers=writer
        )
        assert r.status_code == 403, (method, path, r.text)
    assert hooks_client.get("/api/v1/webhooks").status_code == 401
    keys_only = bearer(hooks_factory.key(tenant, ("keys",)))
    assert hooks_client.get("/api/v1/webhooks", headers=keys_only).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event_types": ["donation.created"]}, "url"),
        ({"url": GOOD["url"]}, "event_types"),
        ({**GOOD, "url": 5}, "url"),
        ({**GOOD, "url": ""}, "url"),
        ({**GOOD, "event_types": "donation.created"}, "event_types"),
        ({**GOOD, "event_types": []}, "event_types"),
        ({**GOOD, "event_types": ["donation.exploded"]}, "event_types"),
        ({**GOOD, "event_types": ["donation.created", "donation.created"]}, "event_types"),
        ({**GOOD, "enabled": "yes"}, "enabled"),
        ({**GOOD, "description": "x" * 501}, "description"),
        ({**GOOD, "secret": "whsec_mine"}, "secret"),
        ({**GOOD, "url": "ftp://hooks.example.org/x"}, "url"),
        ({**GOOD, "url": "hooks.example.org/x"}, "url"),
        ({**GOOD, "url": "https://user:pass@hooks.example.org/x"}, "url"),
        ({**GOOD, "url": "https://hooks.example.org/" + "a" * 2000}, "url"),
        ({**GOOD, "url": "https://hooks.example.org/a b"}, "url"),
        ({**GOOD, "url": "https://hooks.example.org:99999/"}, "url"),
        ({**GOOD, "url": "https:///nohost"}, "url"),
        # Not the allowed 127.0.0.1: other loopback spellings, private, link-local,
        # metadata, CGNAT, unspecified, local names.
        ({**GOOD, "url": "http://127.0.0.2/"}, "url"),
        ({**GOOD, "url": "http://[::1]/"}, "url"),
        ({**GOOD, "url": "http://0.0.0.0/"}, "url"),
        ({**GOOD, "url": "http://2130706433/"}, "url"),
        ({**GOOD, "url": "http://0x7f.1/"}, "url"),
        ({**GOOD, "url": "http://0177.0.0.1/"}, "url"),
        ({**GOOD, "url": "http://[::ffff:127.0.0.1]/"}, "url"),
        ({**GOOD, "url": "http://10.0.0.5/"}, "url"),
        ({**GOOD, "url": "http://192.168.1.1/"}, "url"),
        ({**GOOD, "url": "http://169.254.169.254/latest/meta-data/"}, "url"),
        ({**GOOD, "url": "http://[fe80::1]/"}, "url"),
        ({**GOOD, "url": "http://[fd00::1]/"}, "url"),
        ({**GOOD, "url": "http://100.64.0.1/"}, "url"),
        ({**GOOD, "url": "http://localhost:8000/"}, "url"),
    ],
)
def test_create_refuses_bad_bodies_naming_the_field(
    hooks_factory: Factory, hooks_client: httpx.Client, body: dict[str, Any], field: str
) -> None:
    tenant = hooks_factory.tenant()
    r = hooks_client.post("/api/v1/webhooks", json=body, headers=tenant.headers)
    assert r.status_code == 422, r.text
    assert field in _errors(r)


def test_the_allowed_host_and_public_hosts_are_accepted(
    hooks_factory: Factory, hooks_client: httpx.Client
) -> None:
    tenant = hooks_factory.tenant()
    for url in ("http://127.0.0.1:9/x", "https://93.184.215.14/hook", "https://hooks.example.org/"):
        create_webhook(hooks_client, tenant, url)


def test_malformed_empty_oversized_and_wrong_type_bodies(
    hooks_factory: Factory, hooks_client: httpx.Client
) -> None:
    tenant = hooks_factory.tenant()
    h = tenant.headers
    r = hooks_client.post(
        "/api/v1/webhooks", content=b"{nope", headers={**h, "content-type": "application/json"}
    )
    assert r.status_code == 400
    r = hooks_client.post("/api/v1/webhooks", content=b"", headers=h)
    assert r.status_code == 400
    r = hooks_client.post("/api/v1/webhooks", json=[GOOD], headers=h)
    assert r.status_code == 422
    r = hooks_client.post(
        "/api/v1/webhooks", content=b"url=x", headers={**h, "content-type": "text/plain"}
    )
    assert r.status_code == 415
    r = hooks_client.post(
        "/api/v1/webhooks", json={**GOOD, "description": "x" * 100_000}, headers=h
    )
    assert r.status_code == 413


def test_patch_validates_like_create(hooks_factory: Factory, hooks_client: httpx.Client) -> None:
    tenant = hooks_factory.tenant()
    hook = create_webhook(hooks_client, tenant, GOOD["url"])
    url = f"/api/v1/webhooks/{hook['id']}"
    assert hooks_client.patch(url, json={}, headers=tenant.headers).status_code == 400
    for body, field in [
        ({"url": "http://169.254.169.254/"}, "url"),
        ({"url": None}, "url"),
        ({"enabled": None}, "enabled"),
        ({"event_types": []}, "event_types"),
        ({"event_types": ["nope.nope"]}, "event_types"),
        ({"colour": "red"}, "colour"),
    ]:
        r = hooks_client.patch(url, json=body, headers=tenant.headers)
        assert r.status_code == 422, (body, r.text)
        assert field in _errors(r)
    r = hooks_client.patch(
        url,
        json={
            "url": "https://other.example.org/h",
            "event_types": ["campaign.updated"],
            "description": "new",
        },
        headers=tenant.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["url"] == "https://other.example.org/h"
    assert r.json()["event_types"] == ["campaign.updated"]


def test_rotate_validates_its_overlap(hooks_factory: Factory, hooks_client: httpx.Client) -> None:
    tenant = hooks_factory.tenant()
    hook = create_webhook(hooks_client, tenant, GOOD["url"])
    url = f"/api/v1/webhooks/{hook['id']}/rotate"
    for body in ({"overlap_hours": -1}, {"overlap_hours": 169}, {"overlap_hours": "24"}, {"x": 1}):
        r = hooks_client.post(url, json=body, headers=tenant.headers)
        assert r.status_code == 422, (body, r.text)
    r = hooks_client.post(url, json={"overlap_hours": 1.5}, headers=tenant.headers)
    assert r.status_code == 200 and r.json()["secret"] != hook["secret"]


def test_unknown_ids_are_404(hooks_factory: Factory, hooks_client: httpx.Client) -> None:
    tenant = hooks_factory.tenant()
    hook = create_webhook(hooks_client, tenant, GOOD["url"])
    missing = uuid.uuid4()
    for method, path in [
        ("GET", f"/api/v1/webhooks/{missing}"),
        ("GET", "/api/v1/webhooks/not-a-uuid"),
        ("PATCH", f"/api/v1/webhooks/{missing}"),
        ("DELETE", f"/api/v1/webhooks/{missing}"),
        ("POST", f"/api/v1/webhooks/{missing}/rotate"),
        ("GET", f"/api/v1/webhooks/{missing}/deliveries"),
        ("POST", f"/api/v1/webhooks/{hook['id']}/deliveries/{missing}/retry"),
        ("POST", f"/api/v1/webhooks/{hook['id']}/deliveries/nope/retry"),
    ]:
        body = {"enabled": True} if method == "PATCH" else None
        r = hooks_client.request(method, path, json=body, headers=tenant.headers)
        assert r.status_code == 404, (method, path, r.text)


def test_delete_removes_the_endpoint(hooks_factory: Factory, hooks_client: httpx.Client) -> None:
    tenant = hooks_factory.tenant()
    hook = create_webhook(hooks_client, tenant, GOOD["url"])
    r = hooks_client.delete(f"/api/v1/webhooks/{hook['id']}", headers=tenant.headers)
    assert r.status_code == 204
    assert (
        hooks_client.get(f"/api/v1/webhooks/{hook['id']}", headers=tenant.headers).status_code
        == 404
    )


def test_deliveries_are_paged_filtered_and_checked(
    db: Database, api_pool: Any, hooks_factory: Factory, hooks_client: httpx.Client
) -> None:
    tenant = hooks_factory.tenant()
    # No worker runs in this module: deliveries stay pending. Loopback (a closed port),
    # so that a later test's worker never sends them anywhere else.
    hook = create_webhook(hooks_client, tenant, LOOPBACK)
    events = [
        record_event(db, api_pool, tenant, "donation.created", uuid.uuid4()) for _ in range(3)
    ]
    url = f"/api/v1/webhooks/{hook['id']}/deliveries"
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = hooks_client.get(url, params=params, headers=tenant.headers).json()
        seen += [d["event_id"] for d in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(e["id"]) for e in reversed(events)]
    pending = hooks_client.get(url, params={"status": "pending"}, headers=tenant.headers).json()
    assert len(pending["data"]) == 3 and pending["data"][0]["attempts"] == 0
    assert (
        hooks_client.get(url, params={"status": "dead"}, headers=tenant.headers).json()["data"]
        == []
    )
    for params in ({"status": "lost"}, {"limit": 0}, {"limit": "x"}, {"limit": 101}):
        r = hooks_client.get(url, params=params, headers=tenant.headers)
        assert r.status_code == 422, (params, r.text)
        assert next(iter(params)) in _errors(r)
    for cursor in ("!!", "WyJ4Il0", "W3RydWVd"):  # not base64 JSON; ["x"]; [true]
        r = hooks_client.get(url, params={"cursor": cursor}, headers=tenant.headers)
        assert r.status_code == 400, (cursor, r.text)


def test_retry_of_a_pending_delivery_schedules_it_now(
    db: Database, api_pool: Any, hooks_factory: Factory, hooks_client: httpx.Client
) -> None:
    tenant = hooks_factory.tenant()
    hook = create_webhook(hooks_client, tenant, LOOPBACK)
    record_event(db, api_pool, tenant, "donation.created", uuid.uuid4())
    url = f"/api/v1/webhooks/{hook['id']}/deliveries"
    (delivery,) = hooks_client.get(url, headers=tenant.headers).json()["data"]
    # Being sent now (leased): 409.
    db.execute(
        "UPDATE webhook_delivery SET leased_until = now() + interval '1 minute' WHERE id = $1",
        uuid.UUID(delivery["id"]),
    )
    r = hooks_client.post(f"{url}/{delivery['id']}/retry", headers=tenant.headers)
    assert r.status_code == 409, r.text
    db.execute(
        "UPDATE webhook_delivery SET leased_until = NULL, status = 'dead' WHERE id = $1",
        uuid.UUID(delivery["id"]),
    )
    r = hooks_client.post(f"{url}/{delivery['id']}/retry", headers=tenant.headers)
    assert r.status_code == 202 and r.json()["status"] == "pending"
    assert r.json()["message_id"] == delivery["message_id"]
