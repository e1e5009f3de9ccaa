"""The per-worker memory cache: TTL, size bound, negative caching only when asked (in a
bounded table of its own), single load."""

from __future__ import annotations

import asyncio

from cache.memo import DEFAULT_TTL, Memo


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_default_ttl_bounds_revocation_to_five_seconds() -> None:
    assert DEFAULT_TTL == 5.0


def test_value_expires_after_ttl() -> None:
    clock = Clock()
    memo: Memo[str, str] = Memo(ttl=5, clock=clock)
    memo.put("cnd_live_abc", "row")
    clock.now += 4.9
    assert memo.get("cnd_live_abc") == "row"
    clock.now += 0.2
    assert memo.get("cnd_live_abc") is None
    assert len(memo) == 0


async def test_value_expires_in_real_time() -> None:
    memo: Memo[str, int] = Memo(ttl=0.2)
    memo.put("k", 1)
    assert memo.get("k") == 1
    await asyncio.sleep(0.3)
    assert memo.get("k") is None


def test_max_size_drops_expired_then_oldest() -> None:
    clock = Clock()
    memo: Memo[int, int] = Memo(ttl=10, max_size=3, clock=clock)
    memo.put(1, 1)
    clock.now += 6
    memo.put(2, 2)
    memo.put(3, 3)
    clock.now += 5  # 1 expired
    memo.put(4, 4)
    assert memo.get(1) is None and memo.get(2) == 2 and memo.get(4) == 4
    memo.put(5, 5)  # full, nothing expired: the oldest (2) goes
    assert len(memo) == 3
    assert memo.get(2) is None and memo.get(3) == 3 and memo.get(5) == 5


def test_discard_forgets_at_once() -> None:
    memo: Memo[str, str] = Memo()
    memo.put("k", "v")
    memo.discard("k")
    assert memo.get("k") is None


async def test_get_or_load_remembers_until_expiry() -> None:
    clock = Clock()
    memo: Memo[str, str] = Memo(ttl=5, clock=clock)
    loads = 0

    async def load() -> str:
        nonlocal loads
        loads += 1
        return f"v{loads}"

    assert await memo.get_or_load("k", load) == "v1"
    assert await memo.get_or_load("k", load) == "v1"
    clock.now += 5
    assert await memo.get_or_load("k", load) == "v2"
    assert loads == 2


async def test_missing_values_are_not_remembered() -> None:
    memo: Memo[str, str] = Memo()
    answers = [None, "issued"]

    async def load() -> str | None:
        return answers.pop(0)

    assert await memo.get_or_load("new-key", load) is None
    assert await memo.get_or_load("new-key", load) == "issued"


async def test_concurrent_misses_share_one_load() -> None:
    memo: Memo[str, str] = Memo()
    loads = 0

    async def load() -> str:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.05)
        return "row"

    rows = await asyncio.gather(*(memo.get_or_load("k", load) for _ in range(10)))
    assert rows == ["row"] * 10 and loads == 1


async def test_misses_are_remembered_with_miss_ttl_until_it_passes() -> None:
    clock = Clock()
    memo: Memo[str, str] = Memo(miss_ttl=5, clock=clock)
    loads = 0

    async def load() -> str | None:
        nonlocal loads
        loads += 1
        return None

    for _ in range(5):
        assert await memo.get_or_load("cnd_live_unknown", load) is None
    assert loads == 1
    clock.now += 5
    assert await memo.get_or_load("cnd_live_unknown", load) is None
    assert loads == 2
    memo.discard("cnd_live_unknown")
    assert await memo.get_or_load("cnd_live_unknown", load) is None
    assert loads == 3


async def test_a_flood_of_misses_never_pushes_known_entries_out() -> None:
    memo: Memo[str, str] = Memo(miss_ttl=5, max_size=10)
    for n in range(10):
        memo.put(f"known-{n}", "row")

    async def nothing() -> str | None:
        return None

    for n in range(1000):
        await memo.get_or_load(f"random-{n}", nothing)
    assert all(memo.get(f"known-{n}") == "row" for n in range(10))
    assert len(memo._misses) == 10  # bounded: the newest misses are the ones kept
    assert memo.missed("random-999") and not memo.missed("random-0")
