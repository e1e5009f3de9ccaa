"""The stack under load: where it is (URLs, owner DSN), whether it is up, and how much
memory all of its processes use while k6 drives it.

By default the `./start.sh` stack (var/stack.env, var/credentials.json); every value
can be given explicitly instead (`--base-url`, `--database-url`, ...).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from db.crypto import KEYS_ENV, Keyring
from infra.process import on_tmpfs

# Processes whose parent of the same program belongs to the same service (a
# postmaster and its backends, an nginx master and its workers).
_SERVERS = ("postgres", "postmaster", "nginx", "redis-server", "redis")


class StackError(RuntimeError):
    """The stack is not where we were told, or not answering."""


@dataclass
class StackTarget:
    base_url: str  # the edge: what k6 drives
    admin_dsn: str  # the owner role (bypasses RLS): seeding and reconciliation
    api_url: str | None = None  # the workers, for memory sampling
    redis_url: str | None = None
    extra_ports: list[int] = field(default_factory=list)
    edge_log: Path | None = None  # the edge's JSON access log, when it is on this machine
    edge_cache: Path | None = None  # the edge's microcache folder, when on this machine
    # The API's donor-contact keys: the seed seals with them, reconciliation finds a
    # run's rows by its donor contact's hash and reads their messages (db/crypto.py).
    keyring: Keyring | None = None

    def contact_keys(self) -> Keyring:
        if self.keyring is None:
            raise StackError(
                "the API's donor-contact keys are needed: set CONECTADES_CONTACT_KEYS and "
                "CONECTADES_CONTACT_HMAC_KEY (a ./start.sh stack has them in var/stack.env)"
            )
        return self.keyring

    def ports(self) -> list[int]:
        """Listening ports of every service whose processes count as "the stack"."""
        found = [_port(self.base_url, 80), _port(self.admin_dsn, 5432)]
        if self.api_url:
            found.append(_port(self.api_url, 80))
        if self.redis_url:
            found.append(_port(self.redis_url, 6379))
        return [*found, *self.extra_ports]


def _port(url: str, default: int) -> int:
    return urlsplit(url).port or default


def local_stack(
    base_url: str | None = None, database_url: str | None = None, redis_url: str | None = None
) -> StackTarget:
    """The `./start.sh` stack from var/stack.env, with any value overridden."""
    from infra import stack_settings as stack
    from infra.stack_services import edge

    if not stack.ENV_FILE.exists() and (base_url is None or database_url is None):
        raise StackError(
            f"no {stack.ENV_FILE}: start the stack with ./start.sh, "
            "or give --base-url and --database-url"
        )
    if base_url is not None and database_url is not None and not stack.ENV_FILE.exists():
        return StackTarget(
            base_url=base_url, admin_dsn=database_url, redis_url=redis_url, keyring=env_keyring()
        )
    settings = stack.Settings(env=stack.load_env(), workers=1)
    return StackTarget(
        base_url=base_url or f"http://127.0.0.1:{settings.env['EDGE_PORT']}",
        admin_dsn=database_url or settings.admin_dsn,
        api_url=settings.api_url,
        redis_url=redis_url or settings.redis_url,
        keyring=env_keyring() if os.environ.get(KEYS_ENV) else settings.keyring(),
        edge_log=edge(settings).access_log,  # where the stack's own edge writes it
        edge_cache=edge(settings).cache_link,  # in memory when it links to a tmpfs
    )


def env_keyring() -> Keyring | None:
    """The donor-contact keys in this process's environment, if set."""
    return Keyring.from_env() if os.environ.get(KEYS_ENV) else None


def check_up(target: StackTarget, timeout: float = 3) -> None:
    """The edge answers /health/ready with 200 (PostgreSQL reachable behind it)."""
    url = target.base_url.rstrip("/") + "/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (our http URL)
            if r.status == 200:
                return
            raise StackError(f"{url} answered {r.status}")
    except (urllib.error.URLError, OSError) as exc:
        raise StackError(f"the stack is not answering at {url}: {exc}") from None


