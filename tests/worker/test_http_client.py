"""worker/http.py, the delivery client, against real servers on 127.0.0.1: keep-alive
reuse, a kept-alive connection the server closed, `Connection: close`, an oversized
answer, TLS (a certificate made here), and URLs it refuses."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import h11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from worker.destinations import DestinationRefused
from worker.http import DeliveryClient, UnsupportedURL, parse_target

ALLOWED = frozenset({"127.0.0.1", "localhost"})
HEADERS = [(b"Content-Type", b"application/json"), (b"webhook-id", b"msg_1")]


class Server:
    """An HTTP/1.1 server answering each POST with `answer(request_number)` raw bytes;
    counts connections and requests, records bodies."""

    def __init__(self, answer: Callable[[int], bytes]) -> None:
        self.answer = answer
        self.connections = 0
        self.bodies: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.bodies.append(await reader.readexactly(length))
                writer.write(self.answer(len(self.bodies)))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def drop_connections(self) -> None:
        for w in self.writers:
            w.close()


@asynccontextmanager
async def serving(
    answer: Callable[[int], bytes], tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[Server, int]]:
    server = Server(answer)
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    try:
        yield server, srv.sockets[0].getsockname()[1]
    finally:
        srv.close()


def ok(_: int) -> bytes:
    return b"HTTP/1.1 204 No Content\r\n\r\n"


async def test_keeps_the_connection_alive_between_deliveries() -> None:
    async with serving(ok) as (server, port):
        client = DeliveryClient(ALLOWED)
        for i in range(5):
            status = await client.post(
                f"http://127.0.0.1:{port}/hook?x=1", HEADERS, b'{"n":%d}' % i, connect_timeout=2
            )
            assert status == 204
        await client.aclose()
    assert server.connections == 1
    assert server.bodies == [b'{"n":%d}' % i for i in range(5)]


async def test_a_kept_alive_connection_the_server_closed_is_replaced() -> None:
    async with serving(ok) as (server, port):
        client = DeliveryClient(ALLOWED)
        url = f"http://127.0.0.1:{port}/"
        assert await client.post(url, HEADERS, b"1", connect_timeout=2) == 204
        server.drop_connections()  # the server's keep-alive timeout, say
        await asyncio.sleep(0.05)  # the close seen while idle
        assert await client.post(url, HEADERS, b"2", connect_timeout=2) == 204
        for n in range(3, 23):  # the close racing the next request
            server.drop_connections()
            assert await client.post(url, HEADERS, b"%d" % n, connect_timeout=2) == 204
        await client.aclose()
    # Each sent once, on a new connection each time.
    assert server.bodies == [b"%d" % n for n in range(1, 23)]
    assert server.connections == 22


async def test_connection_close_and_oversized_answers_are_not_reused() -> None:
    def answer(n: int) -> bytes:
        if n == 1:
            return b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
        big = b"x" * (70 * 1024)
        return b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big)

    async with serving(answer) as (server, port):
        client = DeliveryClient(ALLOWED, max_response=64 * 1024)
        url = f"http://127.0.0.1:{port}/"
        assert await client.post(url, HEADERS, b"1", connect_timeout=2) == 200
        assert await client.post(url, HEADERS, b"2", connect_timeout=2) == 500
        assert client.idle == {} or not any(client.idle.values())
        await client.aclose()
    assert server.connections == 2


async def test_a_malformed_answer_is_a_protocol_error() -> None:
    async with serving(lambda _: b"NOT HTTP AT ALL\r\n\r\n") as (_, port):
        client = DeliveryClient(ALLOWED)
        with pytest.raises(h11.RemoteProtocolError):
            await client.post(f"http://127.0.0.1:{port}/", HEADERS, b"1", connect_timeout=2)


async def test_a_server_that_closes_without_answering_is_an_error() -> None:
    async def close_after_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    srv = await asyncio.start_server(close_after_headers, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        with pytest.raises((ConnectionError, h11.RemoteProtocolError)):
            await DeliveryClient(ALLOWED).post(
                f"http://127.0.0.1:{port}/", HEADERS, b"1", connect_timeout=2
            )
    finally:
        srv.close()


async def test_refuses_what_is_not_a_vetted_http_destination() -> None:
    client = DeliveryClient(ALLOWED)
    with pytest.raises(UnsupportedURL):
        await client.post("ftp://127.0.0.1/x", HEADERS, b"1", connect_timeout=1)
    with pytest.raises(DestinationRefused):  # loopback, not spelled as allowed
        await client.post("http://127.0.0.2:9/", HEADERS, b"1", connect_timeout=1)
    assert parse_target("http://[::1]:8080/a?b=c").origin == ("http", "::1", 8080)
    assert parse_target("https://example.org").path == b"/"


def _certificate(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_tls_is_verified_against_the_urls_host(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    async with serving(ok, tls=server_tls) as (server, port):
        trusting = ssl.create_default_context(cafile=str(cert))
        client = DeliveryClient(ALLOWED, ssl_context=trusting)
        url = f"https://localhost:{port}/hook"
        assert await client.post(url, HEADERS, b"1", connect_timeout=2) == 204
        assert await client.post(url, HEADERS, b"2", connect_timeout=2) == 204
        await client.aclose()
        assert server.connections == 1
        # The system's trust store does not know this certificate: refused.
        with pytest.raises(ssl.SSLError):
            await DeliveryClient(ALLOWED).post(url, HEADERS, b"3", connect_timeout=2)
    assert server.bodies == [b"1", b"2"]
