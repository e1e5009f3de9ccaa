"""Staff access and refresh tokens (JWT). Filled in by the staff-login work."""

from __future__ import annotations

from typing import Any

from tenants.principal import Principal


def decode_access(token: str, config: Any) -> dict[str, Any] | None:
    """Claims of a valid access token, or None. No staff logins exist yet."""
    return None


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    raise NotImplementedError
