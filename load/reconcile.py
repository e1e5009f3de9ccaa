"""Reconcile a load run's donations against the database (as the owner: no RLS).

k6 records, for every donation request, a `sent` event (its Idempotency-Key,
before the request), an `ack` event for every 201 (key, id, tenant, item,
quantity, state) and a `status` event (id, state) for every acknowledged
transition, after a `status_sent` event (id, state) before sending it. (The
field is `state`, not `status`: the events once travelled as k6 metadata, which
drops names like its system tags.) Every donation the run writes carries
`load-run <run id> key <key>` in its message and the run's donor contact
(`run_contact`). Both are encrypted at rest (db/crypto.py), so the run's rows are
found by that contact's keyed hash and their keys read from the decrypted
messages, with the API's keys. Then:

- lost: an acknowledged id that is not in the database;
- duplicated: one key acknowledged with two ids, or stored in two rows;
- unsent: a row of this run whose key was never sent;
- mismatch: a stored row that differs from its acknowledgement (tenant, item,
  quantity, or status: the last acknowledged one, or one sent but unanswered);
- totals: an item (every item the run touched, or all items) whose `item_totals`
  differ from the sums over its donation rows, per status.

A row whose request was sent but never acknowledged (a timeout, a dropped
connection) is allowed: it was sent, and a client would retry it with its key.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg

from db.crypto import Keyring, UnreadableValue

_KEY_IN_MESSAGE = re.compile(r"^load-run (\S+) key (\S+)$")
STATUSES = ("pending", "confirmed", "delivered", "cancelled")

SELECT_RUN_ROWS = """
SELECT d.id, d.tenant_id, d.item_id, d.quantity, d.status, d.message, d.message_enc,
       t.slug AS tenant
FROM donation d JOIN tenant t ON t.id = d.tenant_id
WHERE d.donor_contact_hmac = $1 OR d.id = ANY($2::uuid[])
"""

# Per item: the totals the trigger kept, and the sums recomputed from the rows.
_SUMS = ",\n".join(
    f"coalesce(sum(quantity) FILTER (WHERE status = '{s}'), 0)::bigint AS {s}_quantity, "
    f"count(*) FILTER (WHERE status = '{s}')::bigint AS {s}_count"
    for s in STATUSES
)
_TOTALS = ", ".join(
    f"coalesce(t.{s}_{m}, 0) AS total_{s}_{m}, coalesce(r.{s}_{m}, 0) AS rows_{s}_{m}"
    for s in STATUSES
    for m in ("quantity", "count")
)
SELECT_TOTALS = f"""
WITH items AS (
    SELECT id FROM campaign_item WHERE $1::uuid[] IS NULL OR id = ANY($1::uuid[])
), rows AS (
    SELECT item_id, {_SUMS}
    FROM donation WHERE item_id IN (SELECT id FROM items) GROUP BY item_id
)
SELECT i.id AS item_id, {_TOTALS}
FROM items i
LEFT JOIN item_totals t ON t.item_id = i.id
LEFT JOIN rows r ON r.item_id = i.id
"""


@dataclass
class Problem:
    kind: str  # lost | duplicated | unsent | mismatch | totals
    detail: str


@dataclass
class Reconciliation:
    run_id: str
    sent: int = 0  # distinct keys sent
    acknowledged: int = 0  # distinct ids acknowledged
    stored: int = 0  # rows of this run in the database
    unacknowledged_stored: int = 0  # sent, stored, never acknowledged (allowed)
    items_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for p in self.problems:
            out[p.kind] += 1
        return dict(out)

    def as_dict(self, limit: int = 200) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        d["problem_counts"] = self.counts()
        d["problems"] = [asdict(p) for p in self.problems[:limit]]
        return d


def read_events(path: Path) -> list[dict[str, str]]:
    """donations.jsonl, as the report writes it from k6's output."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_contact(run_id: str) -> str:
    """The donor contact of every donation a run writes (load/scenarios/lib.js)."""
    return f"load-run-{run_id}@example.org"


async def run_rows(
    conn: asyncpg.Connection, keyring: Keyring, run_id: str, ids: list[UUID]
) -> list[dict[str, Any]]:
    """The run's rows and those with these ids, each with its message decrypted
    (`message`; a row whose message cannot be decrypted gets '' and so no key)."""
    rows = await conn.fetch(SELECT_RUN_ROWS, keyring.contact_hash(run_contact(run_id)), ids)
    found = []
    for r in rows:
        row = dict(r)
        try:
            row["message"] = keyring.message_of(r)
        except UnreadableValue:
            row["message"] = ""
        found.append(row)
    return found


def key_of(message: str, run_id: str) -> str | None:
    m = _KEY_IN_MESSAGE.match(message)
    if m is None or m.group(1) != run_id:
        return None
    return m.group(2)


