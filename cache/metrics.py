"""The cache's Prometheus counters.

Metrics (prometheus-client, multiprocess-safe when PROMETHEUS_MULTIPROC_DIR is
set before this module is imported; see `prepare_metrics_dir`):
`conectades_cache_lookups_total{tenant,resource,result}` with result
hit|miss|bypass|error, and `conectades_cache_failures_total{op,reason}`. The
labelled children are looked up once and kept (`_counter`), not per call.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

from prometheus_client import Counter

if TYPE_CHECKING:
    from prometheus_client.metrics import Counter as CounterChild

DIRECTORY = "directory"  # the metrics label of the cross-tenant scope

LOOKUPS = Counter(
    "conectades_cache_lookups",
    "Response cache lookups by tenant, resource and result (hit|miss|bypass|error)",
    ["tenant", "resource", "result"],
)
FAILURES = Counter(
    "conectades_cache_failures",
    "Redis calls that failed (reason=error) or were skipped by the open breaker (reason=open)",
    ["op", "reason"],
)


# Labelled children, looked up once: `.labels()` costs a lock and a few dict lookups.
_LOOKUP_CHILDREN: dict[tuple[UUID | None, str, str], CounterChild] = {}
_FAILURE_CHILDREN: dict[tuple[str, str], CounterChild] = {}


def lookup_counter(tenant_id: UUID | None, resource: str, result: str) -> CounterChild:
    key = (tenant_id, resource, result)
    child = _LOOKUP_CHILDREN.get(key)
    if child is None:
        child = LOOKUPS.labels(_label(tenant_id), resource, str(result))
        _LOOKUP_CHILDREN[key] = child
    return child


def failure_counter(op: str, reason: str) -> CounterChild:
    child = _FAILURE_CHILDREN.get((op, reason))
    if child is None:
        child = _FAILURE_CHILDREN[(op, reason)] = FAILURES.labels(op, reason)
    return child


def _label(tenant_id: UUID | None) -> str:
    return str(tenant_id) if tenant_id is not None else DIRECTORY


def prepare_metrics_dir(path: Path) -> Path:
    """Create or empty the prometheus-client multiprocess directory.

    Whoever starts the workers calls this BEFORE starting them and exports
    PROMETHEUS_MULTIPROC_DIR=<path> into their environment (prometheus-client
    reads it at import), so /metrics sums every worker's counters."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    return path
