"""A bound on the time a client may take to send a request: headers and body.

Sanic's REQUEST_TIMEOUT does not bound it. Its clock (`HttpProtocol._time`) restarts
on every chunk received (`data_received`), so it only limits the silence between
two chunks; and once the headers are in, the body is read in the HANDLER stage,
where RESPONSE_TIMEOUT applies instead, restarted by every chunk too. A client
that sends one byte every 2 s keeps a request open for as long as it likes, and
enough of them hold every worker's connections. The edge bounds this
(`client_header_timeout`, `client_body_timeout`), but not every client comes
through the edge (inside a cluster, a misrouted service, a probe).

`BODY_TIMEOUT` seconds (default 10, as the edge's `client_body_timeout`; 0 turns
it off) count from the request's first byte. Past them, a request still waiting
for bytes is answered 408 (problem+json) and the connection closed; when the
answer has already gone (a 404 whose body is still being drained), the
connection is just closed. The time between requests on a keep-alive connection
does not count (KEEP_ALIVE_TIMEOUT bounds it), nor does the handler's time.

Sanic's command line has no option for the protocol class, so, like the backlog
(api/listen.py), it is set by a `main_process_start` listener. That covers the
multi-worker mode (`--workers N`, what `./start.sh`, the image and the manifests
run); `--single-process` keeps Sanic's protocol, and the worker says so.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from sanic import Sanic
from sanic.exceptions import RequestTimeout
from sanic.http import Http, Stage
from sanic.server.protocols.http_protocol import HttpProtocol

log = logging.getLogger("conectades.body_timeout")


class _Http(Http):
    __slots__ = ()

    async def http1_request_header(self) -> None:
        # Sanic calls this as a request starts: its first bytes are in the buffer
        # (also for a request pipelined behind the previous one).
        protocol = cast(ReceiveTimeoutProtocol, self.protocol)  # the only user of _Http
        protocol.request_started = protocol.loop.time()
        await super().http1_request_header()  # type: ignore[no-untyped-call]


class ReceiveTimeoutProtocol(HttpProtocol):
    """Sanic's HTTP/1.1 protocol with a deadline on each wait for the client's bytes."""

    HTTP_CLASS = _Http
    __slots__ = ("receive_timeout", "request_started")

    def _setup(self) -> None:
        super()._setup()  # type: ignore[no-untyped-call]
        self.receive_timeout = float(self.app.config.BODY_TIMEOUT)
        self.request_started: float | None = None

    def _deadline(self) -> float | None:
        http: Http | None = self._http
        if http is None or self.request_started is None or self.receive_timeout <= 0:
            return None
        if http.stage is Stage.IDLE and not http.request_body:
            return None  # waiting for the next request on a keep-alive connection
        return self.request_started + self.receive_timeout

    async def receive_more(self) -> None:
        deadline = self._deadline()
        if deadline is None:
            await super().receive_more()  # type: ignore[no-untyped-call]
            return
        try:
            async with asyncio.timeout_at(deadline):
                await super().receive_more()  # type: ignore[no-untyped-call]
        except TimeoutError:
            # As Sanic's own timeouts do (HttpProtocol.check_timeouts): the connection
            # task ends as cancelled, carrying the error to answer while an answer can
            # still be sent; Sanic then closes the connection.
            http: Http = self._http
            if http.stage in (Stage.REQUEST, Stage.HANDLER) and http.response is None:
                http.exception = RequestTimeout(
                    f"The request was not received within {self.receive_timeout:g} s."
                )
            raise asyncio.CancelledError from None


def _use_protocol(app: Sanic[Any, Any]) -> None:
    for server_info in app.state.server_info:
        if server_info.settings.get("protocol") in (None, HttpProtocol):
            server_info.settings["protocol"] = ReceiveTimeoutProtocol


def _report(app: Sanic[Any, Any]) -> None:
    protocols = {info.settings.get("protocol") for info in app.state.server_info}
    if app.config.BODY_TIMEOUT > 0 and ReceiveTimeoutProtocol not in protocols:
        log.warning(
            "BODY_TIMEOUT is not applied (Sanic's protocol in use: %s; --single-process?)",
            ", ".join(sorted(getattr(p, "__name__", str(p)) for p in protocols)),
        )


def setup_body_timeout(app: Sanic[Any, Any]) -> None:
    app.register_listener(_use_protocol, "main_process_start")
    app.register_listener(_report, "before_server_start")
