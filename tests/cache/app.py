"""A test-only app: the real `create_app()` plus the cache pieces that phase 2 wires
into it (each added only if the factory does not already), and probe routes that
exercise `cached_json` / `invalidate_after_write` without depending on the
resource routes."""

from __future__ import annotations

import asyncio
import os
from itertools import count
from uuid import UUID

import orjson
from sanic import Blueprint, HTTPResponse, Request, Sanic

import api.routes.cache
import api.routes.metrics
from api import server
from api.cache import cached_json, default_x_cache, invalidate_after_write
from api.errors import NotFound
from tenants.cache import setup_cache

probe = Blueprint("cache_probe", url_prefix="/api/probe")
_builds = count(1)


def _tenant(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound() from None


def _builder(request: Request, scope: str):  # type: ignore[no-untyped-def]
    async def build() -> bytes:
        delay = float(request.args.get("slow", "0"))
        if delay:
            await asyncio.sleep(delay)
        if request.args.get("missing"):
            raise NotFound()
        return orjson.dumps({"scope": scope, "build": next(_builds), "pid": os.getpid()})

    return build


@probe.get("/<tenant>/things")
async def get_things(request: Request, tenant: str) -> HTTPResponse:
    """A tenant's cached read."""
    tenant_id = _tenant(tenant)
    return await cached_json(
        request,
        tenant_id=tenant_id,
        resource="campaigns",
        build=_builder(request, str(tenant_id)),
        private=True,
    )


@probe.post("/<tenant>/write")
async def write_things(request: Request, tenant: str) -> HTTPResponse:
    """A write: invalidate after the (imaginary) commit."""
    await invalidate_after_write(request, _tenant(tenant), directory=True)
    return HTTPResponse(status=204)


@probe.get("/directory")
async def get_directory(request: Request) -> HTTPResponse:
    """The cross-tenant public scope."""
    return await cached_json(
        request, tenant_id=None, resource="campaigns", build=_builder(request, "dir"), private=False
    )


def create_test_app(_: object = None) -> Sanic:  # type: ignore[type-arg]
    app = server.create_app()
    wired = server.create_app.__code__.co_names
    if "setup_cache" not in wired:
        setup_cache(app)
    if "default_x_cache" not in wired:
        app.register_middleware(default_x_cache, "response")
    for module in (api.routes.cache, api.routes.metrics):
        if module.bp.name not in app.blueprints:
            app.blueprint(module.bp)
    app.blueprint(probe)
    return app
