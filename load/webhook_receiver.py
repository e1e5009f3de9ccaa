"""A webhook receiver for the benchmarks (load/bench_webhooks.py): a minimal HTTP/1.1
keep-alive server on 127.0.0.1 answering 204 to every POST, in a thread of its own,
recording each delivery's arrival time and body."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Receiver:
    """A minimal HTTP/1.1 keep-alive server answering 204 to every POST, in a thread,
    recording (arrival time, body)."""

    port: int = 0
    got: list[tuple[float, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    loop: asyncio.AbstractEventLoop | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                now = time.time()
                with self.lock:
                    self.got.append((now, body))
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        writer.close()

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            self.loop = asyncio.new_event_loop()

            async def serve() -> None:
                server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=512)
                self.port = server.sockets[0].getsockname()[1]
                ready.set()
                await server.serve_forever()

            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                self.loop.run_until_complete(serve())

        threading.Thread(target=run, daemon=True).start()
        ready.wait(10)

    def stop(self) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)

    def take(self) -> list[tuple[float, bytes]]:
        with self.lock:
            got, self.got = self.got, []
        return got
