"""Campaigns routes (partner API v1)."""

from __future__ import annotations

from sanic import Blueprint

bp = Blueprint("campaigns", url_prefix="/api/v1")
