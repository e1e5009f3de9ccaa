"""Setting up a tenant's credentials: the organization, its API keys and a staff
login. One home for what the local stack's demo tenant, the load fixture, the
benchmarks and the test factories each need (they used to write it each their own
way). Runs on an owner-role connection (the caller's transaction, if any): the
operator's tools, never the API.

The full API key is returned once and never stored; the password is hashed here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from db.queries import staff as staff_q
from db.queries import tenants as tenant_q
from tenants import keys
from tenants.passwords import hash_password


@dataclass(frozen=True)
class Provisioned:
    """A tenant's row and the full keys issued for it now (shown once)."""

    tenant: Any
    keys: list[str]

    @property
    def tenant_id(self) -> UUID:
        tenant_id: UUID = self.tenant["id"]
        return tenant_id

    @property
    def key(self) -> str:
        return self.keys[0]


async def tenant_with_key(
    conn: Any,
    *,
    slug: str,
    name: str,
    scopes: list[str],
    label: str = "",
    reuse: bool = False,
) -> Provisioned:
    """A new tenant (or, with `reuse`, the existing one of that slug) and one new key."""
    row = await tenant_q.select_tenant_by_slug(conn, slug) if reuse else None
    if row is None:
        row = await tenant_q.insert_tenant(conn, slug=slug, name=name)
    issued = await issue_keys(conn, row["id"], scopes=scopes, count=1, label=label)
    return Provisioned(tenant=row, keys=issued)


async def issue_keys(
    conn: Any, tenant_id: UUID, *, scopes: list[str], count: int, label: str = ""
) -> list[str]:
    """`count` new keys with `scopes`; labelled `label 1`, `label 2`... when more than one."""
    issued = []
    for n in range(count):
        numbered = f"{label} {n + 1}" if count > 1 and label else label
        _, full = await keys.issue(conn, tenant_id=tenant_id, scopes=scopes, label=numbered)
        issued.append(full)
    return issued


async def staff_login(
    conn: Any,
    tenant_id: UUID,
    *,
    username: str,
    role: str,
    password: str | None = None,
    password_hash: str | None = None,
    reset: bool = False,
) -> UUID:
    """A staff login; with `reset`, an existing one of that username gets the new
    password (and its sessions end) instead of a conflict. Give `password`, or
    `password_hash` to hash once for many logins (argon2 is slow on purpose)."""
    if password_hash is None:
        if password is None:
            raise ValueError("staff_login needs a password or a password_hash")
        password_hash = hash_password(password)
    if reset:
        updated = await staff_q.update_staff_password(
            conn, tenant_id=tenant_id, username=username, password_hash=password_hash
        )
        if updated is not None:
            user_id: UUID = updated["id"]
            return user_id
    row = await staff_q.insert_staff_user(
        conn, tenant_id=tenant_id, username=username, password_hash=password_hash, role=role
    )
    new_id: UUID = row["id"]
    return new_id
