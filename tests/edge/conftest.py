"""A real Nginx edge (rendered by edge/render.py) in front of the session API."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.cache import PUBLIC_CACHE_CONTROL
from edge.render import EdgeConfig
from infra.nginx import LocalNginx, free_port
from tests.services import ApiServer


def start_edge(root: Path, upstreams: list[str], **options: Any) -> LocalNginx:
    edge = LocalNginx(
        EdgeConfig(listen_port=free_port(), upstreams=upstreams, prefix=root, **options)
    )
    edge.start()
    return edge


def hostport(url: str) -> str:
    return url.removeprefix("http://")


@pytest.fixture(scope="session")
def edge(api: ApiServer, workdir: Path) -> Iterator[LocalNginx]:
    server = start_edge(workdir / "edge", [hostport(api.url)])
    yield server
    server.stop()
    server.remove_worker_paths()


@pytest.fixture
def edge_client(edge: LocalNginx) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=edge.url, timeout=30) as c:
        yield c


class CountingUpstream:
    """A fake worker that counts requests, reads each one, then dies mid-request
    (closes the connection without answering), as a crashing worker would."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    pass
                if data:
                    with self.lock:
                        self.requests.append(data.split(b"\r\n", 1)[0])

    def close(self) -> None:
        self.sock.close()


class SlowUpstream:
    """A fake API worker that answers every GET after `delay` seconds with a public
    200 (the API's own Cache-Control) and counts the requests it answered."""

    def __init__(self, delay: float) -> None:
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                time.sleep(delay)
                with upstream.lock:
                    upstream.answered += 1
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", PUBLIC_CACHE_CONTROL)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.answered = 0
        self.lock = threading.Lock()

        class Server(http.server.ThreadingHTTPServer):
            request_queue_size = 64  # the stdlib's 5 drops a burst's connects (1-s retry)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
