"""What /health and /health/ready answer (api/routes/health.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Workers(BaseModel):
    configured: int
    alive: int
    restarts: int
    blocked: list[int]


class Health(BaseModel):
    """Liveness: `ok`, or `degraded` (then 503) when a worker is down or blocked."""

    status: Literal["ok", "degraded"]
    workers: Workers | None = None


class Readiness(BaseModel):
    """Readiness: every check `ok` (200), else 503 naming what is not."""

    status: Literal["ready", "unavailable", "draining"]
    checks: dict[str, str]
