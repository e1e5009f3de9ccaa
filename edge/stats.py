"""Edge statistics from the JSON access log: cache hit ratio and status counts.

The hit ratio counts HIT, STALE and UPDATING over every request the microcache
looked at (any non-empty upstream_cache_status except BYPASS).

Usage: .venv/bin/python -m edge.stats var/edge/logs/access.log [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["EdgeStats", "compute", "main", "read_log"]

SERVED_FROM_CACHE = frozenset({"HIT", "STALE", "UPDATING", "REVALIDATED"})


@dataclass
class EdgeStats:
    requests: int = 0
    malformed: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    cache: Counter[str] = field(default_factory=Counter)

    @property
    def cacheable(self) -> int:
        return sum(n for k, n in self.cache.items() if k and k != "BYPASS")

    @property
    def served_from_cache(self) -> int:
        return sum(self.cache[k] for k in SERVED_FROM_CACHE)

    @property
    def hit_ratio(self) -> float:
        return self.served_from_cache / self.cacheable if self.cacheable else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "malformed": self.malformed,
            "cacheable": self.cacheable,
            "served_from_cache": self.served_from_cache,
            "hit_ratio": round(self.hit_ratio, 4),
            "statuses": dict(sorted(self.statuses.items())),
            "cache": dict(sorted(self.cache.items())),
        }


def compute(lines: Iterable[str]) -> EdgeStats:
    stats = EdgeStats()
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            stats.malformed += 1
            continue
        if not isinstance(entry, dict):
            stats.malformed += 1
            continue
        stats.requests += 1
        stats.statuses[str(entry.get("status", ""))] += 1
        stats.cache[str(entry.get("upstream_cache_status") or "")] += 1
    return stats


def read_log(path: Path) -> EdgeStats:
    with path.open(encoding="utf-8", errors="replace") as f:
        return compute(f)


def format_text(stats: EdgeStats) -> str:
    lines = [
        f"requests           {stats.requests}",
        f"cacheable          {stats.cacheable}",
        f"served from cache  {stats.served_from_cache}",
        f"hit ratio          {stats.hit_ratio:.1%}",
        "statuses           " + " ".join(f"{k}={n}" for k, n in sorted(stats.statuses.items())),
        "cache              " + " ".join(f"{k or '-'}={n}" for k, n in sorted(stats.cache.items())),
    ]
    if stats.malformed:
        lines.append(f"malformed lines    {stats.malformed}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge.stats", description=__doc__.split("\n")[0])
    p.add_argument("log", type=Path, help="the edge's JSON access log")
    p.add_argument("--json", action="store_true", help="print JSON")
    args = p.parse_args(argv)
    try:
        stats = read_log(args.log)
    except OSError as e:
        print(f"cannot read {args.log}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(stats.as_dict()) if args.json else format_text(stats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