async def reconcile(
    admin_dsn: str,
    run_id: str,
    events: Iterable[dict[str, str]],
    *,
    keyring: Keyring,
    all_items: bool = False,
) -> Reconciliation:
    result = Reconciliation(run_id=run_id)
    sent: set[str] = set()
    acks: dict[str, dict[str, str]] = {}  # id -> its (first) acknowledgement
    ids_by_key: dict[str, set[str]] = defaultdict(set)
    expected_status: dict[str, str] = {}
    sent_status: dict[str, set[str]] = defaultdict(set)
    for e in events:
        ev = e.get("ev")
        if ev == "sent":
            sent.add(e["key"])
        elif ev == "ack":
            ids_by_key[e["key"]].add(e["id"])
            acks.setdefault(e["id"], e)
            expected_status.setdefault(e["id"], e.get("state", "pending"))
        elif ev == "status":
            expected_status[e["id"]] = e["state"]
        elif ev == "status_sent":
            sent_status[e["id"]].add(e["state"])
    result.sent = len(sent)
    result.acknowledged = len(acks)

    for key, ids in sorted(ids_by_key.items()):
        if len(ids) > 1:
            result.problems.append(
                Problem("duplicated", f"key {key} acknowledged with ids {sorted(ids)}")
            )

    valid_ids = []
    for i in acks:
        try:
            valid_ids.append(UUID(i))
        except ValueError:
            result.problems.append(Problem("lost", f"acknowledged id {i!r} is not a UUID"))
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        rows = await run_rows(conn, keyring, run_id, valid_ids)
        stored_by_id = {str(r["id"]): r for r in rows}
        rows_by_key: dict[str, list[str]] = defaultdict(list)
        for r in rows:
            row_key = key_of(r["message"], run_id)
            if row_key is None:
                continue
            result.stored += 1
            rows_by_key[row_key].append(str(r["id"]))
            if row_key not in sent:
                result.problems.append(
                    Problem("unsent", f"row {r['id']} has key {row_key}, which was never sent")
                )
            elif str(r["id"]) not in acks:
                result.unacknowledged_stored += 1
        for row_key, row_ids in sorted(rows_by_key.items()):
            if len(row_ids) > 1:
                result.problems.append(
                    Problem(
                        "duplicated",
                        f"key {row_key} stored in {len(row_ids)} rows: {sorted(row_ids)}",
                    )
                )
        for did, ack in acks.items():
            row = stored_by_id.get(did)
            if row is None:
                result.problems.append(
                    Problem("lost", f"acknowledged id {did} (key {ack['key']}) is not stored")
                )
                continue
            # A transition sent but not acknowledged may have committed.
            allowed = {expected_status[did], *sent_status.get(did, ())}
            diffs = _differences(row, ack, allowed, run_id)
            if diffs:
                result.problems.append(Problem("mismatch", f"id {did}: {'; '.join(diffs)}"))

        touched = None if all_items else sorted({r["item_id"] for r in rows})
        if touched is None or touched:
            totals = await conn.fetch(SELECT_TOTALS, touched)
            result.items_checked = len(totals)
            result.problems.extend(_totals_problems(totals))
    finally:
        await conn.close()
    return result


def _differences(
    row: dict[str, Any], ack: dict[str, str], statuses: set[str], run_id: str
) -> list[str]:
    diffs = []
    if key_of(row["message"], run_id) != ack["key"]:
        diffs.append(f"stored message {row['message']!r} does not carry key {ack['key']}")
    if "tenant" in ack and row["tenant"] != ack["tenant"]:
        diffs.append(f"tenant {row['tenant']} != acknowledged {ack['tenant']}")
    if "item" in ack and str(row["item_id"]) != ack["item"]:
        diffs.append(f"item {row['item_id']} != acknowledged {ack['item']}")
    if "qty" in ack and str(row["quantity"]) != ack["qty"]:
        diffs.append(f"quantity {row['quantity']} != acknowledged {ack['qty']}")
    if row["status"] not in statuses:
        wanted = " or ".join(sorted(statuses))
        diffs.append(f"status {row['status']} != last acknowledged {wanted}")
    return diffs


def _totals_problems(totals: Iterable[asyncpg.Record]) -> list[Problem]:
    problems = []
    for t in totals:
        diffs = [
            f"{s} {m}: totals {t[f'total_{s}_{m}']} != rows {t[f'rows_{s}_{m}']}"
            for s in STATUSES
            for m in ("quantity", "count")
            if t[f"total_{s}_{m}"] != t[f"rows_{s}_{m}"]
        ]
        if diffs:
            problems.append(Problem("totals", f"item {t['item_id']}: {'; '.join(diffs)}"))
    return problems
