"""A real Nginx edge (rendered by edge/render.py) in front of the session API."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

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
