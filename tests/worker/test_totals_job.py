"""`conectades worker` folds the item totals' slots (worker/totals.py, migration 0028):
a running worker brings an item written in many slots back to one row with the
same totals; with TOTALS_COMPACT_INTERVAL=0 it leaves them."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from tests.api.test_donations import seed_campaign
from tests.db.test_totals import SLOTS, TOTALS, _donate
from tests.factories import Factory
from tests.services import Database
from tests.worker.conftest import WorkerProcess, wait_until


def test_a_running_worker_folds_the_slots(db: Database, factory: Factory, tmp_path: Path) -> None:
    tenant = factory.tenant()
    campaign = seed_campaign(db, tenant, items=1)
    item = uuid.UUID(campaign["items"][0]["id"])
    off = WorkerProcess(db, tmp_path / "off.log", CONECTADES_TOTALS_COMPACT_INTERVAL="0")
    on = WorkerProcess(db, tmp_path / "on.log", CONECTADES_TOTALS_COMPACT_INTERVAL="0.2")
    off.start()
    try:
        wait_until(lambda: "worker: started" in (tmp_path / "off.log").read_text(), what="start")
        _donate(db, tenant, campaign, 120)
        before = db.fetchrow(TOTALS, item)
        time.sleep(1.0)  # five of the other worker's intervals
        assert len(db.fetchval(SLOTS, item)) > 8
        assert "totals" not in (tmp_path / "off.log").read_text()
    finally:
        assert off.stop() == 0
    on.start()
    try:
        wait_until(lambda: db.fetchval(SLOTS, item) == [0], timeout=20, what="folded")
        assert db.fetchrow(TOTALS, item) == before
        # Written again while it runs: folded again, counted on top.
        _donate(db, tenant, campaign, 40)
        wait_until(lambda: db.fetchval(SLOTS, item) == [0], timeout=20, what="folded again")
        after = db.fetchrow(TOTALS, item)
        assert after is not None and before is not None
        assert after["pending_count"] == before["pending_count"] + 10
        assert "totals" in (tmp_path / "on.log").read_text()
    finally:
        assert on.stop() == 0
