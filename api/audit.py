"""The audit log's one place in the API: a response middleware that records every
write through the partner API (POST/PUT/PATCH/DELETE under /api/v1/, and the staff
login and refresh routes) as one `audit_log` row, so a route added later is audited
without touching it.

What a row holds comes from the route and the request, never from the body: the
action from the route's name (`create_campaign` → `campaign.create`, with
`ACTIONS` for the few a handler's name does not say), the resource id from the
response's `id` or else the route's last path parameter, the actor from the
authenticated `Principal`, the client's address and request id from
api/request_context.py, and the status. No body, token, password, header or donor
contact is ever read into it.

What is not recorded, on purpose:
- requests that never authenticated (no or a bad credential, a failed login or
  refresh, a suspended tenant, or no such route): anyone can send them, so they
  would let anonymous traffic flood a tenant's log; the failed-authentication
  limiter (tenants/authlimit.py) answers them;
- 429s of the per-credential rate limit (the principal is only kept once the limit
  passed): nothing was attempted, and recording them would double the writes of a
  credential that is already over its limit;
- public pledges (`/api/public/...`, the donor pages' form): anonymous donations,
  already recorded as donations with their source.

The row is written after the response is built, in a short transaction of its own:
it never changes the response nor fails the request. When it cannot be written the
error is logged and counted in `conectades_audit_failures_total`."""

from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

import orjson
from prometheus_client import Counter
from sanic import Request
from sanic.response import BaseHTTPResponse

from api.context import app_context
from api.request_context import client_ip
from db.pool import acquire
from db.queries import audit as q
from tenants.principal import Principal

if TYPE_CHECKING:
    from api.types import App

log = logging.getLogger("conectades.audit")

FAILURES = Counter(
    "conectades_audit_failures",
    "Audit rows that could not be written (the request was answered all the same)",
    ["action"],
)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PARTNER_PREFIX = "api/v1/"
# Route name (blueprint.handler) → (action, resource type), where the handler's
# name does not say it; the staff login routes are audited although not under /api/v1.
ACTIONS: dict[str, tuple[str, str]] = {
    "keys.delete_key": ("key.revoke", "key"),
    "tokens.create_token": ("staff_user.login", "staff_user"),
    "tokens.refresh_token": ("staff_user.refresh", "staff_user"),
}
# Reads audited like writes: they hand out donors' personal data in bulk (LGPD:
# who exported whose contacts, and when).
AUDITED_READS: dict[str, tuple[str, str]] = {
    "export.export_donations": ("donation.export", "donation"),
}
# A response that came from a database in trouble: wait for a connection briefly.
UNAVAILABLE_ACQUIRE_TIMEOUT = 0.2


@dataclass(frozen=True)
class AuditedRoute:
    action: str
    resource_type: str
    # A create's path parameters name its parent, not the new resource.
    creates: bool
    # The path parameter that holds the resource's id otherwise: the last one.
    id_param: str | None


# `<campaign_id:str>` in a route's path: the parameter's name. (sanic-ext adds the
# injected arguments to `request.match_info`, so its last value is not a path's.)
_PARAM = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)")


def _short_name(route_name: str) -> str:
    """`conectades.keys.delete_key` → `keys.delete_key`."""
    return route_name.split(".", 1)[1] if route_name.count(".") >= 2 else route_name


_ROUTES: dict[str, AuditedRoute | None] = {}


def audited_route(route: Any) -> AuditedRoute | None:
    """What a route's writes record, or None when the route is not audited."""
    if route is None:
        return None
    if route.name not in _ROUTES:
        _ROUTES[route.name] = _audited_route(route)
    return _ROUTES[route.name]


