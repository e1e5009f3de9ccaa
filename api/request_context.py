"""Per-request identity: `X-Request-ID` (the edge's or a new one) and the client's
real IP, taken from `X-Real-IP` only when the connection comes from a trusted
proxy (the edge), never from anyone else."""

from __future__ import annotations

import re
import uuid

from sanic import Request, Sanic
from sanic.response import BaseHTTPResponse

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


async def identify(request: Request) -> None:
    given = request.headers.get("x-request-id", "")
    request.ctx.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
    peer = request.conn_info.client_ip if request.conn_info else ""
    trusted = request.app.ctx.trusted_proxies
    forwarded = request.headers.get("x-real-ip", "")
    request.ctx.client_ip = forwarded if forwarded and peer in trusted else peer


async def echo_request_id(request: Request, response: BaseHTTPResponse) -> None:
    request_id = getattr(request.ctx, "request_id", None)
    if request_id:
        response.headers["X-Request-ID"] = request_id


def setup_request_context(app: Sanic) -> None:  # type: ignore[type-arg]
    raw = str(app.config.get("TRUSTED_PROXIES", "127.0.0.1"))
    app.ctx.trusted_proxies = frozenset(p.strip() for p in raw.split(",") if p.strip())
    app.register_middleware(identify, "request")
    app.register_middleware(echo_request_id, "response")
