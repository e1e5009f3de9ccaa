"""Reconciliation catches every way a donation can go wrong: lost, duplicated,
unsent, changed, and totals that differ from the rows (real PostgreSQL, a
throwaway tenant per test)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from db import crypto
from load.reconcile import reconcile, run_contact
from tests.services import CONTACT_KEYS, Database

RING = crypto.Keyring.from_env(CONTACT_KEYS)


class Run:
    """A fake run's events beside real rows: what k6 would have recorded."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.id = f"t{uuid.uuid4().hex[:10]}"
        slug = f"load-{uuid.uuid4().hex[:10]}"
        tenant = db.fetchrow(
            "INSERT INTO tenant (slug, name) VALUES ($1, $2) RETURNING id", slug, slug
        )
        assert tenant is not None
        self.tenant_id, self.slug = tenant["id"], slug
        campaign = db.fetchrow(
            "INSERT INTO campaign (tenant_id, slug, title, status) "
            "VALUES ($1, 'c', 'Campanha', 'published') RETURNING id",
            self.tenant_id,
        )
        assert campaign is not None
        self.campaign_id = campaign["id"]
        item = db.fetchrow(
            "INSERT INTO campaign_item (tenant_id, campaign_id, name, unit, quantity_requested) "
            "VALUES ($1, $2, 'Arroz', 'kg', 100) RETURNING id",
            self.tenant_id,
            self.campaign_id,
        )
        assert item is not None
        self.item_id = item["id"]
        self.events: list[dict[str, str]] = []

    def row(self, key: str, quantity: int = 3, status: str = "pending") -> str:
        """A stored donation of this run (totals kept by the trigger), its contact and
        message sealed as the API stores them (db/crypto.py)."""
        did = uuid.uuid4()
        place = {"tenant_id": self.tenant_id, "row_id": did}
        contact = run_contact(self.id)
        row = self.db.fetchrow(
            "INSERT INTO donation (id, tenant_id, campaign_id, item_id, quantity, status, "
            "donor_contact_enc, donor_contact_hmac, message_enc) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            did,
            self.tenant_id,
            self.campaign_id,
            self.item_id,
            quantity,
            status,
            RING.seal(contact, column=crypto.CONTACT, **place),
            RING.contact_hash(contact),
            RING.seal(f"load-run {self.id} key {key}", column=crypto.MESSAGE, **place),
        )
        assert row is not None
        return str(row["id"])

    def sent(self, key: str) -> None:
        self.events.append({"ev": "sent", "key": key, "tenant": self.slug})

    def ack(self, key: str, donation_id: str, quantity: int = 3) -> None:
        self.events.append(
            {
                "ev": "ack",
                "key": key,
                "id": donation_id,
                "tenant": self.slug,
                "item": str(self.item_id),
                "qty": str(quantity),
                "state": "pending",
            }
        )

    def donation(self, key: str, quantity: int = 3) -> str:
        """Sent, stored, acknowledged: as it should be."""
        self.sent(key)
        did = self.row(key, quantity)
        self.ack(key, did, quantity)
        return did

    def check(self) -> Any:
        return asyncio.run(reconcile(self.db.admin_dsn, self.id, self.events, keyring=RING))


@pytest.fixture
def load_run(db: Database) -> Run:
    return Run(db)


def test_clean_run_reconciles(load_run: Run) -> None:
    load_run.donation("k1")
    load_run.donation("k2", quantity=7)
    load_run.sent("k3")  # sent, stored, answer lost: allowed
    load_run.row("k3")
    load_run.sent("k4")  # sent, never stored, never acknowledged: allowed
    result = load_run.check()
    assert result.ok, result.problems
    assert (result.sent, result.acknowledged, result.stored) == (4, 2, 3)
    assert result.unacknowledged_stored == 1
    assert result.items_checked == 1


def test_lost_donation_is_reported(load_run: Run) -> None:
    load_run.donation("k1")
    load_run.sent("k2")
    load_run.ack("k2", str(uuid.uuid4()))  # acknowledged, never stored
    result = load_run.check()
    assert [p.kind for p in result.problems] == ["lost"]
    assert "k2" in result.problems[0].detail


def test_donation_stored_twice_is_reported(load_run: Run) -> None:
    did = load_run.donation("k1")
    load_run.row("k1")  # a second row for the same key
    result = load_run.check()
    assert result.counts() == {"duplicated": 1}
    assert did in result.problems[0].detail


def test_key_acknowledged_with_two_ids_is_reported(load_run: Run) -> None:
    load_run.donation("k1")
    load_run.sent("k1")  # the retry answered with another donation
    load_run.ack("k1", load_run.row("k1-other"))
    result = load_run.check()
    assert "duplicated" in result.counts()


def test_donation_never_sent_is_reported(load_run: Run) -> None:
    load_run.donation("k1")
    stray = load_run.row("k-never-sent")
    result = load_run.check()
    assert result.counts() == {"unsent": 1}
    assert stray in result.problems[0].detail


def test_changed_donation_is_reported(load_run: Run) -> None:
    did = load_run.donation("k1", quantity=4)
    load_run.events.append({"ev": "status", "id": did, "state": "confirmed"})
    result = load_run.check()
    assert result.counts() == {"mismatch": 1}
    assert "status pending != last acknowledged confirmed" in result.problems[0].detail


def test_totals_mismatch_is_reported(load_run: Run, db: Database) -> None:
    load_run.donation("k1", quantity=5)
    load_run.donation("k2", quantity=6)
    db.execute(
        "UPDATE item_total_slot SET pending_quantity = pending_quantity + 1 "
        "WHERE item_id = $1 AND slot = (SELECT min(slot) FROM item_total_slot WHERE item_id = $1)",
        load_run.item_id,
    )
    result = load_run.check()
    assert result.counts() == {"totals": 1}
    assert "pending quantity: totals 12 != rows 11" in result.problems[0].detail


def test_unanswered_transition_that_committed_is_accepted(load_run: Run, db: Database) -> None:
    did = load_run.donation("k1")
    load_run.events.append({"ev": "status_sent", "id": did, "state": "confirmed"})
    db.execute("UPDATE donation SET status = 'confirmed' WHERE id = $1", uuid.UUID(did))
    assert load_run.check().ok
    db.execute("UPDATE donation SET status = 'cancelled' WHERE id = $1", uuid.UUID(did))
    assert load_run.check().counts() == {"mismatch": 1}
