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
import uuid
from collections import Counter, defaultdict
from typing import Any

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


# The heap page of each of an item's slot rows (ctid = (page, line)).
SLOT_PAGES = (
    "SELECT count(*), count(DISTINCT (ctid::text::point)[0]) "
    "FROM item_total_slot WHERE item_id = $1"
)


def test_an_items_slots_stay_together_on_one_page(db: Database, factory: Factory) -> None:
    """Migration 0010: a new item gets its 16 slot rows at once, side by side, and
    the donations' updates keep them on their page (fillfactor 50, HOT updates).
    Every read of an item's totals visits its slots' pages: created one by one by
    the first donation that drew each slot, an item's slots lay on 10-15 pages.

    Side by side as far as the table's free space allows: PostgreSQL puts a new row
    on a page its free-space map offers, and the rows of deleted items (other tests
    delete theirs) leave pages with room for a row or two, which once spread a new
    item's slots over 5 pages in a clean-clone run. So the table is compacted first
    (VACUUM FULL keeps fillfactor 50; no page then has room for a new row) and the
    new slots go to fresh pages, as they do in a table whose items are not deleted."""
    db.execute("VACUUM FULL item_total_slot")
    tenant = factory.tenant()
    campaign = seed_campaign(db, tenant, items=3)
    item_ids = [uuid.UUID(i["id"]) for i in campaign["items"]]
    for item_id in item_ids:
        rows, pages = db.fetchrow(SLOT_PAGES, item_id)
        assert rows == 16
        assert pages <= 2  # 16 rows may start near the end of a page
    # 400 donations to the first item, one transaction each, in every status.
    for n in range(400):
        db.execute(
            "INSERT INTO donation (tenant_id, campaign_id, item_id, quantity, donor_name, "
            "status) VALUES ($1, $2, $3, $4, 'Slots', $5)",
            tenant.id,
            uuid.UUID(campaign["id"]),
            item_ids[0],
            1 + n % 7,
            ("pending", "confirmed", "delivered")[n % 3],
        )
    rows, pages = db.fetchrow(SLOT_PAGES, item_ids[0])
    assert rows == 16
    assert pages <= 2
    totals = db.fetchrow("SELECT * FROM item_totals WHERE item_id = $1", item_ids[0])
    assert totals is not None
    assert totals["pending_count"] + totals["confirmed_count"] + totals["delivered_count"] == 400
