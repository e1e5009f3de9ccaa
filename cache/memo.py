"""A tiny per-worker memory cache with a short TTL, for hot tiny lookups.

Used for API-key rows by prefix and tenants by slug. Nothing invalidates it across
workers: the TTL is the bound, so revoking a key or suspending a tenant takes
effect on every worker within `ttl` seconds (5 by default). Misses (None) are
remembered only with `miss_ttl` (API keys: a random, unknown key asked again costs
no query), in a table of their own so that a flood of unknown keys cannot push the
known ones out; a key issued a moment ago has a new random prefix, so it is never
a remembered miss. Concurrent misses of one key share one load (`SingleFlight`,
also used by the response cache, cache/response.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

DEFAULT_TTL = 5.0


class Memo(Generic[K, V]):
    def __init__(
        self,
        ttl: float = DEFAULT_TTL,
        max_size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        miss_ttl: float = 0.0,
    ) -> None:
        self.ttl = ttl
        self.max_size = max(1, max_size)
        self.clock = clock
        self.miss_ttl = miss_ttl
        self._entries: dict[K, tuple[float, V]] = {}
        self._misses: dict[K, float] = {}  # key -> when the remembered miss expires
        self._flights: SingleFlight[K, V | None] = SingleFlight()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self.clock() >= expires:
            del self._entries[key]
            return None
        return value

    def put(self, key: K, value: V) -> None:
        if key not in self._entries and len(self._entries) >= self.max_size:
            self._make_room()
        self._entries[key] = (self.clock() + self.ttl, value)

    def discard(self, key: K) -> None:
        """Forget a key in THIS worker (e.g. right after revoking it here)."""
        self._entries.pop(key, None)
        self._misses.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
        self._misses.clear()

    def missed(self, key: K) -> bool:
        """Whether `key` is a remembered miss (only with `miss_ttl`)."""
        expires = self._misses.get(key)
        if expires is None:
            return False
        if self.clock() < expires:
            return True
        del self._misses[key]
        return False

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V | None]]) -> V | None:
        """The remembered value, or `load()`'s (remembered; None only with `miss_ttl`)."""
        value = self.get(key)
        if value is not None:
            return value
        if self.missed(key):
            return None
        value = await self._flights.run(key, load)
        if value is not None:
            self.put(key, value)
        elif self.miss_ttl > 0:
            self._remember_miss(key)
        return value

    def _remember_miss(self, key: K) -> None:
        now = self.clock()
        if key not in self._misses and len(self._misses) >= self.max_size:
            for old in [k for k, expires in self._misses.items() if expires <= now]:
                del self._misses[old]
            while len(self._misses) >= self.max_size:
                del self._misses[next(iter(self._misses))]
        self._misses[key] = now + self.miss_ttl

    def _make_room(self) -> None:
        now = self.clock()
        for key in [k for k, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[key]
        while len(self._entries) >= self.max_size:
            # Insertion order: the oldest entry goes first.
            del self._entries[next(iter(self._entries))]


class SingleFlight(Generic[K, V]):
    """Concurrent calls for one key in this worker share a single run of `fn`.

    Waiters get the same result or the same exception; if the running call is
    cancelled (its client went away), one waiter runs `fn` itself instead."""

    def __init__(self) -> None:
        self._flights: dict[K, asyncio.Future[V]] = {}

    def __contains__(self, key: K) -> bool:
        return key in self._flights

    async def run(self, key: K, fn: Callable[[], Awaitable[V]]) -> V:
        while (pending := self._flights.get(key)) is not None:
            await asyncio.wait([pending])
            if not pending.cancelled():
                return pending.result()
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._flights[key] = future
        try:
            value = await fn()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: no warning when nobody waited
            raise
        finally:
            if self._flights.get(key) is future:
                del self._flights[key]
        future.set_result(value)
        return value
