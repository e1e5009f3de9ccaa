"""`Authorization: Bearer <api key | staff access token>` → an injected `Principal`."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import asyncpg
from sanic import Request
from sanic.response import BaseHTTPResponse

from api.context import app_context
from api.database import connection
from api.errors import Forbidden, TooManyRequests, Unauthorized
from api.request_context import client_ip
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
    failures = app_context(request).auth_failures
    client = client_ip(request)
    if failures is not None and failures.retry_after(client) > 0:
        raise TooManyRequests(
            "Too many failed authentications from this address; retry after the time in "
            "Retry-After.",
            headers={"Retry-After": failures.retry_after_header(client)},
        )
    try:
        if token.startswith(keys.KEY_PREFIX):
            principal = await _from_api_key(request, token)
        else:
            principal = await _from_access_token(request, token)
    except Unauthorized:
        if failures is not None:
            failures.failed(client)
        raise
    await _rate_limit(request, principal)
    request.ctx.principal = principal
    return principal


async def _from_api_key(request: Request, token: str) -> Principal:
    prefix = keys.parse_prefix(token)
    if prefix is None:
        raise Unauthorized()
    ctx = app_context(request)
    # The row may be up to the memo's TTL (5 s) old in this worker: that bounds how
    # long a key revoked elsewhere (another worker, the CLI) or a tenant suspended
    # keeps working here. Every check below still runs on every request.
    row = await ctx.api_keys.get_or_load(prefix, lambda: _load_api_key(request, prefix))
    if row is None or not keys.matches(token, bytes(row["secret_hash"])):
        raise Unauthorized()
    now = datetime.now(UTC)
    if row["revoked_at"] is not None or (
        row["expires_at"] is not None and row["expires_at"] <= now
    ):
        raise Unauthorized()
    if row["tenant_status"] != "active":
        raise Forbidden("This organization is suspended.")
    key_id: UUID = row["key_id"]
    # last_used_at has minute resolution (touch_api_key): at most one touch per
    # key per minute from this worker, so a memoized key needs no connection.
    if ctx.key_touches.get(key_id) is None:
        ctx.key_touches.put(key_id, True)
        async with connection(request) as conn:
            await q.touch_api_key(conn, key_id)
    return Principal(
        tenant_id=row["tenant_id"],
        scopes=frozenset(row["scopes"]),
        kind="api_key",
        subject_id=key_id,
    )


async def _load_api_key(request: Request, prefix: str) -> asyncpg.Record | None:
    async with connection(request) as conn:
        return await q.find_api_key(conn, prefix)


def forget_api_key(request: Request, prefix: str) -> None:
    """Drop a key from THIS worker's memo (right after revoking it here); other
    workers notice within the memo's TTL."""
    app_context(request).api_keys.discard(prefix)


async def _from_access_token(request: Request, token: str) -> Principal:
    from tenants import tokens  # staff JWTs; imported lazily to keep cold start lean

    claims = tokens.decode_access(token, request.app.config)
    if claims is None:
        raise Unauthorized()
    # A signature is not enough: a suspended tenant, a deactivated user, a changed role
    # or an ended session (password change, reused refresh token) must stop an access
    # token before it expires.
    async with connection(request) as conn:
        state = await tokens.check_staff_active(conn, claims)
    if state == "suspended":
        raise Forbidden("This organization is suspended.")
    if state != "active":
        raise Unauthorized()
    return tokens.principal_from_claims(claims)


async def _rate_limit(request: Request, principal: Principal) -> None:
    """Per API key or staff user; fails open when Redis cannot answer."""
    limiter = app_context(request).ratelimit
    if limiter is None:
        return
    decision = await limiter.check(principal.subject_id)
    if decision is None:
        return
    request.ctx.ratelimit = decision
    if not decision.allowed:
        raise TooManyRequests(
            f"Rate limit of {limiter.rate:g} requests/s (burst {limiter.burst}) for this "
            "credential exceeded; retry after the time in Retry-After.",
            headers=decision.headers(),
        )


async def add_rate_limit_headers(request: Request, response: BaseHTTPResponse) -> None:
    decision = getattr(request.ctx, "ratelimit", None)
    if decision is not None and decision.allowed:
        response.headers.update(decision.headers())


def require(principal: Principal, scope: Scope) -> None:
    if not principal.allows(scope):
        raise Forbidden(f"{principal.describe()} lacks the {scope!r} permission")