def _audited_route(route: Any) -> AuditedRoute | None:
    name = _short_name(route.name)
    if name in AUDITED_READS:
        action, resource = AUDITED_READS[name]
        return AuditedRoute(action, resource, creates=False, id_param=None)
    if not (route.methods & WRITE_METHODS):
        return None
    blueprint, _, handler = name.rpartition(".")
    if name in ACTIONS:
        action, resource = ACTIONS[name]
    elif route.path.startswith(PARTNER_PREFIX):
        verb, _, noun = handler.partition("_")
        resource = noun or blueprint
        action = f"{resource}.{verb}"
    else:
        return None
    params = _PARAM.findall(route.path)
    return AuditedRoute(
        action,
        resource,
        creates=handler.startswith("create_"),
        id_param=params[-1] if params else None,
    )


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value))
    except (TypeError, ValueError):
        return None


def _response_id(response: BaseHTTPResponse) -> UUID | None:
    if not 200 <= response.status < 300 or not response.body:
        return None
    if not (response.content_type or "").startswith("application/json"):
        return None
    try:
        data = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        return None
    return _uuid(data.get("id")) if isinstance(data, dict) else None


def _login_principal(request: Request, response: BaseHTTPResponse) -> Principal | None:
    """Who just logged in or refreshed: the access token the response carries (the
    login routes have no principal of their own; the token is only read, never kept)."""
    if response.status != 200 or not response.body:
        return None
    from tenants import tokens

    try:
        access = orjson.loads(response.body).get("access")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    claims = tokens.decode_access(access, request.app.config) if isinstance(access, str) else None
    return tokens.principal_from_claims(claims) if claims else None


def _ip(raw: str) -> str | None:
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        return None


def entry_for(request: Request, response: BaseHTTPResponse) -> tuple[UUID, q.Entry] | None:
    """The tenant and row a request records, or None."""
    if request.method not in WRITE_METHODS and request.method != "GET":
        return None
    route = audited_route(request.route)
    if route is None:
        return None
    principal: Principal | None = getattr(request.ctx, "principal", None)
    if principal is None and route.resource_type == "staff_user":
        principal = _login_principal(request, response)
    if principal is None:
        return None  # never authenticated: see the module's docstring
    resource_id = _response_id(response)
    if route.resource_type == "staff_user" and principal.kind == "staff":
        resource_id = principal.subject_id
    elif resource_id is None and not route.creates and route.id_param:
        resource_id = _uuid(request.match_info.get(route.id_param))
    entry = q.Entry(
        actor_kind="api_key" if principal.kind == "api_key" else "staff_user",
        actor_id=principal.subject_id,
        action=route.action,
        resource_type=route.resource_type,
        resource_id=resource_id,
        method=request.method,
        path=request.path,
        client_ip=_ip(client_ip(request)),
        request_id=getattr(request.ctx, "request_id", None),
        status=response.status,
    )
    return principal.tenant_id, entry


async def record_write(request: Request, response: BaseHTTPResponse) -> None:
    """Response middleware: one audit row per audited write (or audited read, such
    as an export: a streamed answer runs this when it starts); never raises."""
    if request.method not in WRITE_METHODS and request.method != "GET":
        return
    try:
        found = entry_for(request, response)
        if found is None:
            return
        tenant_id, entry = found
        timeout = float(request.app.config.DB_ACQUIRE_TIMEOUT)
        if response.status == 503:
            timeout = min(timeout, UNAVAILABLE_ACQUIRE_TIMEOUT)
        pool = app_context(request).pool
        # One statement on a connection of its own (migration 0027), not a transaction.
        async with acquire(pool, acquire_timeout=timeout) as conn:
            await q.insert_entry(conn, tenant_id, entry)
    except Exception as exc:  # the answer stands whatever happens here
        action = getattr(audited_route(request.route), "action", "unknown")
        FAILURES.labels(action).inc()
        log.error(
            "AUDIT ROW LOST: %s %s (status %s, request %s): %r",
            request.method,
            request.path,
            response.status,
            getattr(request.ctx, "request_id", "-"),
            exc,
        )


def setup_audit(app: App) -> None:
    app.register_middleware(record_write, "response")
