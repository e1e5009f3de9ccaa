"""`conectades donor rotate-keys`: every donation's contact and message sealed under
the newest key of CONECTADES_CONTACT_KEYS (db/crypto.py), its lookup hash under the
newest key of CONECTADES_CONTACT_HMAC_KEY, and every stored answer of an idempotent
request (which repeats them) sealed again too, so the older keys can go at once.

One pass in primary-key order, a batch per transaction. A row is rewritten when it
is still in plaintext (written before migration 0018) or sealed under an older
key; its lookup hash is written again from the contact. Each update checks that the
row still holds what was read, so the API may keep writing meanwhile. Run as the
owner role (every tenant's rows, no row-level security)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from db import crypto
from db.crypto import Keyring, UnreadableValue
from db.queries import donors as dq


@dataclass
class ResealResult:
    scanned: int = 0
    encrypted: int = 0  # were plaintext
    rotated: int = 0  # were sealed under an older key
    skipped: int = 0  # changed by another writer while the batch ran (left as written)
    unreadable: list[str] = field(default_factory=list)  # why, one line per row
    rehashed: int = 0  # lookup hash rewritten under the newest HMAC key
    answers: int = 0  # stored answers re-sealed under the newest key
    answers_unreadable: int = 0  # stored answers no listed key opens (they expire)

    def as_dict(self) -> dict[str, object]:
        return {
            "scanned": self.scanned,
            "encrypted": self.encrypted,
            "rotated": self.rotated,
            "skipped": self.skipped,
            "unreadable": len(self.unreadable),
            "rehashed": self.rehashed,
            "answers": self.answers,
            "answers_unreadable": self.answers_unreadable,
        }


def _needs_work(row: asyncpg.Record, newest: int) -> bool:
    if row["donor_contact"] != "" or row["message"] != "":
        return True
    return any(
        sealed is not None and crypto.key_id(bytes(sealed)) != newest
        for sealed in (row["donor_contact_enc"], row["message_enc"])
    )


async def reseal(
    conn: asyncpg.Connection,
    ring: Keyring,
    *,
    batch: int = 1000,
    progress: Callable[[ResealResult], None] | None = None,
) -> ResealResult:
    """Seal every row under `ring`'s newest key; rows it cannot open are reported
    (and left as they are), never rewritten."""
    result = ResealResult()
    after = UUID(int=0)
    while True:
        rows = await dq.select_seal_batch(conn, after=after, limit=batch)
        if not rows:
            break
        after = rows[-1]["id"]
        result.scanned += len(rows)
        async with conn.transaction():
            for row in rows:
                if not _needs_work(row, ring.newest):
                    await _rehash(conn, ring, row, result)
                    continue
                try:
                    contact = ring.donor_contact_of(row)
                    message = ring.message_of(row)
                except UnreadableValue as exc:
                    result.unreadable.append(str(exc))
                    continue
                place = {"tenant_id": row["tenant_id"], "row_id": row["id"]}
                done = await dq.update_sealed(
                    conn,
                    row=row,
                    contact_enc=ring.seal(contact, column=crypto.CONTACT, **place),
                    contact_hmac=ring.contact_hash(contact),
                    message_enc=ring.seal(message, column=crypto.MESSAGE, **place),
                )
                if not done:
                    result.skipped += 1
                elif row["donor_contact"] != "" or row["message"] != "":
                    result.encrypted += 1
                else:
                    result.rotated += 1
        if progress is not None:
            progress(result)
        if len(rows) < batch:
            break
    await _reseal_answers(conn, ring, result, batch=batch)
    return result


async def _rehash(
    conn: asyncpg.Connection, ring: Keyring, row: asyncpg.Record, result: ResealResult
) -> None:
    """A row sealed under the newest key whose lookup hash is not the newest HMAC
    key's (written before that key was listed first) gets it; the sealed values stay."""
    if row["donor_contact_enc"] is None:
        return
    try:
        contact = ring.donor_contact_of(row)
    except UnreadableValue as exc:
        result.unreadable.append(str(exc))
        return
    wanted = ring.contact_hash(contact)
    stored = row["donor_contact_hmac"]
    if (None if stored is None else bytes(stored)) == wanted:
        return
    if await dq.update_hash(conn, row=row, contact_hmac=wanted):
        result.rehashed += 1
    else:
        result.skipped += 1


async def _reseal_answers(
    conn: asyncpg.Connection, ring: Keyring, result: ResealResult, *, batch: int
) -> None:
    """Stored answers sealed under an older key, sealed again under the newest; one
    changed meanwhile (replaced by a later request) is left as written."""
    marker = bytes((crypto.FORMAT,))
    after: tuple[UUID, str, str] = (UUID(int=0), "", "")
    while True:
        rows = await dq.select_answer_batch(conn, after=after, marker=marker, limit=batch)
        if not rows:
            return
        last = rows[-1]
        after = (last["tenant_id"], last["key"], last["scope"])
        async with conn.transaction():
            for row in rows:
                sealed = bytes(row["body"])
                if crypto.key_id(sealed) == ring.newest:
                    continue
                place = crypto.answer_place(row["tenant_id"], row["scope"], row["key"])
                try:
                    body = ring.open_bytes(sealed, column=crypto.RESPONSE, **place)
                except UnreadableValue:
                    result.answers_unreadable += 1
                    continue
                resealed = ring.seal_bytes(body, column=crypto.RESPONSE, **place)
                if await dq.update_answer(conn, row=row, body=resealed):
                    result.answers += 1
        if len(rows) < batch:
            return
