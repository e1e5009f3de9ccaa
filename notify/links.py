"""The organization notice's "Confirmar recebimento" link: a capability for one
donation's confirmation, signed (JWT, HS256 with `LINK_SECRET`), expiring, and made
single-use by its job row (`email_job.link_used_at`, db/queries/email.py).

The token names the notice job and its tenant (the tenant's transaction is where
the job can be read); it is computed from the job's creation time, so every attempt
to send the same notice carries the same link. A separate key from JWT_SECRET: the
staff tokens and these links are rotated for different reasons, and a token of one
kind can never pass for the other (different key and audience).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import jwt

ALGORITHM = "HS256"
AUDIENCE = "conectades:confirm"
CLAIMS = ("exp", "iat", "aud", "j", "t")
PATH = "/confirmar/"
MIN_SECRET_BYTES = 32


class LinkInvalid(Exception):
    """Not a token we signed (tampered, truncated, another key)."""


class LinkExpired(LinkInvalid):
    """Signed by us, but past its expiry."""


@dataclass(frozen=True)
class ConfirmLink:
    job_id: UUID
    tenant_id: UUID


def sign(secret: str, *, job_id: UUID, tenant_id: UUID, issued: datetime, ttl: int) -> str:
    """The token for a notice job (the same for the same job, issued time and ttl)."""
    iat = int(issued.timestamp())
    claims = {"aud": AUDIENCE, "j": str(job_id), "t": str(tenant_id), "iat": iat, "exp": iat + ttl}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def url(base: str, token: str) -> str:
    return base.rstrip("/") + PATH + token


def verify(secret: str, token: str) -> ConfirmLink:
    """The link's job and tenant; LinkExpired or LinkInvalid otherwise."""
    if not secret:
        raise LinkInvalid("links are not configured (no LINK_SECRET)")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            options={"require": list(CLAIMS)},
        )
        return ConfirmLink(job_id=UUID(claims["j"]), tenant_id=UUID(claims["t"]))
    except jwt.ExpiredSignatureError:
        raise LinkExpired("the link has expired") from None
    except (jwt.InvalidTokenError, ValueError, TypeError, AttributeError) as exc:
        raise LinkInvalid(f"not a valid link: {type(exc).__name__}") from None
