"""Prometheus metrics (the edge exposes /metrics to loopback only)."""

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

bp = Blueprint("metrics")


def render_metrics() -> bytes:
    """Every worker's counters when PROMETHEUS_MULTIPROC_DIR is set, else this process's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


@bp.get("/metrics")
async def get_metrics(request: Request) -> HTTPResponse:
    """Prometheus metrics in the text exposition format."""
    return HTTPResponse(
        render_metrics(),
        headers={"Cache-Control": "no-store"},
        content_type=CONTENT_TYPE_LATEST,
    )
