"""`Idempotency-Key` for POSTs that create donations.

Runs inside the caller's tenant transaction (`key_transaction`): a
transaction-scoped advisory lock on (tenant, key), taken with BEGIN, makes a
concurrent duplicate answer 409 at once instead of waiting; the record is written
in the same transaction as the donation (and in the same statement as its event),
so a response is stored if and only if the donation was committed; the stored
response is looked for in the write's own statement (`run_once`). Same key + same
body replays the stored response; same key + another body is 422; keys belong to
one credential of one tenant (an API key, a staff user, or the public's pledges:
`scope_of`), so nobody can pre-claim another's key, and are kept `IDEMPOTENCY_TTL`
seconds (24 h).

The stored response is sealed (db/crypto.py, bound to tenant, scope and key): a
partner's donation answer carries the donor's contact and message, which are not
kept as text anywhere in the database. Records stored before that (JSON, never
starting with the sealed format byte) are replayed as they are.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar
from uuid import UUID

import asyncpg
import orjson
from pydantic import BaseModel
from sanic import Request

from api.database import tenant_tx
from api.errors import (
    BadRequest,
    IdempotencyInFlight,
    IdempotencyMismatch,
    StoredAnswerUnreadable,
)
from db import crypto
from db.crypto import Keyring
from db.queries import events
from db.queries import idempotency as q
from db.queries.events import PendingEvent
from tenants.principal import Principal

HEADER = "Idempotency-Key"
# Anonymous pledges share one space per tenant, apart from every partner credential.
PUBLIC_SCOPE = "public"
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
T = TypeVar("T")


@dataclass(frozen=True)
class Created(Generic[T]):
    """What a write answered (`status`, `body`: stored for replays), what its
    caller needs of it afterwards (`value`: not stored), and the event it records
    (written by `run_once` with the stored answer, in one statement)."""

    status: int
    body: bytes
    value: T
    event: PendingEvent | None = None


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """The answer to send; `value` is the write's (None when `replayed`: nothing was
    written this time)."""

    status: int
    body: bytes
    replayed: bool
    value: T | None = None

    @classmethod
    def fresh(cls, created: Created[T]) -> Outcome[T]:
        """The outcome of a write made now (not a replay)."""
        return cls(created.status, created.body, replayed=False, value=created.value)


def read_key(request: Request, *, required: bool) -> str | None:
    key: str | None = request.headers.get(HEADER)
    if key is None:  # present but empty is malformed (400 below), not absent
        if required:
            raise BadRequest(f"The {HEADER} header is required (1-255 printable ASCII chars).")
        return None
    if not _KEY_RE.match(key):
        raise BadRequest(f"{HEADER}: 1-255 printable ASCII characters, no spaces.")
    return key


def fingerprint(method: str, path: str, body: BaseModel) -> bytes:
    """Of the parsed request: key order and whitespace do not make two bodies differ,
    nor does a field left at its default or omitted. So a field added with a default
    (as `show_name` was) leaves the fingerprints of earlier requests as they were:
    with the defaults included, a retry that reached a worker running the newer code
    got 422 "different request body" for the same body (seen in the chaos run)."""
    payload = body.model_dump(mode="json", exclude_defaults=True)
    canonical = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).digest()


def scope_of(principal: Principal) -> str:
    """The key space of a partner credential: its API key's or its staff user's."""
    kind = "key" if principal.kind == "api_key" else "user"
    return f"{kind}:{principal.subject_id}"


_SEALED = bytes((crypto.FORMAT,))


def _open_answer(keyring: Keyring, sealed: bytes, place: dict[str, UUID]) -> bytes:
    """A stored answer, decrypted. One sealed under a key no longer configured (or
    altered) is a 409, not a 500: the request was carried out, and retrying it with
    the same key cannot help (`conectades donor rotate-keys` re-seals stored answers
    before an old key is removed)."""
    try:
        return keyring.open_bytes(sealed, column=crypto.RESPONSE, **place)
    except crypto.UnreadableValue as exc:
        crypto.note_unreadable(crypto.RESPONSE, exc)
        raise StoredAnswerUnreadable(
            f"The request with this {HEADER} was already carried out, but its stored "
            "answer cannot be read. Read the resource to see its state; a new key "
            "makes a new request."
        ) from None


def lock_id(tenant_id: UUID, scope: str, key: str) -> int:
    """The advisory lock of (tenant, scope, key)."""
    material = tenant_id.bytes + scope.encode() + b"\n" + key.encode()
    digest = hashlib.blake2b(material, digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@asynccontextmanager
async def key_transaction(
    request: Request, tenant_id: UUID, scope: str, key: str | None
) -> AsyncIterator[asyncpg.Connection]:
    """The tenant's transaction for a write under `key` (or none): the key's lock is
    taken in the same round trip as BEGIN (db/tenancy.py), and a key whose lock
    another transaction holds is 409 at once instead of a wait."""
    lock = None if key is None else lock_id(tenant_id, scope, key)
    entered = False
    try:
        async with tenant_tx(request, tenant_id, lock=lock) as conn:
            entered = True
            yield conn
    except asyncpg.LockNotAvailableError:
        if entered:  # not the key's lock: the block's own error
            raise
        raise IdempotencyInFlight(
            f"A request with this {HEADER} is still being processed; retry shortly."
        ) from None


async def run_once(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    scope: str,
    key: str | None,
    fingerprint: bytes,
    ttl: float,
    create: Callable[[q.KeyLookup | None], Awaitable[Created[T] | q.StoredAnswer]],
    keyring: Keyring,
) -> Outcome[T]:
    """`create(lookup)`'s answer, stored with its event; or the answer stored for
    (tenant, scope, key), which `create` finds instead of writing (`replayed`).

    `create` reads the stored answer in its own write's statement (the keyed
    inserts of db/queries/donations.py), so a keyed write costs no extra round trip
    for it. `conn` is the `key_transaction` of the same tenant, scope and key,
    which holds the key's lock. Without a key, `create(None)` runs and its event is
    written."""
    if key is None:
        created = await create(None)
        assert isinstance(created, Created), "no stored answer without a key"
        if created.event is not None:
            await events.write(conn, created.event)
        return Outcome.fresh(created)
    found = await create(q.KeyLookup(key, scope, ttl))
    place = crypto.answer_place(tenant_id, scope, key)
    if isinstance(found, q.StoredAnswer):
        if found.fingerprint != fingerprint:
            raise IdempotencyMismatch(
                f"This {HEADER} was already used with a different request body."
            )
        body = found.body
        if body[:1] == _SEALED:
            body = _open_answer(keyring, body, place)
        return Outcome(found.status_code, body, replayed=True)
    sealed = keyring.seal_bytes(found.body, column=crypto.RESPONSE, **place)
    await q.upsert_record(
        conn,
        tenant_id=tenant_id,
        key=key,
        scope=scope,
        fingerprint=fingerprint,
        status_code=found.status,
        body=sealed,
        ttl=ttl,
        event=found.event,
    )
    return Outcome.fresh(found)
