"""A client that drips its request straight to the API port (not through the edge)
gets a 408 or a closed connection once BODY_TIMEOUT has passed since the request's
first byte, however steadily it drips; Sanic's REQUEST_TIMEOUT (restarted by every
chunk) never fired. Steady uploads within the bound, and keep-alive connections
idle between requests, are not affected."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.factories import Factory, TenantCtx
from tests.services import ApiServer, Database, api_env

BOUND = 2.0
SLACK = 1.5  # scheduling, and the 0.5 s between two drips


@pytest.fixture(scope="module")
def server(db: Database, workdir: Path) -> Iterator[ApiServer]:
    env = api_env(db, CONECTADES_BODY_TIMEOUT=str(BOUND))
    env.pop("CONECTADES_REDIS_URL", None)
    api = ApiServer(env, workers=1, log=workdir / "api-slowbody.log")
    api.start()
    yield api
    api.stop()


@pytest.fixture(scope="module")
def org(db: Database, server: ApiServer) -> TenantCtx:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        return Factory(db, client).tenant()


def campaign_body() -> bytes:
    return orjson.dumps(
        {
            "slug": f"c-{time.monotonic_ns()}",
            "title": "Agasalho",
            "items": [{"name": "Cobertor", "unit": "unit", "quantity_requested": 30}],
        }
    )


def head(path: str, length: int, headers: dict[str, str] | None = None) -> bytes:
    lines = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{lines}"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def drip(sock: socket.socket, data: bytes, interval: float, limit: float) -> tuple[bytes, float]:
    """Send `data` one byte every `interval` s until the server answers or closes (or
    `limit` s pass); what it answered and when, from the first byte sent."""
    start = time.monotonic()
    sock.setblocking(False)
    received = b""
    for byte in data:
        try:
            sock.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            break
        deadline = time.monotonic() + interval
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            except ConnectionResetError:
                return received, time.monotonic() - start
            if not chunk:  # closed
                return received, time.monotonic() - start
            received += chunk
        if time.monotonic() - start > limit:
            break
    return received, time.monotonic() - start


def read_until_closed(sock: socket.socket, limit: float) -> bytes:
    sock.setblocking(True)
    sock.settimeout(limit)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received


def connect(server: ApiServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def test_body_dripped_one_byte_at_a_time_is_408_within_the_bound(
    server: ApiServer, org: TenantCtx
) -> None:
    body = campaign_body()
    with connect(server) as sock:
        sock.sendall(head("/api/v1/campaigns", len(body), org.headers))
        received, elapsed = drip(sock, body, interval=0.5, limit=BOUND + 10)
        received += read_until_closed(sock, 2)
    assert elapsed < BOUND + SLACK, f"still open after {elapsed:.1f} s"
    assert received.startswith(b"HTTP/1.1 408 "), received[:300]
    assert b"content-type: application/problem+json" in received.lower()
    assert b'"status":408' in received


def test_headers_dripped_one_byte_at_a_time_are_408_within_the_bound(
    server: ApiServer,
) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        received, elapsed = drip(sock, b"X-Slow: " + b"a" * 100, interval=0.5, limit=BOUND + 10)
        received += read_until_closed(sock, 2)
    assert elapsed < BOUND + SLACK, f"still open after {elapsed:.1f} s"
    assert received.startswith(b"HTTP/1.1 408 "), received[:300]


def test_body_of_an_unknown_route_is_answered_then_the_connection_closed(
    server: ApiServer,
) -> None:
    # No handler reads it: Sanic answers 404 first, then drains the body.
    with connect(server) as sock:
        sock.sendall(head("/nowhere", 100))
        received, elapsed = drip(sock, b"x" * 100, interval=0.5, limit=BOUND + 10)
        received += read_until_closed(sock, 2)
    assert elapsed < BOUND + SLACK, f"still open after {elapsed:.1f} s"
    assert received.startswith(b"HTTP/1.1 404 "), received[:300]


def test_steady_upload_within_the_bound_is_served(server: ApiServer, org: TenantCtx) -> None:
    body = campaign_body()
    chunks = [body[i : i + 16] for i in range(0, len(body), 16)]
    interval = (BOUND / 2) / len(chunks)  # the whole body in half the bound
    with connect(server) as sock:
        sock.sendall(head("/api/v1/campaigns", len(body), org.headers))
        for chunk in chunks:
            sock.sendall(chunk)
            time.sleep(interval)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 201 "), answer[:300]


def test_keep_alive_idle_time_between_requests_does_not_count(server: ApiServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/health").status_code == 200
        time.sleep(BOUND + 1)
        r = client.post("/nowhere", content=b"{}")  # a body on the same connection
        assert r.status_code == 404
        assert client.get("/health").status_code == 200
