"""A test-only app: the real `create_app()` (which wires the cache) plus probe
routes that exercise `cached_json` / `invalidate_after_write` without depending
on the resource routes."""

from __future__ import annotations

import asyncio
import os
from itertools import count
from uuid import UUID

import orjson
from sanic import Blueprint, HTTPResponse, Request, Sanic

from api import server
from api.auth import principal_from_request
from api.cache import cached_json, invalidate_after_write
from api.errors import ApiError, NotFound

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
    """A write (of the whole tenant and its directory): invalidate after the (imaginary) commit."""
    await invalidate_after_write(request, _tenant(tenant), "campaign.created")
    return HTTPResponse(status=204)


@probe.get("/directory")
async def get_directory(request: Request) -> HTTPResponse:
    """The cross-tenant public scope."""
    return await cached_json(
        request, tenant_id=None, resource="campaigns", build=_builder(request, "dir"), private=False
    )


@probe.get("/whoami")
async def whoami(request: Request) -> HTTPResponse:
    """Which worker answered, and whether it accepted the request's credentials
    (through the real authentication, memo included)."""
    try:
        principal = await principal_from_request(request)
    except ApiError as exc:
        auth = str(exc.status_code)
    else:
        auth = f"ok {principal.tenant_id}"
    return HTTPResponse(orjson.dumps({"pid": os.getpid(), "auth": auth}))


def create_test_app(_: object = None) -> Sanic:  # type: ignore[type-arg]
    app = server.create_app()
    app.blueprint(probe)
    return app
