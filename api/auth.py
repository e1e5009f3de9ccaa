"""`Authorization: Bearer <api key | staff access token>` → an injected `Principal`."""

from __future__ import annotations

from datetime import UTC, datetime

from sanic import Request

from api.errors import Forbidden, Unauthorized
from db.queries import auth as q
from tenants import keys
from tenants.principal import Principal, Scope


async def principal_from_request(request: Request) -> Principal:
    cached = getattr(request.ctx, "principal", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized()
    if token.startswith(keys.KEY_PREFIX):
        principal = await _from_api_key(request, token)
    else:
        principal = await _from_access_token(request, token)
    request.ctx.principal = principal
    return principal


async def _from_api_key(request: Request, token: str) -> Principal:
    prefix = keys.parse_prefix(token)
    if prefix is None:
        raise Unauthorized()
    pool = request.app.ctx.pool
    async with pool.acquire(timeout=request.app.config.DB_ACQUIRE_TIMEOUT) as conn:
        row = await q.find_api_key(conn, prefix)
        if row is None or not keys.matches(token, bytes(row["secret_hash"])):
            raise Unauthorized()
        now = datetime.now(UTC)
        if row["revoked_at"] is not None or (
            row["expires_at"] is not None and row["expires_at"] <= now
        ):
            raise Unauthorized()
        if row["tenant_status"] != "active":
            raise Forbidden("This organization is suspended.")
        await q.touch_api_key(conn, row["key_id"])
    return Principal(
        tenant_id=row["tenant_id"],
        scopes=frozenset(row["scopes"]),
        kind="api_key",
        subject_id=row["key_id"],
    )


async def _from_access_token(request: Request, token: str) -> Principal:
    from tenants import tokens  # staff JWTs; imported lazily to keep cold start lean

    claims = tokens.decode_access(token, request.app.config)
    if claims is None:
        raise Unauthorized()
    # A signature is not enough: a suspended tenant, a deactivated user or a changed
    # role must stop an access token before it expires.
    pool = request.app.ctx.pool
    async with pool.acquire(timeout=request.app.config.DB_ACQUIRE_TIMEOUT) as conn:
        state = await tokens.check_staff_active(conn, claims)
    if state == "suspended":
        raise Forbidden("This organization is suspended.")
    if state != "active":
        raise Unauthorized()
    return tokens.principal_from_claims(claims)


def require(principal: Principal, scope: Scope) -> None:
    if not principal.allows(scope):
        raise Forbidden(f"{principal.describe()} lacks the {scope!r} permission")
