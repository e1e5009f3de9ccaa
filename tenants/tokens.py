"""Staff access and refresh tokens (JWT, HS256 with `JWT_SECRET`).

Access tokens (ACCESS_TOKEN_TTL, 15 min) carry sub (user id), tid (tenant id),
role, sv (the user's session version), iat, exp, aud, iss, typ="access" and jti.
They are decoded with a fixed algorithm list and required claims;
`check_staff_active` then confirms on each request, in the one lookup it makes,
that the user is still active, still has that role and that session version, and
that the tenant is not suspended.

Refresh tokens (REFRESH_TOKEN_TTL, 7 days) carry typ="refresh", sv, jti = their
`refresh_token` row and fam = the family (one family per login). Each use marks
the row used and issues the next token of the family, if the session version still
matches. Presenting a used token again is reuse (one of the two holders is a thief,
and which one is unknown): the family is revoked and the user's session version
goes up, which ends every session of that user, the newest access token included.

The session version also goes up when the password, role or active flag changes
(db/queries/staff.py), so those end every session at once too.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from uuid import UUID, uuid4

import asyncpg
import jwt

from db.queries import logins as lq
from db.queries import refresh_tokens as rq
from db.queries import staff as sq
from db.tenancy import tenant_transaction
from tenants import passwords
from tenants.principal import ROLE_SCOPES, Principal

ALGORITHM = "HS256"
# Tokens issued before session versions existed have no `sv` and are refused.
ACCESS_CLAIMS = ("exp", "iat", "aud", "iss", "sub", "tid", "role", "typ", "sv")
REFRESH_CLAIMS = ("exp", "iat", "aud", "iss", "sub", "tid", "typ", "jti", "fam", "sv")
# Seconds of clock skew tolerated between API hosts.
LEEWAY = 5

StaffState = Literal["active", "suspended", "revoked"]


class TokenConfig(Protocol):
    JWT_SECRET: str
    JWT_ISSUER: str
    JWT_AUDIENCE: str
    ACCESS_TOKEN_TTL: int
    REFRESH_TOKEN_TTL: int
    DB_ACQUIRE_TIMEOUT: float


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str


class LoginFailed(Exception):
    """Wrong password, unknown user or tenant, suspended tenant, inactive user: one answer."""


class TenantRequired(Exception):
    """No tenant was given and the password is right for this username in several
    organizations."""


class RefreshRefused(Exception):
    """Invalid, expired, revoked or reused refresh token, or the user can no longer log in."""


def issue_access(
    config: TokenConfig, *, user_id: UUID, tenant_id: UUID, role: str, version: int, now: int
) -> str:
    claims = {
        "sub": str(user_id),
        "tid": str(tenant_id),
        "role": role,
        "sv": version,
        "iat": now,
        "exp": now + config.ACCESS_TOKEN_TTL,
        "aud": config.JWT_AUDIENCE,
        "iss": config.JWT_ISSUER,
        "typ": "access",
        "jti": uuid4().hex,
    }
    return jwt.encode(claims, config.JWT_SECRET, algorithm=ALGORITHM)


def issue_refresh(
    config: TokenConfig,
    *,
    token_id: UUID,
    family_id: UUID,
    user_id: UUID,
    tenant_id: UUID,
    version: int,
    now: int,
) -> str:
    claims = {
        "sub": str(user_id),
        "tid": str(tenant_id),
        "sv": version,
        "iat": now,
        "exp": now + config.REFRESH_TOKEN_TTL,
        "aud": config.JWT_AUDIENCE,
        "iss": config.JWT_ISSUER,
        "typ": "refresh",
        "jti": str(token_id),
        "fam": str(family_id),
    }
    return jwt.encode(claims, config.JWT_SECRET, algorithm=ALGORITHM)


def _is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        UUID(value)
    except ValueError:
        return False
    return True


def _decode(
    token: str, config: TokenConfig, *, typ: str, required: tuple[str, ...]
) -> dict[str, Any] | None:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            config.JWT_SECRET,
            algorithms=[ALGORITHM],
            audience=config.JWT_AUDIENCE,
            issuer=config.JWT_ISSUER,
            leeway=LEEWAY,
            options={"require": list(required)},
        )
    except jwt.PyJWTError:
        return None
    if claims.get("typ") != typ:
        return None
    if not (_is_uuid(claims.get("sub")) and _is_uuid(claims.get("tid"))):
        return None
    if type(claims.get("sv")) is not int:  # bool is an int subclass: refused too
        return None
    return claims


def decode_access(token: str, config: TokenConfig) -> dict[str, Any] | None:
    """Claims of a well-signed, unexpired access token, or None. Pure: no database."""
    claims = _decode(token, config, typ="access", required=ACCESS_CLAIMS)
    if claims is None or not isinstance(claims.get("role"), str):
        return None
    return claims if claims["role"] in ROLE_SCOPES else None


def decode_refresh(token: str, config: TokenConfig) -> dict[str, Any] | None:
    """Claims of a well-signed, unexpired refresh token, or None."""
    claims = _decode(token, config, typ="refresh", required=REFRESH_CLAIMS)
    if claims is None or not (_is_uuid(claims.get("jti")) and _is_uuid(claims.get("fam"))):
        return None
    return claims


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """The caller of a decoded access token (see `decode_access`)."""
    role: str = claims["role"]
    return Principal(
        tenant_id=UUID(claims["tid"]),
        scopes=ROLE_SCOPES[role],
        kind="staff",
        subject_id=UUID(claims["sub"]),
        role=role,
    )


def _state(
    row: asyncpg.Record | None, *, tenant_id: UUID, role: str | None, version: int
) -> StaffState:
    if row is None or not row["active"] or row["tenant_id"] != tenant_id:
        return "revoked"
    if row["session_version"] != version:
        return "revoked"  # the password, role or active flag changed, or a token was reused
    if role is not None and row["role"] != role:
        return "revoked"  # the role changed: a refresh issues a token with the new one
    return "active" if row["tenant_status"] == "active" else "suspended"


async def check_staff_active(conn: asyncpg.Connection, claims: dict[str, Any]) -> StaffState:
    """Whether a decoded access token's user may still act: one indexed lookup."""
    row = await lq.find_staff_state(conn, UUID(claims["sub"]))
    return _state(row, tenant_id=UUID(claims["tid"]), role=claims["role"], version=claims["sv"])


