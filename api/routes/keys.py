"""Keys routes (partner API v1)."""

from __future__ import annotations

from sanic import Blueprint

bp = Blueprint("keys", url_prefix="/api/v1")
