"""Watching daemonized servers (Redis, Nginx, PgBouncer) by pid: they are not our children."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path


def alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie (exited, not yet reaped by init) counts as gone:
    the daemonized server is not our child, so we cannot reap it ourselves."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def pid_from_file(path: Path) -> int | None:
    """The pid a server wrote to `path`, if that process still runs."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def wait_gone(pid: int, timeout: float) -> bool:
    """Poll until `pid` is gone; False if it still runs after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


def stop_pid(pid: int, sig: int, timeout: float) -> None:
    """Send `sig` (the server's clean shutdown) and wait; SIGKILL if it is still there."""
    os.kill(pid, sig)
    if not wait_gone(pid, timeout):
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid, timeout)


def wait_listening(port: int, timeout: float) -> bool:
    """Poll until something accepts TCP connections on 127.0.0.1:`port`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def on_tmpfs(path: Path) -> bool:
    """Whether `path` (resolved) lives on a tmpfs, i.e. in memory: the type of the
    innermost mount holding it, from /proc/self/mounts."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return False
    real = path.resolve()
    holding = [
        (len(Path(f[1]).parts), f[2])
        for f in map(str.split, lines)
        if len(f) > 2 and real.is_relative_to(f[1])
    ]
    return bool(holding) and max(holding)[1] == "tmpfs"


def reachable_by_server(path: Path) -> bool:
    """Whether a server that drops root (PostgreSQL as `postgres`, nginx workers as
    `nobody`) can reach `path`: every parent searchable by others."""
    if os.geteuid() != 0:
        return True
    for parent in [path, *path.parents]:
        if parent.exists() and not os.stat(parent).st_mode & 0o001:
            return False
    return True


def server_dir(preferred: Path) -> Path:
    """`preferred`, or when running as root inside a private folder (e.g. /root),
    a folder under /var/tmp that the server's user can reach, linked from
    `preferred` so the data still shows up in the project."""
    preferred = preferred.absolute()
    if preferred.is_symlink():
        return preferred.resolve()
    if reachable_by_server(preferred.parent):
        return preferred
    holder = Path(tempfile.mkdtemp(prefix="conectades-", dir="/var/tmp"))
    holder.chmod(0o711)
    target = holder / preferred.name
    preferred.parent.mkdir(parents=True, exist_ok=True)
    if preferred.exists():
        shutil.rmtree(preferred)
    preferred.symlink_to(target)
    return target
