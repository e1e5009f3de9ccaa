"""Donors' contacts and messages encrypted at rest (AES-256-GCM), and the keyed hash
(HMAC-SHA256) that finds a person by contact without storing the contact.

The one accessor every reader and writer of a donation's personal data uses (the
API, the CLI, the seed, the load harness; CSV exports and e-mail notices too):
`Keyring.seal` / `Keyring.open` for a column, `Keyring.contact_hash` for lookups,
`donor_contact_of` / `message_of` for a row (`readable` for readers that go on
without one row's value). SQL never sees a plaintext contact.

Keys come from the environment:

- `CONECTADES_CONTACT_KEYS`: `id:base64key[,id:base64key...]`, newest first. The
  first key encrypts; every listed key decrypts. Ids are integers 1-65535; keys are
  32 random bytes (`openssl rand -base64 32`).
- `CONECTADES_CONTACT_HMAC_KEY`: base64 of at least 32 random bytes; the lookup hash.
  During its rotation, `NEW,OLD` (newest first): new hashes use the first, lookups
  try each, and `conectades donor rotate-keys` rewrites the old ones.

A sealed value is `0x01 | key id (2 bytes, big-endian) | nonce (12) | ciphertext+tag`.
The associated data binds it to its place: tenant id, donation id and column name,
so a value copied to another row or column does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from prometheus_client import Counter

if TYPE_CHECKING:
    from sanic import Sanic

KEYS_ENV = "CONECTADES_CONTACT_KEYS"
HMAC_ENV = "CONECTADES_CONTACT_HMAC_KEY"
FORMAT = 1
NONCE_BYTES = 12
HEADER_BYTES = 1 + 2 + NONCE_BYTES
_KEY_ENTRY = re.compile(r"^\s*(\d{1,5})\s*:\s*(\S+)\s*$")

log = logging.getLogger("conectades.crypto")

UNREADABLE = Counter(
    "conectades_unreadable_values",
    "Sealed donor values a reader could not open (key not configured, altered, or "
    "moved from another row) and answered without",
    ["column"],
)

# Column names in the associated data (a sealed contact is not a valid message).
CONTACT = "donor_contact"
MESSAGE = "message"
# Stored responses of idempotent requests (api/idempotency.py).
RESPONSE = "idempotency_response"


class KeyConfigError(ValueError):
    """The keys in the environment are missing or malformed (says which and how)."""


class UnreadableValue(Exception):
    """A sealed value this keyring cannot open: its key is not configured, or it was
    altered, or it belongs to another row."""


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KeyConfigError(f"{what} is not valid base64") from None


@dataclass(frozen=True)
class Keyring:
    # Never in a repr: tracebacks and debug logs print objects.
    keys: Mapping[int, AESGCM] = field(repr=False)
    newest: int
    hmac_keys: tuple[bytes, ...] = field(repr=False)  # newest first

    @classmethod
    def parse(cls, keys: str, hmac_key: str) -> Keyring:
        if not keys.strip():
            raise KeyConfigError(f"{KEYS_ENV} is not set (id:base64key[,id:base64key...])")
        if not hmac_key.strip():
            raise KeyConfigError(f"{HMAC_ENV} is not set (base64 of 32 random bytes)")
        parsed: dict[int, AESGCM] = {}
        order: list[int] = []
        for entry in keys.split(","):
            m = _KEY_ENTRY.match(entry)
            if m is None:
                raise KeyConfigError(
                    f"{KEYS_ENV}: each entry is id:base64key (e.g. 2:{'A' * 43}=), "
                    "newest first, comma-separated"
                )
            kid = int(m[1])
            if not 1 <= kid <= 0xFFFF:
                raise KeyConfigError(f"{KEYS_ENV}: key id {kid} is not in 1-65535")
            if kid in parsed:
                raise KeyConfigError(f"{KEYS_ENV}: key id {kid} is listed twice")
            raw = _b64(m[2], f"{KEYS_ENV}: key {kid}")
            if len(raw) != 32:
                raise KeyConfigError(f"{KEYS_ENV}: key {kid} is {len(raw)} bytes; AES-256 needs 32")
            parsed[kid] = AESGCM(raw)
            order.append(kid)
        macs: list[bytes] = []
        for n, entry in enumerate(hmac_key.split(","), start=1):
            what = HMAC_ENV if "," not in hmac_key else f"{HMAC_ENV}: key {n}"
            mac = _b64(entry.strip(), what)
            if len(mac) < 32:
                raise KeyConfigError(f"{what} is {len(mac)} bytes; at least 32 are needed")
            if mac in macs:
                raise KeyConfigError(f"{what} is listed twice")
            macs.append(mac)
        return cls(parsed, order[0], tuple(macs))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Keyring:
        env = os.environ if environ is None else environ
        return cls.parse(env.get(KEYS_ENV, ""), env.get(HMAC_ENV, ""))

    # -- one value ------------------------------------------------------------------

    def seal(self, plaintext: str, *, tenant_id: UUID, row_id: UUID, column: str) -> bytes | None:
        """The encrypted value under the newest key; None for '' (nothing to hide)."""
        if plaintext == "":
            return None
        return self.seal_bytes(
            plaintext.encode(), tenant_id=tenant_id, row_id=row_id, column=column
        )

    def open(self, sealed: bytes | None, *, tenant_id: UUID, row_id: UUID, column: str) -> str:
        return self.open_bytes(sealed, tenant_id=tenant_id, row_id=row_id, column=column).decode()

    def open_bytes(
        self, sealed: bytes | None, *, tenant_id: UUID, row_id: UUID, column: str
    ) -> bytes:
        if sealed is None:
            return b""
        sealed = bytes(sealed)
        if len(sealed) < HEADER_BYTES + 16 or sealed[0] != FORMAT:
            raise UnreadableValue(f"{column} of {row_id}: not a sealed value")
        kid = key_id(sealed)
        aead = self.keys.get(kid)
        if aead is None:
            raise UnreadableValue(
                f"{column} of {row_id} is encrypted with key {kid}, which is not in "
                f"{KEYS_ENV} (has {', '.join(str(k) for k in self.keys)})"
            )
        try:
            return aead.decrypt(
                sealed[3:HEADER_BYTES],
                sealed[HEADER_BYTES:],
                _associated(tenant_id, row_id, column),
            )
        except InvalidTag:
            raise UnreadableValue(
                f"{column} of {row_id} does not decrypt with key {kid}: altered, or "
                "copied from another row"
            ) from None

    def seal_bytes(self, data: bytes, *, tenant_id: UUID, row_id: UUID, column: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        header = bytes((FORMAT,)) + self.newest.to_bytes(2, "big") + nonce
        ad = _associated(tenant_id, row_id, column)
        return header + self.keys[self.newest].encrypt(nonce, data, ad)

    def contact_hash(self, contact: str) -> bytes | None:
        """The lookup hash of a contact under the newest HMAC key, trimmed and
        case-insensitive (as the donor commands always compared); None for an empty
        one. What a row stores."""
        normal = normalise_contact(contact)
        if not normal:
            return None
        return hmac.new(self.hmac_keys[0], normal.encode(), hashlib.sha256).digest()

    def contact_hashes(self, contact: str) -> list[bytes]:
        """The contact's hash under every listed HMAC key: what a lookup compares, so
        rows not yet rehashed by `rotate-keys` are found too. Empty for no contact."""
        normal = normalise_contact(contact)
        if not normal:
            return []
        return [hmac.new(k, normal.encode(), hashlib.sha256).digest() for k in self.hmac_keys]

    # -- a donation row -------------------------------------------------------------

    def donor_contact_of(self, row: Mapping[str, Any]) -> str:
        """The row's contact: decrypted, or the plaintext column of a row written
        before migration 0018 and not yet encrypted (`conectades donor rotate-keys`)."""
        return self._field(row, CONTACT)

    def message_of(self, row: Mapping[str, Any]) -> str:
        return self._field(row, MESSAGE)

    def readable(self, row: Mapping[str, Any], column: str) -> str | None:
        """The row's `column` (CONTACT or MESSAGE), or None when it cannot be opened:
        logged with the row id and why (never a plaintext) and counted, so one bad row
        leaves the rest of a list, a page or an export readable."""
        try:
            return self._field(row, column)
        except UnreadableValue as exc:
            note_unreadable(column, exc)
            return None

    def _field(self, row: Mapping[str, Any], column: str) -> str:
        sealed = row[f"{column}_enc"]
        if sealed is None:
            plain: str = row[column]
            return plain
        return self.open(sealed, tenant_id=row["tenant_id"], row_id=row["id"], column=column)


def note_unreadable(column: str, exc: UnreadableValue) -> None:
    """Count and log a value a reader goes on without (the row id and why, never a
    plaintext): `conectades_unreadable_values_total{column}`."""
    UNREADABLE.labels(column).inc()
    log.error("unreadable sealed value: %s", exc)


def key_id(sealed: bytes) -> int:
    return int.from_bytes(sealed[1:3], "big")


def answer_place(tenant_id: UUID, scope: str, key: str) -> dict[str, UUID]:
    """What a stored idempotent answer (column RESPONSE) is bound to: its tenant and a
    UUID of its (scope, key)."""
    digest = hashlib.sha256(scope.encode() + b"\n" + key.encode()).digest()
    return {"tenant_id": tenant_id, "row_id": UUID(bytes=digest[:16])}


def normalise_contact(contact: str) -> str:
    return contact.strip().lower()


def _associated(tenant_id: UUID, row_id: UUID, column: str) -> bytes:
    return tenant_id.bytes + row_id.bytes + column.encode()


def new_key() -> str:
    """A fresh key for CONECTADES_CONTACT_KEYS or the HMAC key (base64 of 32 bytes)."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def throwaway_keys() -> dict[str, str]:
    """Fresh keys as environment variables, for a server whose database is thrown
    away with it (benchmarks, experiments): what it encrypts is never read again."""
    return {KEYS_ENV: f"1:{new_key()}", HMAC_ENV: new_key()}


def setup_contact_keys(app: Sanic[Any, Any]) -> None:
    """The keyring in `app.ctx.keyring`, from the app's config (checked at start)."""
    app.ctx.keyring = app.config.keyring()
