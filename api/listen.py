"""The listening socket's accept queue.

Sanic listens with a backlog of 100 and its command line has no option for it. In
the 1000-user load run the edge opened new upstream connections in bursts while the
workers were busy; the queue overflowed (`nstat`: TcpExtListenOverflows), the kernel
dropped the SYNs and the edge gave up after its 2 s connect timeout. `BACKLOG`
(default 2048; the kernel caps it at `net.core.somaxconn`) is applied by a
`main_process_start` listener, which in the multi-worker mode (`--workers N`, what
`./start.sh`, the image and the manifests run) runs before the main process binds
the shared socket. (`--single-process` binds before any listener and keeps 100.)
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from api.types import App


async def _apply_backlog(app: App, _loop: asyncio.AbstractEventLoop) -> None:
    backlog = int(app.config.BACKLOG)
    for server_info in app.state.server_info:
        server_info.settings["backlog"] = backlog


def setup_listen_backlog(app: App) -> None:
    app.register_listener(_apply_backlog, "main_process_start")
