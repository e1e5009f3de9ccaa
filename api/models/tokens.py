"""Staff login and refresh bodies (the old system's `/api/token/` shapes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel

from api.models.common import Slug, Strict, text

# argon2 hashes any length, but an unbounded password is free CPU for an attacker.
MAX_PASSWORD_LENGTH = 1024
# A refresh token is a few hundred bytes; anything much longer is not one.
MAX_TOKEN_LENGTH = 4096

# `text()` builds its Annotated type at runtime; to the type checker these are str.
if TYPE_CHECKING:
    Username = str
    Password = str
    Token = str
else:
    Username = text(150, 1)
    Password = text(MAX_PASSWORD_LENGTH, 1)
    Token = text(MAX_TOKEN_LENGTH, 1)


class TokenObtain(Strict):
    """`tenant` (the organization's slug) may be omitted unless the username and
    password are valid in several organizations (then 400 naming `tenant`); a username
    shared by more than four organizations may need it."""

    tenant: Slug | None = None
    username: Username
    password: Password


class TokenRefresh(Strict):
    refresh: Token


class TokenPair(BaseModel):
    """A 15-minute access token (send as `Authorization: Bearer`) and a 7-day,
    single-use refresh token."""

    access: str
    refresh: str
