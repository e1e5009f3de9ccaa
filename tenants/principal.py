"""Who is calling: an API key or a staff user of one tenant, and what they may do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from uuid import UUID

Scope = Literal["read", "write", "keys", "users"]

ROLE_SCOPES: dict[str, frozenset[str]] = {
    "owner": frozenset({"read", "write", "keys", "users"}),
    "editor": frozenset({"read", "write"}),
    "viewer": frozenset({"read"}),
}


@dataclass(frozen=True)
class Principal:
    tenant_id: UUID
    scopes: frozenset[str]
    kind: Literal["api_key", "staff"]
    subject_id: UUID  # the key's or the user's id
    role: str | None = None

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes

    def describe(self) -> str:
        return f"role {self.role!r}" if self.role else "this API key"
