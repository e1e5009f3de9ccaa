"""Partner API: keys (list, issue with the secret shown once, revoke) and key auth."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.factories import UNKNOWN_ID, Factory, TenantCtx, bearer, key_secret
from tests.services import Database, run_cli

URL = "/api/v1/keys"
PROBLEM = "application/problem+json"
MB = 1024 * 1024
SECRET_FIELDS = {"key", "secret", "secret_hash", "hash"}


def assert_problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    return body


def count_keys(db: Database, tenant: TenantCtx) -> int:
    count: int = db.fetchval("SELECT count(*) FROM api_key WHERE tenant_id = $1", tenant.id)
    return count


def future(days: int = 30) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def issue(client: httpx.Client, tenant: TenantCtx, **body: Any) -> dict[str, Any]:
    payload = {"scopes": ["read"], "label": "test", **body}
    r = client.post(URL, json=payload, headers=tenant.headers)
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


def test_create_key_shows_the_full_key_once_and_stores_only_its_sha256(
    client: httpx.Client, factory: Factory, db: Database
) -> None:
    tenant = factory.tenant()
    expires = future(10)
    data = issue(client, tenant, scopes=["read", "write"], label="Site", expires_at=expires)
    assert data["key"].startswith("cnd_live_") and data["key"].startswith(data["prefix"] + "_")
    assert data["scopes"] == ["read", "write"]
    assert data["label"] == "Site"
    assert data["status"] == "live"
    assert data["revoked_at"] is None and data["last_used_at"] is None
    assert datetime.fromisoformat(data["expires_at"]) == datetime.fromisoformat(expires)
    assert "secret_hash" not in data
    row = db.fetchrow("SELECT * FROM api_key WHERE id = $1", uuid.UUID(data["id"]))
    assert row is not None and row["tenant_id"] == tenant.id
    assert bytes(row["secret_hash"]) == hashlib.sha256(data["key"].encode()).digest()
    stored = " ".join(str(v) for v in dict(row).values())
    secret_part = key_secret(data["key"])
    assert secret_part not in stored and data["key"] not in stored


def test_created_key_works_within_its_scopes(client: httpx.Client, factory: Factory) -> None:
    tenant = factory.tenant()
    key = issue(client, tenant, scopes=["read"])["key"]
    assert client.get("/api/v1/campaigns", headers=bearer(key)).status_code == 200
    r = client.post(
        "/api/v1/campaigns",
        json={"slug": "nope", "title": "Nope", "items": []},
        headers=bearer(key),
    )
    assert_problem(r, 403)


def test_list_keys_never_shows_secrets_or_hashes(client: httpx.Client, factory: Factory) -> None:
    tenant = factory.tenant()
    issued = issue(client, tenant, scopes=["keys"], label="admin")
    r = client.get(URL, headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "private, no-store"
    body = r.json()
    assert body["next_cursor"] is None
    assert len(body["data"]) == 2  # the factory's key and the new one
    for key in body["data"]:
        assert not SECRET_FIELDS & key.keys()
        assert set(key) == {
            "id", "prefix", "scopes", "label", "created_at", "last_used_at",
            "expires_at", "revoked_at", "status",
        }  # fmt: skip
    assert issued["key"] not in r.text
    assert key_secret(issued["key"]) not in r.text
    assert key_secret(tenant.key) not in r.text


def test_list_keys_pages_newest_first_without_gaps(client: httpx.Client, factory: Factory) -> None:
    tenant = factory.tenant()
    ids = [issue(client, tenant, label=f"k{i}")["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        r = client.get(URL, params=params, headers=tenant.headers)
        assert r.status_code == 200, r.text
        seen.extend(k["id"] for k in r.json()["data"])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 6
    assert seen[:5] == list(reversed(ids))


def test_list_keys_shows_status_of_each_key(
    client: httpx.Client, factory: Factory, db: Database
) -> None:
    tenant = factory.tenant()
    revoked = issue(client, tenant, label="revoked")
    expired = issue(client, tenant, label="expired")
    db.execute(
        "UPDATE api_key SET expires_at = now() - interval '1 hour' WHERE id = $1",
        uuid.UUID(expired["id"]),
    )
    assert client.delete(f"{URL}/{revoked['id']}", headers=tenant.headers).status_code == 204
    statuses = {
        k["label"]: k["status"] for k in client.get(URL, headers=tenant.headers).json()["data"]
    }
    assert statuses == {"": "live", "revoked": "revoked", "expired": "expired"}


@pytest.mark.parametrize("cursor", ["garbage!", "W10", "WyJ4IiwieSJd", "WzEsMl0", "x" * 600])
def test_list_keys_with_bad_cursor_is_400(
    client: httpx.Client, factory: Factory, cursor: str
) -> None:
    tenant = factory.tenant()
    r = client.get(URL, params={"cursor": cursor}, headers=tenant.headers)
    assert_problem(r, 400)


@pytest.mark.parametrize("limit", ["0", "101", "x", "-1"])
def test_list_keys_with_bad_limit_is_422(
    client: httpx.Client, factory: Factory, limit: str
) -> None:
    tenant = factory.tenant()
    assert_problem(client.get(URL, params={"limit": limit}, headers=tenant.headers), 422)


def test_list_keys_shows_only_own_tenant(client: httpx.Client, factory: Factory) -> None:
    mine, other = factory.tenant(), factory.tenant()
    theirs = issue(client, other)
    r = client.get(URL, headers=mine.headers)
    assert theirs["id"] not in r.text and theirs["prefix"] not in r.text


def test_revoked_key_is_refused_on_the_next_request(
    client: httpx.Client, factory: Factory, db: Database
) -> None:
    tenant = factory.tenant()
    new = issue(client, tenant, scopes=["read"])
    assert client.get("/api/v1/campaigns", headers=bearer(new["key"])).status_code == 200
    r = client.delete(f"{URL}/{new['id']}", headers=tenant.headers)
    assert r.status_code == 204 and r.content == b""
    assert_problem(client.get("/api/v1/campaigns", headers=bearer(new["key"])), 401)
    revoked_at = db.fetchval("SELECT revoked_at FROM api_key WHERE id = $1", uuid.UUID(new["id"]))
    assert revoked_at is not None


def test_key_can_revoke_itself(client: httpx.Client, factory: Factory) -> None:
    tenant = factory.tenant()
    own = factory.key(tenant, ("keys",))
    own_id = next(
        k["id"]
        for k in client.get(URL, headers=bearer(own)).json()["data"]
        if own.startswith(k["prefix"] + "_")
    )
    assert client.delete(f"{URL}/{own_id}", headers=bearer(own)).status_code == 204
    assert_problem(client.get(URL, headers=bearer(own)), 401)


def test_revoking_twice_keeps_the_first_revocation_time(
    client: httpx.Client, factory: Factory, db: Database
) -> None:
    tenant = factory.tenant()
    new = issue(client, tenant)
    assert client.delete(f"{URL}/{new['id']}", headers=tenant.headers).status_code == 204
    first = db.fetchval("SELECT revoked_at FROM api_key WHERE id = $1", uuid.UUID(new["id"]))
    assert client.delete(f"{URL}/{new['id']}", headers=tenant.headers).status_code == 204
    again = db.fetchval("SELECT revoked_at FROM api_key WHERE id = $1", uuid.UUID(new["id"]))
    assert first == again


def test_revoked_expired_and_garbage_keys_are_all_the_same_401(
    client: httpx.Client, factory: Factory, db: Database
) -> None:
    tenant = factory.tenant()
    revoked = issue(client, tenant)
    client.delete(f"{URL}/{revoked['id']}", headers=tenant.headers)
    expired = issue(client, tenant)
    db.execute(
        "UPDATE api_key SET expires_at = now() - interval '1 second' WHERE id = $1",
        uuid.UUID(expired["id"]),
    )
    live = issue(client, tenant)["key"]
    wrong_secret = live[:-4] + ("AAAA" if not live.endswith("AAAA") else "BBBB")
    unknown = "cnd_live_abcdefghijkm_" + "A" * 43
    candidates = {
        "revoked": bearer(revoked["key"]),
        "expired": bearer(expired["key"]),
        "wrong secret": bearer(wrong_secret),
        "unknown prefix": bearer(unknown),
        "garbage": bearer("cnd_live_garbage"),
        "not a key": bearer("hello"),
        "no scheme": {"Authorization": live},
        "missing": {},
    }
    bodies = set()
    for name, headers in candidates.items():
        r = client.get(URL, headers=headers)
        assert_problem(r, 401)
        assert r.headers["www-authenticate"].lower().startswith("bearer"), name
        bodies.add(r.content)
    assert len(bodies) == 1, bodies


@pytest.mark.parametrize("scopes", [("read",), ("write",), ("read", "write")])
def test_key_without_keys_scope_is_403_everywhere(
    client: httpx.Client, factory: Factory, db: Database, scopes: tuple[str, ...]
) -> None:
    tenant = factory.tenant()
    weak = bearer(factory.key(tenant, scopes))
    target = issue(client, tenant)
    before = count_keys(db, tenant)
    assert_problem(client.get(URL, headers=weak), 403)
    assert_problem(client.post(URL, json={"scopes": ["read"]}, headers=weak), 403)
    assert_problem(client.delete(f"{URL}/{target['id']}", headers=weak), 403)
    assert count_keys(db, tenant) == before
    assert (
        db.fetchval("SELECT revoked_at FROM api_key WHERE id = $1", uuid.UUID(target["id"])) is None
    )


def test_owner_staff_token_manages_keys_and_editor_cannot(
    client: httpx.Client, factory: Factory
) -> None:
    tenant = factory.tenant()
    tokens = {}
    for role in ("owner", "editor"):
        name = f"{role}-{uuid.uuid4().hex[:6]}"
        factory.staff_user(tenant, name, role, "correct horse battery")
        r = client.post(
            "/api/token/",
            json={"tenant": tenant.slug, "username": name, "password": "correct horse battery"},
        )
        assert r.status_code == 200, r.text
        tokens[role] = bearer(r.json()["access"])
    r = client.post(URL, json={"scopes": ["read"]}, headers=tokens["owner"])
    assert r.status_code == 201, r.text
    assert client.get(URL, headers=tokens["owner"]).status_code == 200
    assert_problem(client.get(URL, headers=tokens["editor"]), 403)
    assert_problem(client.post(URL, json={"scopes": ["read"]}, headers=tokens["editor"]), 403)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "scopes"),
        ({"label": "x"}, "scopes"),
        ({"scopes": []}, "scopes"),
        ({"scopes": "read"}, "scopes"),
        ({"scopes": None}, "scopes"),
        ({"scopes": ["admin"]}, "scopes.0"),
        ({"scopes": ["READ"]}, "scopes.0"),
        ({"scopes": ["users"]}, "scopes.0"),
        ({"scopes": [1]}, "scopes.0"),
        ({"scopes": ["read", "read"]}, "scopes"),
        ({"scopes": ["read", "write", "keys", "read"]}, "scopes"),
        ({"scopes": ["read"], "label": 5}, "label"),
        ({"scopes": ["read"], "label": "x" * 101}, "label"),
        ({"scopes": ["read"], "label": "a\x00b"}, "label"),
        ({"scopes": ["read"], "label": None}, "label"),
        ({"scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"scopes": ["read"], "expires_at": "2099-01-01T00:00:00"}, "expires_at"),
        ({"scopes": ["read"], "expires_at": "tomorrow"}, "expires_at"),
        ({"scopes": ["read"], "expires_at": 4102444800}, "expires_at"),
        ({"scopes": ["read"], "expires_at": "2099-13-01T00:00:00Z"}, "expires_at"),
        ({"scopes": ["read"], "tenant_id": str(uuid.uuid4())}, "tenant_id"),
        ({"scopes": ["read"], "secret_hash": "00"}, "secret_hash"),
    ],
)
def test_create_key_with_bad_input_is_422_naming_the_field(
    client: httpx.Client, factory: Factory, db: Database, body: Any, field: str
) -> None:
    tenant = factory.tenant()
    before = count_keys(db, tenant)
    r = client.post(URL, json=body, headers=tenant.headers)
    problem = assert_problem(r, 422)
    assert field in [e["field"] for e in problem["errors"]], problem
    assert count_keys(db, tenant) == before


def test_create_key_with_past_offset_time_is_refused(
    client: httpx.Client, factory: Factory
) -> None:
    tenant = factory.tenant()
    past = (datetime.now(UTC) - timedelta(minutes=1)).astimezone().isoformat()
    r = client.post(URL, json={"scopes": ["read"], "expires_at": past}, headers=tenant.headers)
    assert_problem(r, 422)


def test_label_of_100_unicode_characters_is_accepted(
    client: httpx.Client, factory: Factory
) -> None:
    tenant = factory.tenant()
    label = ("Ação 🍚 " * 20)[:100]
    assert issue(client, tenant, label=label)["label"] == label


@pytest.mark.parametrize(
    ("content", "ctype", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"", "application/json", 400),
        (b"[]", "application/json", 422),
        (b'"read"', "application/json", 422),
        (b'{"scopes": ["read"]', "application/json", 400),
        (b'{"scopes": ["read"]}', "text/plain", 415),
    ],
)
def test_create_key_with_malformed_body_is_4xx(
    client: httpx.Client, factory: Factory, db: Database, content: bytes, ctype: str, status: int
) -> None:
    tenant = factory.tenant()
    before = count_keys(db, tenant)
    r = client.post(URL, content=content, headers={**tenant.headers, "Content-Type": ctype})
    assert_problem(r, status)
    assert count_keys(db, tenant) == before


def test_create_key_with_1mb_body_is_413(
    client: httpx.Client, factory: Factory, db: Database
) -> None:
    tenant = factory.tenant()
    before = count_keys(db, tenant)
    big = b'{"scopes": ["read"], "label": "' + b"x" * MB + b'"}'
    r = client.post(
        URL, content=big, headers={**tenant.headers, "Content-Type": "application/json"}
    )
    assert_problem(r, 413)
    assert count_keys(db, tenant) == before


@pytest.mark.parametrize("key_id", ["not-a-uuid", "1", "' OR 1=1 --", UNKNOWN_ID])
def test_revoke_unknown_or_malformed_key_is_404(
    client: httpx.Client, factory: Factory, key_id: str
) -> None:
    tenant = factory.tenant()
    assert_problem(client.delete(f"{URL}/{key_id}", headers=tenant.headers), 404)


def test_revoke_key_of_other_tenant_is_404_and_changes_nothing(
    client: httpx.Client, factory: Factory, db: Database
) -> None:
    mine, other = factory.tenant(), factory.tenant()
    theirs = issue(client, other)
    assert_problem(client.delete(f"{URL}/{theirs['id']}", headers=mine.headers), 404)
    row = db.fetchrow("SELECT revoked_at FROM api_key WHERE id = $1", uuid.UUID(theirs["id"]))
    assert row is not None and row["revoked_at"] is None
    assert client.get(URL, headers=bearer(theirs["key"])).status_code in (200, 403)
    assert client.get("/api/v1/campaigns", headers=bearer(theirs["key"])).status_code == 200


def test_key_routes_are_in_openapi(client: httpx.Client) -> None:
    spec = client.get("/api/docs/openapi.json").json()
    paths = spec["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/keys"])
    assert "delete" in next(v for k, v in paths.items() if k.startswith("/api/v1/keys/"))
    assert paths["/api/v1/keys"]["post"]["summary"]


@pytest.mark.parametrize(
    ("held", "asked", "refused"),
    [
        ("keys", ["read", "write", "keys"], ["read", "write"]),
        ("keys", ["write"], ["write"]),
        ("read,keys", ["read", "write"], ["write"]),
    ],
)
def test_key_cannot_grant_scopes_it_does_not_hold(
    db: Database,
    client: httpx.Client,
    factory: Factory,
    held: str,
    asked: list[str],
    refused: list[str],
) -> None:
    """A key issued by the operator's CLI with `keys` (and maybe more) may issue keys,
    but only with scopes it holds itself: 403 naming the others, nothing stored."""
    tenant = factory.tenant()
    done = run_cli(db, "key", "issue", "--tenant", tenant.slug, "--scopes", held, "--json")
    assert done.returncode == 0, done.stderr
    manager = bearer(json.loads(done.stdout)["key"])
    before = count_keys(db, tenant)
    r = client.post("/api/v1/keys", json={"scopes": asked}, headers=manager)
    problem = assert_problem(r, 403)
    for scope in refused:
        assert scope in problem["detail"]
    assert problem["errors"][0]["field"] == "scopes"
    assert count_keys(db, tenant) == before
    # What it does hold it may grant, and the new key has exactly that.
    granted = [s for s in asked if s not in refused]
    if granted:
        new = issue(client, dataclasses.replace(tenant, headers=manager), scopes=granted)
        assert new["scopes"] == granted
        made = bearer(new["key"])
        write = client.post("/api/v1/campaigns", json={}, headers=made)
        assert write.status_code == (422 if "write" in granted else 403)


def test_owner_may_grant_every_key_scope(client: httpx.Client, factory: Factory) -> None:
    tenant = factory.tenant()
    factory.staff_user(tenant, "dona", "owner", "uma senha bem longa")
    login = client.post(
        "/api/token/",
        json={"username": "dona", "password": "uma senha bem longa", "tenant": tenant.slug},
    )
    assert login.status_code == 200, login.text
    owner = bearer(login.json()["access"])
    r = client.post("/api/v1/keys", json={"scopes": ["read", "write", "keys"]}, headers=owner)
    assert r.status_code == 201, r.text
