"""API keys: `cnd_live_<public id>_<secret>`.

The public id (12 chars, stored in clear as the key's prefix) finds the row; the
secret is 32 random bytes (256 bits, base64url); only SHA-256 of the whole key is
stored and compared in constant time. The full key is shown once, at issue.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

KEY_PREFIX = "cnd_live_"
_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no 0/o/1/l: readable when spoken
_PUBLIC_ID_LEN = 12
_KEY_RE = re.compile(r"^cnd_live_([a-z2-9]{12})_([A-Za-z0-9_-]{43})$")
SCOPES = ("read", "write", "keys")


@dataclass(frozen=True)
class NewKey:
    prefix: str  # e.g. cnd_live_3kf9ab2cdq7x
    secret_hash: bytes
    full_key: str


def generate() -> NewKey:
    public_id = "".join(secrets.choice(_ALPHABET) for _ in range(_PUBLIC_ID_LEN))
    secret = secrets.token_urlsafe(32)
    full = f"{KEY_PREFIX}{public_id}_{secret}"
    return NewKey(prefix=KEY_PREFIX + public_id, secret_hash=hash_key(full), full_key=full)


def hash_key(full_key: str) -> bytes:
    return hashlib.sha256(full_key.encode()).digest()


def parse_prefix(candidate: str) -> str | None:
    """The stored prefix of a well-formed key, or None."""
    match = _KEY_RE.match(candidate)
    return KEY_PREFIX + match[1] if match else None


def matches(candidate: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_key(candidate), stored_hash)


async def issue(
    conn: Any,
    *,
    tenant_id: UUID,
    scopes: list[str],
    label: str = "",
    expires_at: datetime | None = None,
) -> tuple[Any, str]:
    """Store a new key; returns its row and the full key (shown once, never stored)."""
    from db.queries import keys as q

    new = generate()
    row = await q.insert_key(
        conn,
        tenant_id=tenant_id,
        prefix=new.prefix,
        secret_hash=new.secret_hash,
        scopes=scopes,
        label=label,
        expires_at=expires_at,
    )
    return row, new.full_key