def _service_root(proc: psutil.Process) -> psutil.Process:
    """The top process of the service `proc` belongs to (postmaster, nginx master,
    the `sanic` main process), never the shell or test runner that started it."""
    while True:
        try:
            parent = proc.parent()
            if parent is None or parent.pid <= 1:
                return proc
            same_server = parent.name() == proc.name() and proc.name() in _SERVERS
            sanic_main = "sanic" in " ".join(parent.cmdline())
            if not (same_server or sanic_main):
                return proc
            proc = parent
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return proc


def stack_roots(ports: Iterable[int]) -> list[psutil.Process]:
    """The root process of each service listening on one of `ports` (loopback)."""
    wanted = set(ports)
    pids = {
        c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port in wanted and c.pid
    }
    roots: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            root = _service_root(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
        roots[root.pid] = root
    return list(roots.values())


def _tree(roots: list[psutil.Process]) -> list[psutil.Process]:
    procs: dict[int, psutil.Process] = {}
    for root in roots:
        try:
            for p in [root, *root.children(recursive=True)]:
                procs[p.pid] = p
        except psutil.NoSuchProcess:
            continue
    return list(procs.values())


@dataclass
class MemorySample:
    pss: int  # proportional set size summed: shared pages counted once overall
    rss: int  # resident set size summed: shared pages counted in every process
    processes: int
    # Files the stack keeps in memory outside any process: the edge's microcache on
    # tmpfs (infra/nginx.py), counted in `total` as the memory it is.
    in_memory_files: int = 0

    @property
    def total(self) -> int:
        return self.pss + self.in_memory_files


def memory_files_bytes(folder: Path | None) -> int:
    """Bytes held by the files under `folder` when it lives on a tmpfs (the edge's
    microcache in memory); 0 for a folder on disk, or none."""
    if folder is None:
        return 0
    try:
        real = folder.resolve(strict=True)
    except OSError:
        return 0
    if not on_tmpfs(real):
        return 0
    held = 0
    for dirpath, _dirs, files in os.walk(real):
        for name in files:
            with contextlib.suppress(OSError):
                held += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return held


def sample_memory(roots: list[psutil.Process], memory_dirs: Iterable[Path] = ()) -> MemorySample:
    pss = rss = count = 0
    for p in _tree(roots):
        try:
            info = p.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        pss += getattr(info, "pss", info.rss)
        rss += info.rss
        count += 1
    files = sum(memory_files_bytes(d) for d in memory_dirs)
    return MemorySample(pss=pss, rss=rss, processes=count, in_memory_files=files)


def _idle_priority() -> None:
    """The calling thread runs when a core would otherwise idle (SCHED_IDLE; it still
    gets a sliver of a saturated machine)."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(threading.get_native_id(), os.SCHED_IDLE, os.sched_param(0))


class MemoryMonitor:
    """Samples the stack's memory every `interval` seconds in an idle-priority thread,
    and once more on exit; keeps the peak."""

    def __init__(
        self, ports: Iterable[int], interval: float = 1.0, memory_dirs: Iterable[Path] = ()
    ) -> None:
        self.roots = stack_roots(ports)
        self.memory_dirs = list(memory_dirs)
        self.interval = interval
        self.peak = MemorySample(0, 0, 0)
        self.last = MemorySample(0, 0, 0)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory", daemon=True)

    def _run(self) -> None:
        _idle_priority()
        while not self._stop.is_set():
            started = time.monotonic()
            self._record(sample_memory(self.roots, self.memory_dirs))
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def _record(self, s: MemorySample) -> None:
        self.last = s
        self.samples += 1
        if s.total > self.peak.total:
            self.peak = s

    def __enter__(self) -> MemoryMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        if not self._thread.is_alive():
            # after the load: nothing to disturb
            self._record(sample_memory(self.roots, self.memory_dirs))

    def describe(self) -> list[str]:
        out = []
        for root in self.roots:
            try:
                out.append(f"{root.name()}[{root.pid}]")
            except psutil.NoSuchProcess:
                continue
        return out


def is_root() -> bool:
    return os.geteuid() == 0
