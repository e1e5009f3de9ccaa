"""Exact item totals under concurrency (issue 2, point 8).

Hundreds of concurrent writers on ONE item, through the real HTTP API: creates in
every initial status mixed with confirm/deliver/cancel transitions, many racing
on the same donation. Afterwards the totals the trigger kept in the counter slots
must equal the sums over the donation rows, every acknowledged donation must
exist exactly once, and the writes must have spread over several slots.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter, defaultdict
from typing import Any

import asyncpg
import httpx

from tests.api.test_donations import seed_campaign
from tests.factories import Factory, TenantCtx
from tests.services import ApiServer, Database

CONCURRENCY = 50  # in-flight requests; the API's pool has 20 connections
INITIAL = 160  # phase 1: creates
MIXED_CREATES = 80  # phase 2: creates racing with…
TRANSITIONS = 200  # …transitions on phase-1 donations
ACTIONS = {"confirm": "confirmed", "deliver": "delivered", "cancel": "cancelled"}


class Writers:
    def __init__(self, ac: httpx.AsyncClient, tenant: TenantCtx, campaign: dict[str, Any]):
        self.ac = ac
        self.tenant = tenant
        self.campaign = campaign
        self.gate = asyncio.Semaphore(CONCURRENCY)
        self.created: list[dict[str, Any]] = []
        self.create_codes: Counter[int] = Counter()
        # (donation id, action) → status codes
        self.transitions: dict[tuple[str, str], list[int]] = defaultdict(list)

    async def create(self, quantity: int, status: str) -> None:
        body = {
            "item_id": self.campaign["items"][0]["id"],
            "quantity": quantity,
            "donor_name": "Concurrent",
            "status": status,
        }
        async with self.gate:
            r = await self.ac.post(
                f"/api/v1/campaigns/{self.campaign['id']}/donations",
                json=body,
                headers=self.tenant.headers,
            )
        self.create_codes[r.status_code] += 1
        if r.status_code == 201:
            self.created.append(r.json())

    async def transition(self, donation_id: str, action: str) -> None:
        async with self.gate:
            r = await self.ac.post(
                f"/api/v1/donations/{donation_id}/{action}", headers=self.tenant.headers
            )
        self.transitions[(donation_id, action)].append(r.status_code)
        if r.status_code == 200:
            assert r.json()["status"] == ACTIONS[action]


async def test_item_totals_stay_exact_under_hundreds_of_concurrent_writers(
    api: ApiServer, db: Database, factory: Factory
) -> None:
    rng = random.Random(20261128)  # a reproducible mix
    tenant = factory.tenant()
    campaign = seed_campaign(db, tenant, items=1)
    item_id = uuid.UUID(campaign["items"][0]["id"])
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=api.url, timeout=60, limits=limits) as ac:
        w = Writers(ac, tenant, campaign)

        # Phase 1: concurrent creates, mostly pending, some already confirmed/delivered.
        statuses = rng.choices(["pending", "confirmed", "delivered"], [6, 3, 1], k=INITIAL)
        await asyncio.gather(*(w.create(rng.randint(1, 1000), s) for s in statuses))
        assert set(w.create_codes) <= {201, 503}, w.create_codes
        first = list(w.created)
        delivered = [d for d in first if d["status"] == "delivered"]
        assert delivered, "the mix needs some donations created as delivered"

        # Phase 2: creates racing with transitions, several on the same donation.
        jobs = [w.create(rng.randint(1, 1000), "pending") for _ in range(MIXED_CREATES)]
        for _ in range(TRANSITIONS):
            d = rng.choice(first)
            jobs.append(w.transition(d["id"], rng.choice(list(ACTIONS))))
        # Any action on a delivered donation must be refused, whatever the timing.
        jobs += [w.transition(d["id"], "cancel") for d in delivered]
        rng.shuffle(jobs)
        await asyncio.gather(*jobs)

    writers = INITIAL + MIXED_CREATES + TRANSITIONS + len(delivered)
    assert writers >= 200
    assert set(w.create_codes) <= {201, 503}, w.create_codes
    codes = Counter(c for cs in w.transitions.values() for c in cs)
    assert set(codes) <= {200, 409, 503}, codes
    assert codes[200] > 0 and codes[409] > 0
    for d in delivered:
        assert w.transitions[(d["id"], "cancel")] == [409] * len(w.transitions[(d["id"], "cancel")])

    rows = db.fetch(
        "SELECT id, quantity, status, confirmed_at, delivered_at, cancelled_at "
        "FROM donation WHERE item_id = $1",
        item_id,
    )
    by_id = {str(r["id"]): r for r in rows}

    # Every acknowledged donation exists exactly once, and nothing unacknowledged does.
    acked = [d["id"] for d in w.created]
    assert len(acked) == len(set(acked)) == w.create_codes[201]
    assert set(acked) == set(by_id)
    assert len(rows) == len(acked)

    # Each donation's successful transitions form one legal path to its final status.
    for d in first:
        row = by_id[d["id"]]
        won = {a for a in ACTIONS if 200 in w.transitions.get((d["id"], a), [])}
        for action in ACTIONS:
            assert w.transitions.get((d["id"], action), []).count(200) <= 1
        if "cancel" in won:
            assert row["status"] == "cancelled" and "deliver" not in won
        elif "deliver" in won:
            assert row["status"] == "delivered"
        elif "confirm" in won:
            assert row["status"] == "confirmed"
        else:
            assert row["status"] == d["status"]
        assert (row["confirmed_at"] is not None) == (
            row["status"] in ("confirmed", "delivered")
            or (row["status"] == "cancelled" and (d["status"] == "confirmed" or "confirm" in won))
        )
        assert (row["delivered_at"] is not None) == (row["status"] == "delivered")
        assert (row["cancelled_at"] is not None) == (row["status"] == "cancelled")

    # The slot totals equal the sums over the rows, per status, quantities and counts.
    expected: dict[str, int] = {}
    for status in ("pending", "confirmed", "delivered", "cancelled"):
        mine = [r["quantity"] for r in rows if r["status"] == status]
        expected[f"{status}_quantity"] = sum(mine)
        expected[f"{status}_count"] = len(mine)
    totals = db.fetchrow("SELECT * FROM item_totals WHERE item_id = $1", item_id)
    assert totals is not None
    assert {k: totals[k] for k in expected} == expected
    counts = sum(expected[f"{s}_count"] for s in ("pending", "confirmed", "delivered", "cancelled"))
    assert counts == len(rows)
    in_sql = db.fetchrow(
        "SELECT count(*) FILTER (WHERE status = 'pending') AS pending_count, "
        "coalesce(sum(quantity) FILTER (WHERE status IN ('confirmed', 'delivered')), 0) "
        "AS contributed FROM donation WHERE item_id = $1",
        item_id,
    )
    assert in_sql is not None
    assert in_sql["pending_count"] == totals["pending_count"]
    assert in_sql["contributed"] == totals["confirmed_quantity"] + totals["delivered_quantity"]

    # No single hot row: the writes spread over several of the 16 slots (all 16
    # rows exist from the item's creation, migration 0010; count those written).
    slots = db.fetchval(
        "SELECT count(*) FROM item_total_slot WHERE item_id = $1 AND (pending_count, "
        "confirmed_count, delivered_count, cancelled_count) <> (0, 0, 0, 0)",
        item_id,
    )
    assert slots > 1


TOTALS = (
    "SELECT pending_quantity, pending_count, confirmed_quantity, confirmed_count, "
    "delivered_quantity, delivered_count, cancelled_quantity, cancelled_count "
    "FROM item_totals WHERE item_id = $1"
)
SLOTS = "SELECT array_agg(slot ORDER BY slot) FROM item_total_slot WHERE item_id = $1"
COMPACT = "SELECT compact_item_totals($1)"


def _donate(db: Database, tenant: TenantCtx, campaign: dict[str, Any], n: int) -> None:
    for k in range(n):
        db.execute(
            "INSERT INTO donation (tenant_id, campaign_id, item_id, quantity, donor_name, "
            "status) VALUES ($1, $2, $3, $4, 'Slots', $5)",
            tenant.id,
            uuid.UUID(campaign["id"]),
            uuid.UUID(campaign["items"][0]["id"]),
            1 + k % 7,
            ("pending", "confirmed", "delivered", "cancelled")[k % 4],
        )


def _compact(db: Database, max_items: int = 100_000) -> int:
    """As the API role (the worker's), like worker/totals.py."""

    async def run() -> int:
        conn = await asyncpg.connect(db.api_dsn)
        try:
            folded: int = await conn.fetchval(COMPACT, max_items)
            return folded
        finally:
            await conn.close()

    return db.run(run())


def test_folding_an_items_slots_keeps_its_totals(db: Database, factory: Factory) -> None:
    """Migration 0028: a new item has slot 0 only; donations spread over random
    slots; a round of compact_item_totals folds them back into slot 0 with every
    total unchanged, and a round with nothing to fold changes nothing."""
    tenant = factory.tenant()
    campaign = seed_campaign(db, tenant, items=2)
    item = uuid.UUID(campaign["items"][0]["id"])
    other = uuid.UUID(campaign["items"][1]["id"])
    assert db.fetchval(SLOTS, item) == [0] and db.fetchval(SLOTS, other) == [0]
    _donate(db, tenant, campaign, 200)
    spread = db.fetchval(SLOTS, item)
    assert len(spread) > 8  # 200 draws of 16 slots
    before = db.fetchrow(TOTALS, item)
    assert before is not None and before["pending_count"] == 50
    _compact(db)
    assert db.fetchval(SLOTS, item) == [0]
    assert db.fetchrow(TOTALS, item) == before
    assert _compact(db) == 0
    assert db.fetchrow(TOTALS, item) == before
    # The next donations spread again and count on top.
    _donate(db, tenant, campaign, 40)
    after = db.fetchrow(TOTALS, item)
    assert after is not None and after["pending_count"] == 60
    _compact(db)
    assert db.fetchval(SLOTS, item) == [0] and db.fetchrow(TOTALS, item) == after


def test_folding_never_waits_long_for_a_writer(db: Database, factory: Factory) -> None:
    """A transaction that holds slot 0 (a donation's, not yet committed): the round
    gives up after its 100 ms lock_timeout, changes nothing and leaves the writer
    alone; the next round, after the writer's commit, folds. Slots being written are
    skipped (SKIP LOCKED), not waited for."""
    tenant = factory.tenant()
    campaign = seed_campaign(db, tenant, items=1)
    item = uuid.UUID(campaign["items"][0]["id"])
    _donate(db, tenant, campaign, 60)
    before = db.fetchrow(TOTALS, item)
    spread = db.fetchval(SLOTS, item)
    busy = spread[-1]
    assert busy != 0

    async def scenario() -> tuple[float, list[int], float, list[int]]:
        writer = await asyncpg.connect(db.admin_dsn)
        compactor = await asyncpg.connect(db.api_dsn)
        try:
            tx = writer.transaction()
            await tx.start()
            await writer.execute(
                "UPDATE item_total_slot SET pending_quantity = pending_quantity + 1 "
                "WHERE item_id = $1 AND slot = 0",
                item,
            )
            t0 = time.monotonic()
            folded = await compactor.fetchval(COMPACT, 100_000)
            held_0 = time.monotonic() - t0
            assert folded == 0
            slots_0: list[int] = await writer.fetchval(SLOTS, item)
            await writer.execute(
                "UPDATE item_total_slot SET pending_quantity = pending_quantity - 1 "
                "WHERE item_id = $1 AND slot = 0",
                item,
            )
            # Now a slot other than 0 held: the round folds the rest around it.
            await writer.execute(
                "UPDATE item_total_slot SET pending_quantity = pending_quantity + 0 "
                "WHERE item_id = $1 AND slot = $2",
                item,
                busy,
            )
            await tx.commit()
            tx = writer.transaction()
            await tx.start()
            await writer.execute(
                "UPDATE item_total_slot SET pending_quantity = pending_quantity + 0 "
                "WHERE item_id = $1 AND slot = $2",
                item,
                busy,
            )
            t0 = time.monotonic()
            await compactor.fetchval(COMPACT, 100_000)
            held_busy = time.monotonic() - t0
            slots_busy: list[int] = await writer.fetchval(SLOTS, item)
            await tx.commit()
            return held_0, slots_0, held_busy, slots_busy
        finally:
            await writer.close()
            await compactor.close()

    held_0, slots_0, held_busy, slots_busy = db.run(scenario())
    assert held_0 < 1.0  # lock_timeout is 100 ms; deadlock_timeout (1 s) never reached
    assert slots_0 == spread  # nothing happened
    assert held_busy < 1.0
    assert slots_busy == [0, busy]
    assert db.fetchrow(TOTALS, item) == before
    _compact(db)
    assert db.fetchval(SLOTS, item) == [0] and db.fetchrow(TOTALS, item) == before


async def test_totals_stay_exact_while_folded_under_concurrent_writers(
    api: ApiServer, db: Database, factory: Factory
) -> None:
    """Concurrent creates and transitions on one item through the HTTP API while
    rounds of compact_item_totals run back to back: the totals equal the sums over
    the donation rows afterwards, no write failed, and the rounds folded something
    while the writers ran."""
    rng = random.Random(20261204)
    tenant = factory.tenant()
    campaign = seed_campaign(db, tenant, items=1)
    item_id = uuid.UUID(campaign["items"][0]["id"])
    rounds: list[int] = []
    done = asyncio.Event()

    async def fold_until_done() -> None:
        conn = await asyncpg.connect(db.api_dsn)
        try:
            while not done.is_set():
                rounds.append(await conn.fetchval(COMPACT, 100_000))
                await asyncio.sleep(0.005)
        finally:
            await conn.close()

    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    folding = asyncio.create_task(fold_until_done())
    async with httpx.AsyncClient(base_url=api.url, timeout=60, limits=limits) as ac:
        w = Writers(ac, tenant, campaign)
        statuses = rng.choices(["pending", "confirmed", "delivered"], [6, 3, 1], k=120)
        await asyncio.gather(*(w.create(rng.randint(1, 1000), s) for s in statuses))
        first = list(w.created)
        jobs = [w.create(rng.randint(1, 1000), "pending") for _ in range(60)]
        jobs += [
            w.transition(rng.choice(first)["id"], rng.choice(list(ACTIONS))) for _ in range(150)
        ]
        rng.shuffle(jobs)
        await asyncio.gather(*jobs)
    done.set()
    await folding
    assert set(w.create_codes) <= {201, 503}, w.create_codes  # 503: the pool was busy
    codes = Counter(c for cs in w.transitions.values() for c in cs)
    assert set(codes) <= {200, 409, 503}, codes
    assert sum(1 for n in rounds if n > 0) >= 3, rounds  # the rounds did fold meanwhile

    rows = db.fetch("SELECT quantity, status FROM donation WHERE item_id = $1", item_id)
    assert len(rows) == len(w.created)
    totals = db.fetchrow(TOTALS, item_id)
    assert totals is not None
    for status in ("pending", "confirmed", "delivered", "cancelled"):
        mine = [r["quantity"] for r in rows if r["status"] == status]
        assert totals[f"{status}_quantity"] == sum(mine), status
        assert totals[f"{status}_count"] == len(mine), status
