"""The worker's HTTP/1.1 client for webhook deliveries: h11 (the protocol: framing,
parsing, keep-alive rules) over asyncio streams, with keep-alive connections per
origin and SSRF vetting at every connect (worker/destinations.py: `resolve_vetted`).

Why not httpcore (which the worker used before, and which is itself h11 underneath):
on this machine its pool spent 1.1-1.4 ms of CPU per POST to a local receiver at 16
in flight, against 0.05-0.09 ms for the same POSTs written with h11 directly
(docs/decisions.md, 7: "The delivery client"). Webhook deliveries need little of
what a general client does: one POST, no redirects, no cookies, no HTTP/2, the
status and at most `max_response` bytes of the answer.

What this keeps from the general client:

- every connection goes to an address that `resolve_vetted` checked (no second DNS
  resolution), TLS verifies the URL's host name;
- a kept-alive connection the server closed meanwhile is detected (EOF or reset
  before any byte of the answer) and the request is sent again once on a fresh one;
- idle connections are closed after `keepalive` seconds; a connection is reused only
  after a complete exchange that h11 says may continue (no `Connection: close`, the
  answer read to its end);
- a timeout or cancellation closes the connection (never reused half-read).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h11

from worker.destinations import resolve_vetted

Origin = tuple[str, str, int]  # scheme, host, port


class UnsupportedURL(ValueError):
    """Not an http:// or https:// URL with a host."""


class StaleConnection(Exception):
    """A reused connection was closed by the server before it answered."""


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    h11: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT))
    idle_since: float = 0.0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


@dataclass(frozen=True)
class Target:
    origin: Origin
    host_header: bytes
    path: bytes


def parse_target(url: str) -> Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsupportedURL(f"{url[:100]!r} is not an http(s) URL with a host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.netloc.rsplit("@", 1)[-1]  # check_url refuses credentials anyway
    return Target((parts.scheme, parts.hostname, port), host.encode("idna"), path.encode())


class DeliveryClient:
    def __init__(
        self,
        allowed: frozenset[str],
        *,
        keepalive: float = 4.0,
        max_response: int = 64 * 1024,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.allowed = allowed
        self.keepalive = keepalive
        self.max_response = max_response
        self.ssl_context = ssl_context
        self.idle: dict[Origin, list[_Connection]] = {}
        self.swept = time.monotonic()

    def _tls(self) -> ssl.SSLContext:
        if self.ssl_context is None:
            self.ssl_context = ssl.create_default_context()
        return self.ssl_context

    async def post(
        self,
        url: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        *,
        connect_timeout: float,
    ) -> int:
        """POST `body`; the answer's status. Raises DestinationRefused, UnsupportedURL,
        OSError (connect, reset, TLS), h11.ProtocolError; the caller bounds the whole
        attempt with a timeout."""
        target = parse_target(url)
        request = [
            (b"Host", target.host_header),
            (b"Content-Length", str(len(body)).encode()),
            *headers,
        ]
        conn = self._idle_connection(target.origin)
        if conn is not None:
            try:
                return await self._exchange(target.origin, conn, request, target.path, body)
            except StaleConnection:
                pass  # closed by the server while idle: once more on a new connection
        conn = await self._connect(target.origin, connect_timeout)  # never stale
        return await self._exchange(target.origin, conn, request, target.path, body)

    def _idle_connection(self, origin: Origin) -> _Connection | None:
        now = time.monotonic()
        if now - self.swept > self.keepalive:  # other origins' expired connections
            self.swept = now
            for key, conns in list(self.idle.items()):
                keep = []
                for c in conns:
                    if now - c.idle_since < self.keepalive:
                        keep.append(c)
                    else:
                        c.close()
                if keep:
                    self.idle[key] = keep
                else:
                    del self.idle[key]
        pool = self.idle.get(origin)
        while pool:
            conn = pool.pop()
            if now - conn.idle_since < self.keepalive and not conn.reader.at_eof():
                return conn
            conn.close()
        return None

    async def _connect(self, origin: Origin, timeout: float) -> _Connection:  # noqa: ASYNC109
        scheme, host, port = origin
        addresses = await resolve_vetted(host, port, self.allowed)
        tls = self._tls() if scheme == "https" else None
        error: Exception | None = None
        for address in addresses:
            try:
                async with asyncio.timeout(timeout):
                    reader, writer = await asyncio.open_connection(
                        address, port, ssl=tls, server_hostname=host if tls else None
                    )
                return _Connection(reader, writer)
            except (OSError, TimeoutError) as exc:
                error = exc
        assert error is not None
        raise error

    async def _exchange(
        self,
        origin: Origin,
        conn: _Connection,
        headers: list[tuple[bytes, bytes]],
        path: bytes,
        body: bytes,
    ) -> int:
        reusable = False
        answered = False
        try:
            p = conn.h11
            data = p.send(h11.Request(method=b"POST", target=path, headers=headers))
            data = (data or b"") + (p.send(h11.Data(data=body)) or b"")
            data += p.send(h11.EndOfMessage()) or b""
            try:
                conn.writer.write(data)  # one write: headers and body in one segment
                await conn.writer.drain()
            except (ConnectionResetError, BrokenPipeError):
                if conn.idle_since:
                    raise StaleConnection from None
                raise
            status = 0
            received = 0
            while True:
                event = p.next_event()
                if event is h11.NEED_DATA:
                    try:
                        chunk = await conn.reader.read(65536)
                    except ConnectionResetError:
                        if conn.idle_since and not answered:
                            raise StaleConnection from None
                        raise
                    if not chunk and conn.idle_since and not answered:
                        raise StaleConnection
                    p.receive_data(chunk)
                    continue
                if isinstance(event, h11.InformationalResponse):
                    continue
                if isinstance(event, h11.Response):
                    answered = True
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    received += len(event.data)
                    if received > self.max_response:
                        return status  # the status is all we need; not reused
                elif isinstance(event, h11.EndOfMessage):
                    reusable = p.our_state is h11.DONE and p.their_state is h11.DONE
                    return status
                elif isinstance(event, h11.ConnectionClosed):
                    raise ConnectionResetError("the connection closed mid-answer")
        finally:
            if reusable:
                conn.h11.start_next_cycle()
                conn.idle_since = time.monotonic()
                self.idle.setdefault(origin, []).append(conn)
            else:
                conn.close()

    async def aclose(self) -> None:
        idle, self.idle = self.idle, {}
        for pool in idle.values():
            for conn in pool:
                conn.close()
        await asyncio.sleep(0)


__all__ = ["DeliveryClient", "UnsupportedURL", "parse_target"]
