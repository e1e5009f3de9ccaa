"""Per-request identity: `X-Request-ID` (the edge's or a new one) and the client's
real IP, taken from `X-Real-IP` only when the connection comes from a trusted
proxy (the edge), never from anyone else."""

from __future__ import annotations

import ipaddress
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sanic import Request
from sanic.response import BaseHTTPResponse

if TYPE_CHECKING:
    from api.types import App

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


async def identify(request: Request) -> None:
    given = request.headers.get("x-request-id", "")
    request.ctx.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
    client_ip(request)


def client_ip(request: Request) -> str:
    """The client's address (computed once per request). Call this rather than read
    `request.ctx.client_ip`: injected arguments (the Principal) are built before
    request middleware runs."""
    known: str | None = getattr(request.ctx, "client_ip", None)
    if known is not None:
        return known
    peer = request.conn_info.client_ip if request.conn_info else ""
    trusted: TrustedProxies = request.app.ctx.trusted_proxies
    forwarded = request.headers.get("x-real-ip", "")
    found: str = forwarded if forwarded and trusted.trusts(peer) else peer
    request.ctx.client_ip = found
    return found


@dataclass(frozen=True)
class TrustedProxies:
    """Exact addresses (the common case, one set lookup) and CIDR ranges, for edges
    whose address changes (compose containers, Kubernetes pods)."""

    addresses: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, raw: str) -> TrustedProxies:
        addresses: set[str] = set()
        networks = []
        for part in (p.strip() for p in raw.split(",")):
            if not part:
                continue
            if "/" in part:
                try:
                    networks.append(ipaddress.ip_network(part, strict=False))
                except ValueError as exc:
                    raise ValueError(
                        f"CONECTADES_TRUSTED_PROXIES: {part!r} is not a network"
                    ) from exc
            else:
                addresses.add(part)
        return cls(frozenset(addresses), tuple(networks))

    def trusts(self, peer: str) -> bool:
        if peer in self.addresses:
            return True
        if not self.networks or not peer:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in net for net in self.networks)


async def echo_request_id(request: Request, response: BaseHTTPResponse) -> None:
    request_id = getattr(request.ctx, "request_id", None)
    if request_id:
        response.headers["X-Request-ID"] = request_id


def setup_request_context(app: App) -> None:
    raw = str(app.config.TRUSTED_PROXIES)
    app.ctx.trusted_proxies = TrustedProxies.parse(raw)
    app.register_middleware(identify, "request")
    app.register_middleware(echo_request_id, "response")