def _matching(rows: list[asyncpg.Record], password: str) -> list[asyncpg.Record]:
    """The candidates whose hash the password matches. Every hash is verified (a dummy
    one when there is no candidate), none skipped, so the time depends on how many
    candidates there are, never on which one matched."""
    if not rows:
        passwords.verify_password(None, password)
        return []
    return [row for row in rows if passwords.verify_password(row["password_hash"], password)]


async def login(
    pool: asyncpg.Pool,
    config: TokenConfig,
    *,
    username: str,
    password: str,
    tenant_slug: str | None,
) -> TokenPair:
    """A new token family for valid credentials; LoginFailed or TenantRequired otherwise.

    The password is checked before anything else is said: only a password right for
    this username in several organizations (no tenant given) asks for the tenant, so
    the answers never tell which usernames exist."""
    async with pool.acquire(timeout=config.DB_ACQUIRE_TIMEOUT) as conn:
        rows = await lq.find_login_candidates(conn, username=username, tenant_slug=tenant_slug)
    # argon2 runs in a thread so the event loop keeps serving meanwhile.
    matches = await asyncio.to_thread(_matching, rows, password)
    if len(matches) > 1:
        raise TenantRequired()
    row = matches[0] if matches else None
    if row is None or not row["active"] or row["tenant_status"] != "active":
        raise LoginFailed()
    new_hash = None
    if passwords.needs_rehash(row["password_hash"]):
        new_hash = await asyncio.to_thread(passwords.hash_password, password)
    async with tenant_transaction(
        pool, row["tenant_id"], acquire_timeout=config.DB_ACQUIRE_TIMEOUT
    ) as conn:
        if new_hash is not None:
            await sq.rehash_staff_password(
                conn, user_id=row["user_id"], old_hash=row["password_hash"], new_hash=new_hash
            )
        return await _issue_pair(
            conn,
            config,
            user_id=row["user_id"],
            tenant_id=row["tenant_id"],
            role=row["role"],
            version=row["session_version"],
            family_id=uuid4(),
        )


async def refresh(pool: asyncpg.Pool, config: TokenConfig, token: str) -> TokenPair:
    """The next token pair of the family; RefreshRefused (after revoking on reuse)."""
    claims = decode_refresh(token, config)
    if claims is None:
        raise RefreshRefused()
    tenant_id = UUID(claims["tid"])
    async with tenant_transaction(
        pool, tenant_id, acquire_timeout=config.DB_ACQUIRE_TIMEOUT
    ) as conn:
        # Returns None on refusal instead of raising, so a family revocation commits.
        pair = await _rotate(conn, config, claims, tenant_id=tenant_id)
    if pair is None:
        raise RefreshRefused()
    return pair


async def _rotate(
    conn: asyncpg.Connection, config: TokenConfig, claims: dict[str, Any], *, tenant_id: UUID
) -> TokenPair | None:
    token_id, user_id, family_id = UUID(claims["jti"]), UUID(claims["sub"]), UUID(claims["fam"])
    # The session first: a token of an ended session is refused without counting as
    # reuse, so replaying old tokens cannot end the user's new sessions again.
    staff = await lq.find_staff_state(conn, user_id)
    state = _state(staff, tenant_id=tenant_id, role=None, version=claims["sv"])
    if staff is None or state != "active":
        return None
    used = await rq.use_refresh_token(
        conn, tenant_id=tenant_id, token_id=token_id, user_id=user_id, family_id=family_id
    )
    if not used:
        row = await rq.select_refresh_token(conn, tenant_id=tenant_id, token_id=token_id)
        if row is not None and (row["used_at"] is not None or row["revoked_at"] is not None):
            await rq.revoke_family(conn, tenant_id=tenant_id, family_id=row["family_id"])
            await sq.end_staff_sessions(conn, tenant_id=tenant_id, user_id=row["user_id"])
        return None
    return await _issue_pair(
        conn,
        config,
        user_id=user_id,
        tenant_id=tenant_id,
        role=staff["role"],
        version=staff["session_version"],
        family_id=family_id,
    )


async def _issue_pair(
    conn: asyncpg.Connection,
    config: TokenConfig,
    *,
    user_id: UUID,
    tenant_id: UUID,
    role: str,
    version: int,
    family_id: UUID,
) -> TokenPair:
    now = int(time.time())
    token_id = uuid4()
    await rq.insert_refresh_token(
        conn,
        tenant_id=tenant_id,
        token_id=token_id,
        user_id=user_id,
        family_id=family_id,
        expires_at=datetime.fromtimestamp(now + config.REFRESH_TOKEN_TTL, UTC),
    )
    return TokenPair(
        access=issue_access(
            config, user_id=user_id, tenant_id=tenant_id, role=role, version=version, now=now
        ),
        refresh=issue_refresh(
            config,
            token_id=token_id,
            family_id=family_id,
            user_id=user_id,
            tenant_id=tenant_id,
            version=version,
            now=now,
        ),
    )
