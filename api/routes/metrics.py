"""Prometheus metrics: /metrics exactly, to METRICS_ALLOW clients only (the edge also
allows loopback only)."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from sanic import Blueprint, HTTPResponse, Request

from api.errors import NotFound
from api.openapi import doc
from api.request_context import TrustedProxies, client_ip

bp = Blueprint("metrics")


def render_metrics() -> bytes:
    """Every worker's counters when PROMETHEUS_MULTIPROC_DIR is set, else this process's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


@bp.get("/metrics", strict_slashes=True)
@doc(tag="metrics", secured=False, errors=(404,), media="text/plain")
async def get_metrics(request: Request) -> HTTPResponse:
    """Prometheus metrics in the text exposition format (METRICS_ALLOW clients only)."""
    # The edge allows loopback only, but the edge is not the only way in (a pod's
    # port inside a cluster): the app checks the client too.
    if not TrustedProxies.parse(request.app.config.METRICS_ALLOW).trusts(client_ip(request)):
        raise NotFound("No such route.")
    return HTTPResponse(
        render_metrics(),
        headers={"Cache-Control": "no-store"},
        content_type=CONTENT_TYPE_LATEST,
    )
