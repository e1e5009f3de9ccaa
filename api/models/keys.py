"""API keys: what a partner sends to issue one and what it gets back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field, field_validator

from api.models.common import Strict, Timestamp, text

KeyScope = Literal["read", "write", "keys"]
KeyStatus = Literal["live", "expired", "revoked"]


class KeyCreate(Strict):
    """A new key: its scopes, a label for humans, and an optional expiry."""

    scopes: list[KeyScope] = Field(min_length=1, max_length=3)
    label: text(100) = ""  # type: ignore[valid-type]
    expires_at: Timestamp | None = None

    @field_validator("scopes")
    @classmethod
    def _distinct(cls, value: list[KeyScope]) -> list[KeyScope]:
        if len(set(value)) != len(value):
            raise ValueError("must not repeat a scope")
        return value

    @field_validator("expires_at")
    @classmethod
    def _future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value <= datetime.now(UTC):
            raise ValueError("must be in the future")
        return value


class Key(BaseModel):
    """A key as listed: never its secret or hash."""

    id: UUID
    prefix: str
    scopes: list[str]
    label: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    status: KeyStatus


class KeyIssued(Key):
    """A key just issued; `key` is the full secret, shown this once."""

    key: str


class KeyPage(BaseModel):
    data: list[Key]
    next_cursor: str | None
