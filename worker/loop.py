"""The worker's loop: one process runs several kinds of background job.

A job is a `Job(name, drain, channels, close)`:

- `drain()` handles one batch of due work and returns how many items it took; the
  loop calls every job's drain in turn, again at once while any took something,
  and otherwise sleeps until a NOTIFY on one of the jobs' `channels`, a `wake()`
  from a job, or `poll_interval` seconds (work that came due by time).
- `close()` runs on SIGTERM after the loop stopped claiming (let work in flight end).

To add a job (e.g. email): write a class with `async def drain(self) -> int` (claim
with FOR UPDATE SKIP LOCKED or a lease, so a killed worker loses nothing), build it
in `worker/main.py: jobs()` with the shared pool and `wake`, and return
`Job("email", job.drain, close=job.close)` beside the webhook one (no channels: polled).
A drain that raises is logged and retried at the next turn; it never stops the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg

log = logging.getLogger("conectades.worker")


async def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Job:
    name: str
    drain: Callable[[], Awaitable[int]]
    channels: tuple[str, ...] = ()
    close: Callable[[], Awaitable[None]] = _nothing


class Loop:
    def __init__(self, jobs: Sequence[Job], *, listen_dsn: str | None, poll_interval: float):
        self.jobs = list(jobs)
        self.listen_dsn = listen_dsn
        self.poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen(), name="worker-listen")
        try:
            while not self._stop.is_set():
                self._wake.clear()
                took = 0
                for job in self.jobs:
                    if self._stop.is_set():
                        break
                    try:
                        took += await job.drain()
                    except Exception:
                        log.exception("job %s: drain failed; retrying at the next turn", job.name)
                if took or self._stop.is_set():
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        for job in self.jobs:
            try:
                await job.close()
            except Exception:
                log.exception("job %s: close failed", job.name)

    async def _listen(self) -> None:
        """LISTEN on the jobs' channels on a connection of its own (reconnecting);
        without one the loop still polls. Not through PgBouncer in transaction mode."""
        channels = sorted({c for job in self.jobs for c in job.channels})
        if not channels or not self.listen_dsn:
            return
        delay = 0.5
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.listen_dsn, timeout=10)
                for channel in channels:
                    await conn.add_listener(channel, lambda *_: self._wake.set())
                delay = 0.5
                self._wake.set()  # anything notified while we were not listening
                while True:  # a dead connection shows up at the next round trip
                    await asyncio.sleep(max(self.poll_interval, 5.0))
                    await conn.execute("SELECT 1")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("listen: %s; polling every %.1f s meanwhile", exc, self.poll_interval)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
