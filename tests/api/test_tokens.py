"""Staff logins: `POST /api/token/`, `POST /api/token/refresh/`, and JWT attacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from argon2 import PasswordHasher

from tenants import passwords
from tests.factories import Factory, TenantCtx, bearer
from tests.services import ApiServer, Database, run_cli

SECRET = "test-secret-" + "x" * 40  # CONECTADES_JWT_SECRET in tests/services.api_env
AUDIENCE = "conectades-api"
ISSUER = "conectades"
PASSWORD = "correct horse battery staple"
# Any route that needs credentials with the read permission.
PROTECTED = "/api/v1/donations"
REQUIRED_CLAIMS = ("exp", "iat", "aud", "iss", "sub", "tid", "role", "typ", "sv")


@dataclass
class Staff:
    tenant: TenantCtx
    user_id: uuid.UUID
    username: str
    password: str


def new_username() -> str:
    return f"u{uuid.uuid4().hex[:12]}"


def login(client: httpx.Client, body: dict[str, Any], path: str = "/api/token/") -> httpx.Response:
    return client.post(path, json=body)


def refresh(client: httpx.Client, token: str, path: str = "/api/token/refresh/") -> httpx.Response:
    return client.post(path, json={"refresh": token})


def claims_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(
        token, SECRET, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER
    )
    return decoded


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(claims: dict[str, Any], *, alg: str = "HS256", secret: str = SECRET) -> str:
    """A JWT built by hand, so tests control every byte (alg `none` included)."""
    head = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    signing_input = f"{head}.{body}".encode()
    if alg == "none":
        return f"{head}.{body}."
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    signature = hmac.new(secret.encode(), signing_input, digest).digest()
    return f"{head}.{body}.{b64url(signature)}"


@pytest.fixture
def staff(factory: Factory) -> Staff:
    tenant = factory.tenant()
    username = new_username()
    user_id = factory.staff_user(tenant, username, "owner", PASSWORD)
    return Staff(tenant, user_id, username, PASSWORD)


def login_ok(client: httpx.Client, staff: Staff) -> dict[str, str]:
    r = login(
        client, {"tenant": staff.tenant.slug, "username": staff.username, "password": PASSWORD}
    )
    assert r.status_code == 200, r.text
    pair: dict[str, str] = r.json()
    return pair


def valid_claims(staff: Staff, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(staff.user_id),
        "tid": str(staff.tenant.id),
        "role": "owner",
        "iat": now,
        "exp": now + 600,
        "aud": AUDIENCE,
        "iss": ISSUER,
        "typ": "access",
        "jti": uuid.uuid4().hex,
        "sv": 0,  # a new user's session version
    }
    claims.update(overrides)
    return claims


def assert_unauthorized(r: httpx.Response) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith("Bearer")


# --- login ---------------------------------------------------------------------------


def test_login_rehashes_a_password_hashed_with_older_parameters(
    client: httpx.Client, db: Database, staff: Staff
) -> None:
    old = PasswordHasher().hash(PASSWORD)  # argon2-cffi defaults: 64 MiB, 3 passes, 4 lanes
    db.execute("UPDATE staff_user SET password_hash = $1 WHERE id = $2", old, staff.user_id)
    login_ok(client, staff)
    stored = db.fetchval("SELECT password_hash FROM staff_user WHERE id = $1", staff.user_id)
    assert stored != old
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert not passwords.needs_rehash(stored)
    login_ok(client, staff)  # the new hash verifies
    assert_unauthorized(login(client, {"username": staff.username, "password": "wrong" * 3}))


def test_login_returns_access_and_refresh_with_expected_claims(
    client: httpx.Client, staff: Staff, db: Database
) -> None:
    r = login(
        client, {"tenant": staff.tenant.slug, "username": staff.username, "password": PASSWORD}
    )
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "private, no-store"
    pair = r.json()
    assert set(pair) == {"access", "refresh"}
    assert jwt.get_unverified_header(pair["access"])["alg"] == "HS256"

    access = jwt.decode(
        pair["access"],
        SECRET,
        algorithms=["HS256"],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"require": list(REQUIRED_CLAIMS)},
    )
    assert access["sub"] == str(staff.user_id)
    assert access["tid"] == str(staff.tenant.id)
    assert access["role"] == "owner"
    assert access["typ"] == "access"
    assert access["exp"] - access["iat"] == 15 * 60
    assert abs(access["iat"] - time.time()) < 60
    assert access["jti"]

    rt = claims_of(pair["refresh"])
    assert rt["typ"] == "refresh"
    assert rt["exp"] - rt["iat"] == 7 * 24 * 3600
    row = db.fetchrow("SELECT * FROM refresh_token WHERE id = $1", uuid.UUID(rt["jti"]))
    assert row is not None
    assert row["user_id"] == staff.user_id
    assert row["tenant_id"] == staff.tenant.id
    assert str(row["family_id"]) == rt["fam"]
    assert row["used_at"] is None and row["revoked_at"] is None


def test_access_token_works_like_an_api_key(client: httpx.Client, staff: Staff) -> None:
    pair = login_ok(client, staff)
    r = client.get(PROTECTED, headers=bearer(pair["access"]))
    assert r.status_code == 200, r.text


def test_login_path_without_trailing_slash_works(client: httpx.Client, staff: Staff) -> None:
    body = {"tenant": staff.tenant.slug, "username": staff.username, "password": PASSWORD}
    r = login(client, body, path="/api/token")
    assert r.status_code == 200, r.text
    r = refresh(client, r.json()["refresh"], path="/api/token/refresh")
    assert r.status_code == 200, r.text


def test_login_without_tenant_when_username_is_in_one_tenant(
    client: httpx.Client, staff: Staff
) -> None:
    r = login(client, {"username": staff.username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    assert claims_of(r.json()["access"])["tid"] == str(staff.tenant.id)


def test_login_with_null_tenant_is_like_omitted(client: httpx.Client, staff: Staff) -> None:
    r = login(client, {"tenant": None, "username": staff.username, "password": PASSWORD})
    assert r.status_code == 200, r.text


def test_login_without_tenant_when_password_is_right_in_two_tenants_is_400_naming_tenant(
    client: httpx.Client, factory: Factory, staff: Staff
) -> None:
    other = factory.tenant()
    factory.staff_user(other, staff.username, "viewer", PASSWORD)
    r = login(client, {"username": staff.username, "password": PASSWORD})
    assert r.status_code == 400, r.text
    problem = r.json()
    assert "tenant" in problem["detail"]
    assert problem["errors"][0]["field"] == "tenant"
    # Naming the tenant settles it.
    r = login(client, {"tenant": other.slug, "username": staff.username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    assert claims_of(r.json()["access"])["role"] == "viewer"


def test_shared_username_with_wrong_password_is_the_401_of_an_unknown_user(
    client: httpx.Client, factory: Factory, staff: Staff
) -> None:
    other = factory.tenant()
    factory.staff_user(other, staff.username, "viewer", "another password")
    shared = login(client, {"username": staff.username, "password": "wrong password"})
    unknown = login(client, {"username": new_username(), "password": "wrong password"})
    assert_unauthorized(shared)
    assert_unauthorized(unknown)
    assert shared.content == unknown.content
    assert shared.headers["www-authenticate"] == unknown.headers["www-authenticate"]


def test_shared_username_with_the_password_of_one_tenant_logs_in_without_tenant(
    client: httpx.Client, factory: Factory, staff: Staff
) -> None:
    other = factory.tenant()
    other_id = factory.staff_user(other, staff.username, "viewer", "another password")
    r = login(client, {"username": staff.username, "password": "another password"})
    assert r.status_code == 200, r.text
    access = claims_of(r.json()["access"])
    assert (access["tid"], access["sub"]) == (str(other.id), str(other_id))
    r = login(client, {"username": staff.username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    assert claims_of(r.json()["access"])["tid"] == str(staff.tenant.id)


def test_login_without_tenant_skips_suspended_tenants(
    client: httpx.Client, factory: Factory, db: Database, staff: Staff
) -> None:
    other = factory.tenant()
    factory.staff_user(other, staff.username, "owner", PASSWORD)
    db.execute("UPDATE tenant SET status = 'suspended' WHERE id = $1", other.id)
    r = login(client, {"username": staff.username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    assert claims_of(r.json()["access"])["tid"] == str(staff.tenant.id)


def test_login_failures_answer_one_identical_401(
    client: httpx.Client, factory: Factory, db: Database, staff: Staff
) -> None:
    suspended = factory.tenant()
    factory.staff_user(suspended, "susp-" + staff.username, "owner", PASSWORD)
    db.execute("UPDATE tenant SET status = 'suspended' WHERE id = $1", suspended.id)
    inactive = new_username()
    factory.staff_user(staff.tenant, inactive, "owner", PASSWORD)
    db.execute("UPDATE staff_user SET active = false WHERE username = $1", inactive)
    elsewhere = factory.tenant()

    attempts = {
        "wrong password": {"tenant": staff.tenant.slug, "username": staff.username},
        "unknown user": {"tenant": staff.tenant.slug, "username": new_username()},
        "unknown tenant": {"tenant": "no-such-org-" + uuid.uuid4().hex[:8]},
        "user of another tenant": {"tenant": elsewhere.slug, "username": staff.username},
        "suspended tenant": {"tenant": suspended.slug, "username": "susp-" + staff.username},
        "inactive user": {"tenant": staff.tenant.slug, "username": inactive},
        "no tenant, unknown user": {"username": new_username()},
        "no tenant, inactive user": {"username": inactive},
    }
    bodies = []
    for case, body in attempts.items():
        body.setdefault("username", staff.username)
        body["password"] = "wrong password" if case == "wrong password" else PASSWORD
        r = login(client, body)
        assert_unauthorized(r)
        bodies.append((r.content, r.headers["www-authenticate"]))
    assert len(set(bodies)) == 1, bodies


def test_login_body_does_not_say_which_part_was_wrong(client: httpx.Client, staff: Staff) -> None:
    r = login(client, {"tenant": staff.tenant.slug, "username": staff.username, "password": "no"})
    assert_unauthorized(r)
    detail = r.json()["detail"].lower()
    assert "not found" not in detail and "suspended" not in detail and "inactive" not in detail


# --- access token attacks ------------------------------------------------------------


def _without(claim: str) -> Callable[[Staff], str]:
    def make(staff: Staff) -> str:
        claims = valid_claims(staff)
        del claims[claim]
        return forge(claims)

    return make


def _tampered(staff: Staff) -> str:
    # A viewer's genuine token with the payload swapped to owner, signature kept.
    head, _, signature = forge(valid_claims(staff, role="viewer")).split(".")
    body = b64url(json.dumps(valid_claims(staff, role="owner")).encode())
    return f"{head}.{body}.{signature}"


ATTACKS: dict[str, Callable[[Staff], str]] = {
    "alg none": lambda s: forge(valid_claims(s), alg="none"),
    "alg none, signature kept": lambda s: (
        forge(valid_claims(s), alg="none") + forge(valid_claims(s)).rsplit(".", 1)[1]
    ),
    "another secret": lambda s: forge(valid_claims(s), secret="another-secret-" + "y" * 40),
    "HS512 with the right secret": lambda s: forge(valid_claims(s), alg="HS512"),
    "expired": lambda s: forge(
        valid_claims(s, iat=int(time.time()) - 3600, exp=int(time.time()) - 60)
    ),
    "issued in the future": lambda s: forge(
        valid_claims(s, iat=int(time.time()) + 3600, exp=int(time.time()) + 4000)
    ),
    "wrong audience": lambda s: forge(valid_claims(s, aud="someone-else")),
    "wrong issuer": lambda s: forge(valid_claims(s, iss="evil")),
    "typ refresh": lambda s: forge(valid_claims(s, typ="refresh")),
    "unknown role": lambda s: forge(valid_claims(s, role="superuser")),
    "sub not a uuid": lambda s: forge(valid_claims(s, sub="admin")),
    "tid not a uuid": lambda s: forge(valid_claims(s, tid="1 OR 1=1")),
    "another session version": lambda s: forge(valid_claims(s, sv=1)),
    "session version a string": lambda s: forge(valid_claims(s, sv="0")),
    "session version false": lambda s: forge(valid_claims(s, sv=False)),  # False == 0
    "tampered payload": _tampered,
    "not a jwt": lambda s: "not.a.jwt",
    "garbage": lambda s: "x" * 300,
    **{f"missing {claim}": _without(claim) for claim in REQUIRED_CLAIMS},
}


def test_forged_control_token_is_accepted(client: httpx.Client, staff: Staff) -> None:
    """The forging helper builds valid tokens, so each attack below fails for its reason."""
    r = client.get(PROTECTED, headers=bearer(forge(valid_claims(staff))))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_jwt_attack_is_401(client: httpx.Client, staff: Staff, attack: str) -> None:
    r = client.get(PROTECTED, headers=bearer(ATTACKS[attack](staff)))
    assert_unauthorized(r)


def test_refresh_token_used_as_access_is_401(client: httpx.Client, staff: Staff) -> None:
    pair = login_ok(client, staff)
    assert_unauthorized(client.get(PROTECTED, headers=bearer(pair["refresh"])))


def test_access_token_used_as_refresh_is_401(client: httpx.Client, staff: Staff) -> None:
    pair = login_ok(client, staff)
    assert_unauthorized(refresh(client, pair["access"]))


# --- refresh -------------------------------------------------------------------------


def test_refresh_rotates_the_token(client: httpx.Client, staff: Staff, db: Database) -> None:
    first = login_ok(client, staff)
    r = refresh(client, first["refresh"])
    assert r.status_code == 200, r.text
    second = r.json()
    assert set(second) == {"access", "refresh"}
    assert second["refresh"] != first["refresh"]
    old, new = claims_of(first["refresh"]), claims_of(second["refresh"])
    assert new["fam"] == old["fam"]
    assert db.fetchval(
        "SELECT used_at IS NOT NULL FROM refresh_token WHERE id = $1", uuid.UUID(old["jti"])
    )
    assert db.fetchval(
        "SELECT used_at IS NULL AND revoked_at IS NULL FROM refresh_token WHERE id = $1",
        uuid.UUID(new["jti"]),
    )
    assert client.get(PROTECTED, headers=bearer(second["access"])).status_code == 200
    # The chain continues.
    assert refresh(client, second["refresh"]).status_code == 200


def test_reused_refresh_token_is_401_and_ends_every_session_of_the_user(
    client: httpx.Client, staff: Staff, db: Database
) -> None:
    first = login_ok(client, staff)
    other_login = login_ok(client, staff)  # another family (another device)
    second = refresh(client, first["refresh"]).json()
    assert client.get(PROTECTED, headers=bearer(second["access"])).status_code == 200

    assert_unauthorized(refresh(client, first["refresh"]))  # reuse
    assert_unauthorized(refresh(client, second["refresh"]))  # the newer token died too
    # Which holder is the thief is unknown: every session of the user ends.
    assert_unauthorized(client.get(PROTECTED, headers=bearer(second["access"])))
    assert_unauthorized(client.get(PROTECTED, headers=bearer(other_login["access"])))
    assert_unauthorized(refresh(client, other_login["refresh"]))

    family = uuid.UUID(claims_of(first["refresh"])["fam"])
    rows = db.fetch("SELECT revoked_at FROM refresh_token WHERE family_id = $1", family)
    assert len(rows) == 2
    assert all(row["revoked_at"] is not None for row in rows)
    # The user logs in again and that session works.
    fresh = login_ok(client, staff)
    assert client.get(PROTECTED, headers=bearer(fresh["access"])).status_code == 200


def test_replaying_a_token_of_an_ended_session_leaves_the_new_session_alone(
    client: httpx.Client, staff: Staff
) -> None:
    first = login_ok(client, staff)
    refresh(client, first["refresh"])
    assert_unauthorized(refresh(client, first["refresh"]))  # reuse: sessions end
    fresh = login_ok(client, staff)
    for _ in range(3):  # an attacker replaying the stolen, dead token
        assert_unauthorized(refresh(client, first["refresh"]))
    assert client.get(PROTECTED, headers=bearer(fresh["access"])).status_code == 200
    assert refresh(client, fresh["refresh"]).status_code == 200


def test_concurrent_uses_of_one_refresh_token_succeed_once(
    api: ApiServer, client: httpx.Client, staff: Staff
) -> None:
    token = login_ok(client, staff)["refresh"]

    def use(_: int) -> int:
        with httpx.Client(base_url=api.url, timeout=30) as c:
            return refresh(c, token).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(use, range(8)))
    assert sorted(statuses) == [200] + [401] * 7, statuses


def test_refresh_attacks_are_401(client: httpx.Client, staff: Staff) -> None:
    login_token = login_ok(client, staff)["refresh"]
    rt = claims_of(login_token)
    now = int(time.time())
    forged = {
        "another secret": forge(rt, secret="another-secret-" + "y" * 40),
        "alg none": forge(rt, alg="none"),
        "expired": forge({**rt, "iat": now - 3600, "exp": now - 60}),
        "unknown jti": forge({**rt, "jti": str(uuid.uuid4())}),
        "other family": forge({**rt, "fam": str(uuid.uuid4())}),
        "missing jti": forge({k: v for k, v in rt.items() if k != "jti"}),
        "missing fam": forge({k: v for k, v in rt.items() if k != "fam"}),
        "wrong audience": forge({**rt, "aud": "x"}),
        "garbage": "x.y.z",
    }
    for case, token in forged.items():
        r = refresh(client, token)
        assert r.status_code == 401, (case, r.text)
    # None of them consumed the genuine token.
    assert refresh(client, login_token).status_code == 200


def test_refresh_of_deactivated_user_is_401(
    client: httpx.Client, staff: Staff, db: Database
) -> None:
    pair = login_ok(client, staff)
    db.execute("UPDATE staff_user SET active = false WHERE id = $1", staff.user_id)
    assert_unauthorized(refresh(client, pair["refresh"]))


def test_refresh_of_suspended_tenant_is_401(
    client: httpx.Client, staff: Staff, db: Database
) -> None:
    pair = login_ok(client, staff)
    db.execute("UPDATE tenant SET status = 'suspended' WHERE id = $1", staff.tenant.id)
    assert_unauthorized(refresh(client, pair["refresh"]))


def test_refresh_issues_the_current_role(client: httpx.Client, staff: Staff, db: Database) -> None:
    pair = login_ok(client, staff)
    db.execute("UPDATE staff_user SET role = 'viewer' WHERE id = $1", staff.user_id)
    r = refresh(client, pair["refresh"])
    assert r.status_code == 200, r.text
    assert claims_of(r.json()["access"])["role"] == "viewer"


# --- access tokens stop working when the user or tenant does --------------------------


def test_access_token_of_suspended_tenant_stops_working(
    client: httpx.Client, staff: Staff, db: Database
) -> None:
    pair = login_ok(client, staff)
    db.execute("UPDATE tenant SET status = 'suspended' WHERE id = $1", staff.tenant.id)
    r = client.get(PROTECTED, headers=bearer(pair["access"]))
    # Same answer as an API key of a suspended tenant.
    assert r.status_code == 403, r.text
    assert "suspended" in r.json()["detail"]


def test_access_token_of_deactivated_user_is_401(
    client: httpx.Client, staff: Staff, db: Database
) -> None:
    pair = login_ok(client, staff)
    db.execute("UPDATE staff_user SET active = false WHERE id = $1", staff.user_id)
    assert_unauthorized(client.get(PROTECTED, headers=bearer(pair["access"])))


def test_access_token_of_deleted_user_is_401(
    client: httpx.Client, staff: Staff, db: Database
) -> None:
    pair = login_ok(client, staff)
    db.execute("DELETE FROM staff_user WHERE id = $1", staff.user_id)
    assert_unauthorized(client.get(PROTECTED, headers=bearer(pair["access"])))


def test_access_token_after_role_change_is_401(
    client: httpx.Client, staff: Staff, db: Database
) -> None:
    pair = login_ok(client, staff)
    db.execute("UPDATE staff_user SET role = 'viewer' WHERE id = $1", staff.user_id)
    assert_unauthorized(client.get(PROTECTED, headers=bearer(pair["access"])))


def test_access_token_with_tid_of_another_tenant_is_401(
    client: httpx.Client, factory: Factory, staff: Staff
) -> None:
    other = factory.tenant()
    token = forge(valid_claims(staff, tid=str(other.id)))
    assert_unauthorized(client.get(PROTECTED, headers=bearer(token)))


# --- sessions end on a password, active or role change (the operator CLI) -------------


def cli(db: Database, *args: str) -> None:
    done = run_cli(db, *args)
    assert done.returncode == 0, (done.stdout, done.stderr)


def assert_session_ended(client: httpx.Client, pair: dict[str, str]) -> None:
    assert_unauthorized(client.get(PROTECTED, headers=bearer(pair["access"])))
    assert_unauthorized(refresh(client, pair["refresh"]))


def test_password_change_ends_every_session(
    client: httpx.Client, db: Database, staff: Staff
) -> None:
    first, second = login_ok(client, staff), login_ok(client, staff)
    rotated = refresh(client, second["refresh"]).json()
    new_password = "a brand new passphrase"
    cli(db, "user", "passwd", "--tenant", staff.tenant.slug, staff.username,
        "--password", new_password)  # fmt: skip
    assert_session_ended(client, first)
    assert_session_ended(client, rotated)
    assert_unauthorized(login(client, {"username": staff.username, "password": PASSWORD}))
    r = login(client, {"username": staff.username, "password": new_password})
    assert r.status_code == 200, r.text
    assert client.get(PROTECTED, headers=bearer(r.json()["access"])).status_code == 200
    assert refresh(client, r.json()["refresh"]).status_code == 200


def test_disable_ends_every_session_and_enable_lets_the_user_log_in_again(
    client: httpx.Client, db: Database, staff: Staff
) -> None:
    pair = login_ok(client, staff)
    cli(db, "user", "disable", "--tenant", staff.tenant.slug, staff.username)
    assert_session_ended(client, pair)
    assert_unauthorized(login(client, {"username": staff.username, "password": PASSWORD}))
    cli(db, "user", "enable", "--tenant", staff.tenant.slug, staff.username)
    # Enabling does not bring the old session back.
    assert_session_ended(client, pair)
    fresh = login_ok(client, staff)
    assert client.get(PROTECTED, headers=bearer(fresh["access"])).status_code == 200
    # Enabling an enabled user ends nothing.
    cli(db, "user", "enable", "--tenant", staff.tenant.slug, staff.username)
    assert client.get(PROTECTED, headers=bearer(fresh["access"])).status_code == 200


def test_role_change_ends_every_session(client: httpx.Client, db: Database, staff: Staff) -> None:
    pair = login_ok(client, staff)
    cli(db, "user", "role", "--tenant", staff.tenant.slug, staff.username, "viewer")
    assert_session_ended(client, pair)
    r = login(client, {"username": staff.username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    assert claims_of(r.json()["access"])["role"] == "viewer"
    # Back to owner: the viewer's tokens end too.
    viewer = r.json()
    cli(db, "user", "role", "--tenant", staff.tenant.slug, staff.username, "owner")
    assert_session_ended(client, viewer)


def test_setting_the_same_role_ends_nothing(
    client: httpx.Client, db: Database, staff: Staff
) -> None:
    pair = login_ok(client, staff)
    cli(db, "user", "role", "--tenant", staff.tenant.slug, staff.username, "owner")
    assert client.get(PROTECTED, headers=bearer(pair["access"])).status_code == 200
    assert refresh(client, pair["refresh"]).status_code == 200


def test_password_change_leaves_other_users_sessions_alone(
    client: httpx.Client, db: Database, factory: Factory, staff: Staff
) -> None:
    username = new_username()
    user_id = factory.staff_user(staff.tenant, username, "editor", PASSWORD)
    colleague = Staff(staff.tenant, user_id, username, PASSWORD)
    pair = login_ok(client, colleague)
    cli(db, "user", "passwd", "--tenant", staff.tenant.slug, staff.username,
        "--password", "a brand new passphrase")  # fmt: skip
    assert client.get(PROTECTED, headers=bearer(pair["access"])).status_code == 200
    assert refresh(client, pair["refresh"]).status_code == 200


# --- bad input -------------------------------------------------------------------------

LOGIN_BAD_BODIES: dict[str, tuple[Any, str]] = {
    "missing username": ({"password": "x"}, "username"),
    "missing password": ({"username": "x"}, "password"),
    "username not a string": ({"username": 5, "password": "x"}, "username"),
    "password not a string": ({"username": "x", "password": ["x"]}, "password"),
    "password null": ({"username": "x", "password": None}, "password"),
    "tenant not a string": ({"tenant": 7, "username": "x", "password": "x"}, "tenant"),
    "tenant not a slug": ({"tenant": "Org X!", "username": "x", "password": "x"}, "tenant"),
    "empty username": ({"username": "", "password": "x"}, "username"),
    "empty password": ({"username": "x", "password": ""}, "password"),
    "huge username": ({"username": "u" * 151, "password": "x"}, "username"),
    "huge password": ({"username": "x", "password": "p" * 1025}, "password"),
    "NUL in username": ({"username": "a\x00b", "password": "x"}, "username"),
    "unknown field": ({"username": "x", "password": "x", "is_admin": True}, "is_admin"),
    "array body": (["x", "y"], "body"),
}
REFRESH_BAD_BODIES: dict[str, tuple[Any, str]] = {
    "missing refresh": ({}, "refresh"),
    "refresh not a string": ({"refresh": 1}, "refresh"),
    "refresh null": ({"refresh": None}, "refresh"),
    "empty refresh": ({"refresh": ""}, "refresh"),
    "huge refresh": ({"refresh": "r" * 5000}, "refresh"),
    "unknown field": ({"refresh": "x", "access": "y"}, "access"),
    "string body": ("refresh", "body"),
}
ENDPOINTS = ("/api/token/", "/api/token/refresh/")


@pytest.mark.parametrize(
    ("path", "case"),
    [("/api/token/", c) for c in LOGIN_BAD_BODIES]
    + [("/api/token/refresh/", c) for c in REFRESH_BAD_BODIES],
)
def test_bad_body_is_422_naming_the_field(
    client: httpx.Client, db: Database, path: str, case: str
) -> None:
    table = LOGIN_BAD_BODIES if path == "/api/token/" else REFRESH_BAD_BODIES
    body, field = table[case]
    before = db.fetchval("SELECT count(*) FROM refresh_token")
    r = client.post(path, json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert field in [e["field"].split(".")[0] for e in r.json()["errors"]]
    assert db.fetchval("SELECT count(*) FROM refresh_token") == before


@pytest.mark.parametrize("path", ENDPOINTS)
def test_malformed_json_is_400(client: httpx.Client, path: str) -> None:
    r = client.post(
        path, content=b'{"username": "x",', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("path", ENDPOINTS)
def test_empty_body_is_400(client: httpx.Client, path: str) -> None:
    r = client.post(path, content=b"", headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text


@pytest.mark.parametrize("path", ENDPOINTS)
def test_form_body_is_415(client: httpx.Client, path: str) -> None:
    r = client.post(path, data={"username": "x", "password": "y"})
    assert r.status_code == 415, r.text
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("path", ENDPOINTS)
def test_one_megabyte_body_is_413(client: httpx.Client, path: str) -> None:
    body = json.dumps({"username": "x", "password": "p" * (1024 * 1024)}).encode()
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("path", ENDPOINTS)
def test_get_is_405(client: httpx.Client, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 405, r.text


def test_token_routes_are_in_openapi(client: httpx.Client) -> None:
    r = client.get("/api/docs/openapi.json")
    assert r.status_code == 200, r.text
    paths = r.json()["paths"]
    # The spec drops the trailing slash; both forms are served (see the slash test).
    assert "post" in paths["/api/token"]
    assert "post" in paths["/api/token/refresh"]
