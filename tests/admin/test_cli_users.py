"""`conectades user list|disable|enable|role`, run as operators run them. What the
changes do to sessions is tested through the API in tests/api/test_tokens.py."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.admin.test_cli import assert_fails, cli, cli_json
from tests.services import Database


@pytest.fixture
def slug(db: Database) -> str:
    value = f"cli-{uuid.uuid4().hex[:10]}"
    cli(db, "tenant", "create", value, "--name", "Associação Teste")
    for name, role in (("ana", "owner"), ("bia", "viewer")):
        cli(db, "user", "create", "--tenant", value, name, "--role", role,
            "--password", "uma senha longa")  # fmt: skip
    return value


def _state(db: Database, slug: str, username: str) -> tuple[str, bool, int]:
    row = db.fetchrow(
        "SELECT u.role, u.active, u.session_version FROM staff_user u "
        "JOIN tenant t ON t.id = u.tenant_id WHERE t.slug = $1 AND u.username = $2",
        slug,
        username,
    )
    assert row is not None
    return row["role"], row["active"], row["session_version"]


def test_user_list_shows_users_without_password_hashes(db: Database, slug: str) -> None:
    cli(db, "user", "disable", "--tenant", slug, "bia")
    table = cli(db, "user", "list", "--tenant", slug).stdout
    for column in ("username", "role", "active", "created"):
        assert column in table
    lines = {line.split()[0]: line.split() for line in table.splitlines() if line.split()}
    assert lines["ana"][1:3] == ["owner", "yes"]
    assert lines["bia"][1:3] == ["viewer", "no"]
    assert "argon2" not in table

    users = cli_json(db, "user", "list", "--tenant", slug)
    assert [(u["username"], u["role"], u["active"]) for u in users] == [
        ("ana", "owner", True),
        ("bia", "viewer", False),
    ]
    assert all(set(u) == {"id", "username", "role", "active", "created_at"} for u in users)
    assert "argon2" not in json.dumps(users)


def test_user_list_of_a_tenant_without_users_is_empty(db: Database) -> None:
    value = f"cli-{uuid.uuid4().hex[:10]}"
    cli(db, "tenant", "create", value, "--name", "Sem usuários")
    assert cli_json(db, "user", "list", "--tenant", value) == []


def test_user_changes_bump_the_session_version_only_when_something_changes(
    db: Database, slug: str
) -> None:
    assert _state(db, slug, "ana") == ("owner", True, 0)
    cli(db, "user", "enable", "--tenant", slug, "ana")  # already enabled
    cli(db, "user", "role", "--tenant", slug, "ana", "owner")  # already owner
    assert _state(db, slug, "ana") == ("owner", True, 0)
    cli(db, "user", "disable", "--tenant", slug, "ana")
    assert _state(db, slug, "ana") == ("owner", False, 1)
    cli(db, "user", "enable", "--tenant", slug, "ana")
    assert _state(db, slug, "ana") == ("owner", True, 2)
    cli(db, "user", "role", "--tenant", slug, "ana", "editor")
    assert _state(db, slug, "ana") == ("editor", True, 3)
    cli(db, "user", "passwd", "--tenant", slug, "ana", "--password", "outra senha longa")
    assert _state(db, slug, "ana") == ("editor", True, 4)
    assert _state(db, slug, "bia") == ("viewer", True, 0)  # nobody else's sessions


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("user", "disable", "--tenant", "{slug}", "nobody"), "no user"),
        (("user", "enable", "--tenant", "{slug}", "nobody"), "no user"),
        (("user", "role", "--tenant", "{slug}", "nobody", "editor"), "no user"),
        (("user", "role", "--tenant", "{slug}", "ana", "admin"), "admin"),
        (("user", "list", "--tenant", "no-such-tenant"), "no tenant"),
        (("user", "disable", "--tenant", "no-such-tenant", "ana"), "no tenant"),
    ],
)
def test_user_commands_with_bad_input_fail_cleanly_and_change_nothing(
    db: Database, slug: str, args: tuple[str, ...], message: str
) -> None:
    done = cli(db, *[a.format(slug=slug) for a in args], check=False)
    assert_fails(done, message)
    assert _state(db, slug, "ana") == ("owner", True, 0)
