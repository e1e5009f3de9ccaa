"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

A secret is `whsec_` + base64 of 32 random bytes; the key is those bytes. Each
attempt is signed as `v1,<base64 HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>`;
during a rotation's overlap the header carries one signature per live key,
separated by spaces, and a receiver accepts the message if any of them verifies."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's marker, not a secret
SECRET_BYTES = 32


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def format_secret(key: bytes) -> str:
    return SECRET_PREFIX + base64.b64encode(key).decode()


def parse_secret(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<signature>` entry."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(keys: list[bytes], message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: one entry per live key (newest first)."""
    return " ".join(sign(key, message_id, timestamp, body) for key in keys)


def verify(secret: str, message_id: str, timestamp: int, body: bytes, header: str) -> bool:
    """A receiver's check (constant-time); the timestamp's age is the caller's to judge."""
    expected = sign(parse_secret(secret), message_id, timestamp, body)
    return any(hmac.compare_digest(expected, given) for given in header.split())
