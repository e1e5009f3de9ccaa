"""infra/stack_settings.py picks a stack's ports: the preferred one unless a server
listens there, even while connections of a stopped server linger in TIME_WAIT."""

from __future__ import annotations

import socket

from infra.postgres import free_port
from infra.stack_settings import _port_or_free


def test_a_port_with_a_listener_is_not_taken() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert _port_or_free(port) != port


def test_a_port_whose_server_stopped_is_taken_again_despite_time_wait() -> None:
    port = free_port()
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen()
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    conn.close()  # the server closes first: its side of the connection is in TIME_WAIT
    client.recv(1)
    client.close()
    server.close()
    with socket.socket() as probe:  # what the old check did: refused while TIME_WAIT lasts
        try:
            probe.bind(("127.0.0.1", port))
            lingering = False
        except OSError:
            lingering = True
    assert lingering, "no TIME_WAIT left to test against"
    assert _port_or_free(port) == port
