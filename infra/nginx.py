"""A project-local Nginx edge: render, check, start, reload, stop, status.

Runs `nginx -p <prefix> -c <prefix>/nginx.conf -e <logs>/error.log` (our own master,
never the system service); the pid file, logs, temp files and cache live under the
prefix. As root the workers drop to nginx's default user (`nobody`), which creates
its temp and cache directories itself; when the project lives in a folder that user
cannot enter (a clone in /root or in any 0700 folder), what the workers open — the
cache, temp files and the static files — is placed under /var/tmp instead (linked
from `<prefix>/worker`), as PostgreSQL's data directory is.

The microcache lives in memory when it can (`memory_cache`, on by default): a
folder on the tmpfs at /dev/shm, linked from `<prefix>/cache` and removed when the
edge stops, as the containers keep it (a tmpfs in docker-compose.yml, a
memory-backed emptyDir on Kubernetes). Every refresh writes a new file and
renames it over the old one, every hit opens one: on the disk's ext4 those file
operations took about 40 % of nginx's CPU in the 1000-user mix, and nginx's cost
per request fell from 0.28-0.33 to 0.15-0.16 core-ms with the cache in memory
(docs/decisions.md, 8).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from edge.render import EdgeConfig, write
from infra.postgres import free_port
from infra.process import (
    on_tmpfs,
    pid_from_file,
    reachable_by_server,
    server_dir,
    wait_gone,
)

__all__ = ["LocalNginx", "NginxError", "free_port", "nginx_binary", "stack_edge"]


class NginxError(RuntimeError):
    pass


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None
    )
    if not found:
        raise NginxError("nginx is not installed (apt-get install -y nginx)")
    return found


# A local access log larger than this is moved aside when nginx starts (below).
ACCESS_LOG_ROTATE_BYTES = 64 * 1024 * 1024

# Where a memory-backed microcache goes, and how its folders are named there.
MEMORY_FS = Path("/dev/shm")  # noqa: S108 (each edge gets its own mkdtemp folder there)
MEMORY_HOLDER_PREFIX = "conectades-edge-"
# A holder younger than this is never swept: its edge may be linking it right now.
SWEEP_AFTER_S = 60.0
_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}


def size_bytes(size: str) -> int:
    """An nginx size ("256m", "64k", "1g", "4096") in bytes."""
    size = size.strip().lower()
    if size and size[-1] in _UNITS:
        return int(size[:-1]) * _UNITS[size[-1]]
    return int(size)


def memory_room(path: Path) -> int:
    """Bytes free on the tmpfs at `path` for us (0 if it is not one we can write)."""
    if not (path.is_dir() and os.access(path, os.W_OK | os.X_OK) and on_tmpfs(path)):
        return 0
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def sweep_memory_holders(root: Path = MEMORY_FS, *, older_than: float = SWEEP_AFTER_S) -> int:
    """Delete memory caches whose edge is gone: its `<prefix>/cache` link (named in the
    holder's `owner` file) no longer points at it, e.g. after `rm -rf var` or a test
    run killed before it stopped its edge. Returns how many were removed."""
    removed = 0
    now = time.time()
    for holder in root.glob(MEMORY_HOLDER_PREFIX + "*"):
        try:
            if now - holder.stat().st_mtime < older_than:
                continue
            link = Path((holder / "owner").read_text().strip())
        except (OSError, ValueError):
            link = None
        if link is not None and link.is_symlink() and link.resolve() == holder / "cache":
            continue
        shutil.rmtree(holder, ignore_errors=True)
        removed += not holder.exists()
    return removed


@dataclass
class LocalNginx:
    config: EdgeConfig
    rotate_bytes: int = ACCESS_LOG_ROTATE_BYTES
    static_source: Path | None = None  # where static files come from when copied
    # The microcache on MEMORY_FS when the config names no cache folder (module doc).
    memory_cache: bool = True
    memory_fs: Path = MEMORY_FS

    @property
    def prefix(self) -> Path:
        return self.config.prefix

    @property
    def conf_path(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def pidfile(self) -> Path:
        return self.prefix / "nginx.pid"

    @property
    def error_log(self) -> Path:
        return self.config.logs / "error.log"

    @property
    def access_log(self) -> Path:
        return self.config.access_log

    @property
    def url(self) -> str:
        return f"http://{self.config.listen_host}:{self.config.listen_port}"

    def _cmd(self, *extra: str) -> list[str]:
        return [
            nginx_binary(),
            "-p",
            str(self.prefix.resolve()),
            "-c",
            str(self.conf_path.resolve()),
            "-e",
            str(self.error_log.resolve()),
            *extra,
        ]

    def render(self) -> Path:
        self._place_worker_paths()
        return write(self.config, self.conf_path)

    @property
    def cache_link(self) -> Path:
        return self.prefix.absolute() / "cache"

    def memory_cache_dir(self) -> Path | None:
        """The memory folder `<prefix>/cache` links to, if it is one of ours."""
        link = self.cache_link
        if not link.is_symlink():
            return None
        target = link.resolve()
        holder = target.parent
        if holder.parent != self.memory_fs.resolve() or not holder.name.startswith(
            MEMORY_HOLDER_PREFIX
        ):
            return None
        return target

    def _place_cache_in_memory(self) -> None:
        """Link `<prefix>/cache` to a new folder on the tmpfs (or keep the one it links
        to), when `memory_cache` is on, the config names no other cache folder, and
        the tmpfs has room for twice the cache's max_size (Docker's default /dev/shm
        of 64 MB has not: the cache stays on disk there)."""
        cfg = self.config
        current = self.memory_cache_dir()
        if not self.memory_cache or (cfg.cache_dir is not None and cfg.cache_dir != current):
            return
        if current is not None and current.parent.is_dir():
            cfg.cache_dir = current
            return
        cfg.cache_dir = None
        if current is not None:  # its folder is gone (a reboot empties /dev/shm)
            self.cache_link.unlink()
        if memory_room(self.memory_fs) < 2 * size_bytes(cfg.cache_max_size):
            return
        sweep_memory_holders(self.memory_fs)
        holder = Path(tempfile.mkdtemp(prefix=MEMORY_HOLDER_PREFIX, dir=self.memory_fs))
        holder.chmod(0o711)  # nginx's workers (`nobody` under root) reach the cache inside
        link = self.cache_link
        (holder / "owner").write_text(str(link))
        if link.is_symlink() or link.is_file():
            link.unlink()
        elif link.is_dir():
            shutil.rmtree(link)  # a cache on disk from before: disposable
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(holder / "cache")
        cfg.cache_dir = holder / "cache"

    def remove_memory_cache(self) -> None:
        """Delete the memory cache and its link (call when stopped: it is memory)."""
        target = self.memory_cache_dir()
        if target is None:
            return
        shutil.rmtree(target.parent, ignore_errors=True)
        self.cache_link.unlink(missing_ok=True)
        if self.config.cache_dir == target:
            self.config.cache_dir = None

    def _place_worker_paths(self) -> None:
        """As root in a private folder: the workers' cache, temp and static paths
        where they can reach them (else every cached GET was a 500: `open() ...
        failed (13: Permission denied)`). The static files are copied at each render."""
        cfg = self.config
        if cfg.user is not None or reachable_by_server(self.prefix.absolute()):
            return
        if self.static_source is None:
            self.static_source = cfg.static_dir
        shared = server_dir(self.prefix / "worker")
        static = shared / "static"
        shutil.rmtree(static, ignore_errors=True)
        shutil.copytree(self.static_source, static)
        for path in (shared, static, *static.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        if self.memory_cache_dir() is None:
            cfg.cache_dir = shared / "cache"
        cfg.temp_dir = shared / "tmp"
        cfg.static_dir = static

    def remove_worker_paths(self) -> None:
        """Delete what `_place_worker_paths` put under /var/tmp (call when stopped)."""
        link = self.prefix / "worker"
        if link.is_symlink():
            holder = link.resolve().parent
            link.unlink()
            if holder.name.startswith("conectades-"):
                shutil.rmtree(holder, ignore_errors=True)

    def check(self) -> str:
        """`nginx -t` on the rendered file; returns its output, raises if it fails."""
        if not self.conf_path.exists():
            self.render()
        run = subprocess.run(self._cmd("-t"), capture_output=True, text=True, timeout=30)
        out = (run.stderr + run.stdout).strip()
        if run.returncode != 0:
            raise NginxError(f"nginx -t failed:\n{out}")
        return out

    def _pid(self) -> int | None:
        return pid_from_file(self.pidfile)

    def _listening(self) -> bool:
        try:
            with socket.create_connection(
                (self.config.listen_host, self.config.listen_port), timeout=0.5
            ):
                return True
        except OSError:
            return False

    def running(self) -> bool:
        return self._pid() is not None and self._listening()

    def rotate_access_log(self) -> bool:
        """Move an access log over `rotate_bytes` to `access.log.1`, replacing the
        previous one; True if it moved. Call while nginx is stopped (it holds the
        file open). A load run adds ~20 MB, so without this a day of runs left a
        3.5 GB log under var/edge/logs. A log sent elsewhere (`access_log_path`,
        e.g. /dev/stdout in containers) is left alone."""
        if self.config.access_log_path is not None:
            return False
        log = self.access_log
        try:
            if log.stat().st_size <= self.rotate_bytes:
                return False
        except FileNotFoundError:
            return False
        os.replace(log, log.with_name(log.name + ".1"))
        return True

    def prepare(self) -> None:
        """Rotate a large access log, place the cache in memory, render and check the
        config (what `command()` needs; with `daemon=False` in the config it runs in
        the foreground)."""
        self.rotate_access_log()
        self._place_cache_in_memory()
        self.render()
        self.check()

    def command(self) -> list[str]:
        return self._cmd()

    def start(self, timeout: float = 15) -> None:
        if self.running():
            return
        self.prepare()
        self.pidfile.unlink(missing_ok=True)
        run = subprocess.run(self._cmd(), capture_output=True, text=True, timeout=timeout)
        if run.returncode != 0:
            raise NginxError(f"nginx failed: {(run.stderr + run.stdout).strip()}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.running():
                return
            time.sleep(0.05)
        raise NginxError(f"nginx not listening on {self.url}\n{self._tail()}")

    def reload(self) -> None:
        """Re-render, check, and SIGHUP the master (graceful: old workers finish)."""
        pid = self._pid()
        self.render()
        self.check()
        if pid is None:
            raise NginxError("nginx is not running")
        os.kill(pid, signal.SIGHUP)

    def stop(self, timeout: float = 10, *, keep_cache: bool = False) -> None:
        """SIGQUIT (graceful), SIGTERM then SIGKILL if stuck; then the memory cache
        goes (also when nginx was gone already, unless something still listens),
        except with `keep_cache`: for an nginx its supervisor will start again with
        the same config (infra/stack.py: stop_unsupervised)."""
        pid = self._pid()
        if pid is None:
            if not self._listening() and not keep_cache:
                self.remove_memory_cache()
            return
        for sig in (signal.SIGQUIT, signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            if wait_gone(pid, timeout):
                break
        self.pidfile.unlink(missing_ok=True)
        if not keep_cache:
            self.remove_memory_cache()

    def status(self) -> str:
        pid = self._pid()
        if pid is None:
            return "stopped"
        return f"running (pid {pid}) on {self.url}" if self._listening() else f"pid {pid}"

    def _tail(self) -> str:
        try:
            return self.error_log.read_text()[-2000:]
        except OSError:
            return ""


def stack_edge(var: Path, edge_port: int, api_url: str, *, daemon: bool = True) -> LocalNginx:
    """The stack's edge (for infra/stack.py and `conectades edge`): var/edge, one
    upstream (the Sanic master's port; its workers share the socket), limits from
    the CONECTADES_EDGE_* environment (see `python -m edge.render --help`). The
    stack runs it in the foreground under its supervisor (`daemon=False`)."""
    env = os.environ.get
    upstreams = [
        u.strip()
        for u in env("CONECTADES_EDGE_UPSTREAMS", api_url.removeprefix("http://")).split(",")
        if u.strip()
    ]
    return LocalNginx(
        EdgeConfig(
            listen_port=edge_port,
            listen_host=env("CONECTADES_EDGE_HOST", "127.0.0.1"),
            upstreams=upstreams,
            prefix=var / "edge",
            client_max_body_size=env("CONECTADES_EDGE_BODY_LIMIT", "64k"),
            rate=env("CONECTADES_EDGE_RATE", "10r/s"),
            burst=int(env("CONECTADES_EDGE_BURST", "20")),
            token_rate=env("CONECTADES_EDGE_TOKEN_RATE", "1r/s"),
            conn_limit=int(env("CONECTADES_EDGE_CONN_LIMIT", "64")),
            daemon=daemon,
        ),
        # "0" keeps the microcache on disk under var/edge (module docstring).
        memory_cache=env("CONECTADES_EDGE_CACHE_IN_MEMORY", "1") != "0",
    )
