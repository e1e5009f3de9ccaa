"""What every worker holds in `app.ctx`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass
class AppContext:
    pool: asyncpg.Pool | None = None
    redis: Any = None  # joins with the cache layer
