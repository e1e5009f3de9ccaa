"""Folding the item totals' slots back into one row (migration 0028).

Donations write one of an item's 16 slot rows at random, so that concurrent writers
do not queue on one row; every read of a total sums the item's rows. Every
`TOTALS_COMPACT_INTERVAL` seconds (checked at each turn of the worker's loop) this
job folds the slots written since into slot 0, `TOTALS_COMPACT_BATCH` items per
statement, at once again while a batch comes back full. The statement never waits
on a donation for long (it skips the slots being written and gives up a round after
100 ms on a locked slot 0) and keeps every total exact; several workers take turns
(an advisory lock). `TOTALS_COMPACT_INTERVAL=0` turns it off."""

from __future__ import annotations

import time

import asyncpg

from db.queries.items import compact_totals
from worker.config import WorkerConfig


class TotalsJob:
    def __init__(self, pool: asyncpg.Pool, cfg: WorkerConfig) -> None:
        self.pool = pool
        self.interval = cfg.TOTALS_COMPACT_INTERVAL
        self.batch = cfg.TOTALS_COMPACT_BATCH
        self.next_round = 0.0

    async def drain(self) -> int:
        if time.monotonic() < self.next_round:
            return 0
        async with self.pool.acquire() as conn:
            folded = await compact_totals(conn, max_items=self.batch)
        if folded < self.batch:
            self.next_round = time.monotonic() + self.interval
            return 0
        return folded  # a full batch: more are waiting, go again at once
