"""The worker's start-up objects leave the garbage collector's generations (api/gc_tuning.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from sanic import Sanic

from api.gc_tuning import GEN0_THRESHOLD, _freeze_startup_objects


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


async def test_after_start_the_startup_objects_are_frozen(restore_gc: None) -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    await _freeze_startup_objects(Sanic("gc-test"))
    assert gc.get_freeze_count() > 10_000  # modules, routers, …: not scanned again
    assert gc.get_threshold()[0] == GEN0_THRESHOLD
