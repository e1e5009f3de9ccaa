"""Server CPU per request: the CPU time a stack's processes used over a measurement,
by part (the API's Sanic processes, PostgreSQL, Redis, Nginx), from the kernel's
per-process counters (`/proc/<pid>/stat` through psutil), divided by the requests
served in it. The figure issue 20 sets a goal on (core-ms per request).

A process's time counts user + system, plus what its reaped children used (a
PostgreSQL backend that ended during the run is counted in the postmaster's
`children_*`); processes that started during the run count from zero."""

from __future__ import annotations

import resource
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from load.stack import stack_roots

PARTS = ("api", "postgres", "redis", "nginx")
# Processes of the stack that answer no request but run on the same cores: the job
# worker (webhooks, email, totals) and the local SMTP sink. Issue 20's "server CPU"
# leaves them out; the report gives them beside it. Part -> what its command line
# contains (`./start.sh`: infra/stack_services.py).
BESIDE = {"worker": "-m admin worker", "mail": "-m infra.smtp_sink"}


def children_seconds() -> float:
    """CPU seconds (user + system) of this process's reaped children so far: read
    before and after running k6 as our child, the difference is k6's own CPU."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def beside_roots(cwd: Path) -> dict[str, psutil.Process]:
    """The processes of `BESIDE` started from `cwd` (a checkout's own stack), by part."""
    found: dict[str, psutil.Process] = {}
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        line = " ".join(proc.info["cmdline"] or [])
        for part, needle in BESIDE.items():
            if needle in line and proc.info["cwd"] == str(cwd) and part not in found:
                found[part] = proc
    return found


def part_of(name: str) -> str:
    """The part a process belongs to, by its name."""
    if name.startswith("postgres"):
        return "postgres"
    if name.startswith("redis"):
        return "redis"
    if name.startswith("nginx"):
        return "nginx"
    return "api"


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds by part over one measurement."""

    seconds: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def per_request_ms(self, requests: int) -> dict[str, float]:
        """Core-milliseconds per request, by part and in all (`total`)."""
        if requests <= 0:
            return {}
        out = {part: s * 1000 / requests for part, s in self.seconds.items()}
        out["total"] = self.total * 1000 / requests
        return out


_Reading = dict[int, tuple[str, float, float]]  # pid -> (part, create time, CPU seconds)


class CpuMeter:
    """`start()` then `stop()` around a measurement; `stop()` returns the CPU used."""

    def __init__(
        self, roots: Iterable[psutil.Process], parts: Mapping[int, str] | None = None
    ) -> None:
        """`parts`: a root's part by its pid, for its whole tree (else `part_of` its
        name, process by process)."""
        self.roots = list(roots)
        self.parts = dict(parts or {})
        self._names = PARTS if parts is None else tuple(sorted(set(self.parts.values())))
        self._start: _Reading = {}

    @classmethod
    def beside(cls, cwd: Path) -> CpuMeter:
        """The `BESIDE` processes of the stack started from `cwd` (none: all zero)."""
        found = beside_roots(cwd)
        return cls(found.values(), {p.pid: part for part, p in found.items()})

    @classmethod
    def for_ports(cls, ports: Iterable[int]) -> CpuMeter:
        """The servers listening on `ports` (loopback) and all their processes."""
        return cls(stack_roots(ports))

    def read(self) -> _Reading:
        out: _Reading = {}
        for root in self.roots:
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            fixed = self.parts.get(root.pid)
            for p in procs:
                try:
                    with p.oneshot():
                        t = p.cpu_times()
                        cpu = t.user + t.system + t.children_user + t.children_system
                        out[p.pid] = (fixed or part_of(p.name()), p.create_time(), cpu)
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
        return out

    def start(self) -> None:
        self._start = self.read()

    def stop(self) -> CpuUse:
        end = self.read()
        seconds = dict.fromkeys(self._names, 0.0)
        for pid, (part, created, cpu) in end.items():
            before = self._start.get(pid)
            same = before is not None and before[1] == created
            seconds[part] = seconds.get(part, 0.0) + cpu - (before[2] if same and before else 0.0)
        return CpuUse(seconds={k: max(0.0, v) for k, v in seconds.items()})
