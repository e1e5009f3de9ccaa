"""Staff logins: `POST /api/token/` and `POST /api/token/refresh/` (JWT), the old
system's paths, with or without the trailing slash."""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request

from api.body import parse_body
from api.database import open_pool
from api.errors import BadRequest, Unauthorized
from api.models.tokens import TokenObtain, TokenPair, TokenRefresh
from api.openapi import doc
from api.responses import json_response
from tenants import tokens

bp = Blueprint("tokens")

# One body for every login failure, so it never tells which part was wrong.
LOGIN_FAILED = "Invalid organization, username or password."
REFRESH_REFUSED = "Invalid, expired, revoked or already used refresh token."


@bp.post("/api/token/", strict_slashes=False)
@doc(tag="tokens", body=TokenObtain, response=TokenPair, errors=(400, 401, 413, 422), secured=False)
async def create_token(request: Request) -> HTTPResponse:
    """Log a staff user in: a new access and refresh token."""
    body = parse_body(request, TokenObtain)
    try:
        pair = await tokens.login(
            open_pool(request),
            request.app.config,
            username=body.username,
            password=body.password,
            tenant_slug=body.tenant,
        )
    except tokens.TenantRequired:
        # Only after the password matched in more than one organization: before
        # that, every failure is the one 401 (no answer tells a username exists).
        raise BadRequest(
            "This login is valid in several organizations; send `tenant` (the "
            "organization's slug).",
            errors=[{"field": "tenant", "message": "required for this login", "type": "missing"}],
        ) from None
    except tokens.LoginFailed:
        raise Unauthorized(LOGIN_FAILED) from None
    return json_response(TokenPair(access=pair.access, refresh=pair.refresh))


@bp.post("/api/token/refresh/", strict_slashes=False)
@doc(
    tag="tokens", body=TokenRefresh, response=TokenPair, errors=(400, 401, 413, 422), secured=False
)
async def refresh_token(request: Request) -> HTTPResponse:
    """Rotate a refresh token: the next access and refresh token of its family."""
    body = parse_body(request, TokenRefresh)
    try:
        pair = await tokens.refresh(open_pool(request), request.app.config, body.refresh)
    except tokens.RefreshRefused:
        raise Unauthorized(REFRESH_REFUSED) from None
    return json_response(TokenPair(access=pair.access, refresh=pair.refresh))
