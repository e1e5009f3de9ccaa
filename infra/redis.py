"""A project-local Redis for the response cache: start, stop, kill, pause, status.

The server is a cache only: no RDB snapshots, no AOF, a memory cap with LRU
eviction. It listens on 127.0.0.1 only and daemonizes with its pid and log file
under its directory. Redis runs fine as root, so unlike PostgreSQL no user switch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from infra.postgres import free_port
from infra.process import pid_from_file, stop_pid, wait_gone

__all__ = ["LocalRedis", "RedisError", "free_port"]


class RedisError(RuntimeError):
    pass


@dataclass
class LocalRedis:
    dir: Path
    port: int
    maxmemory: str = "256mb"
    maxmemory_policy: str = "allkeys-lru"
    # False: run in the foreground under a supervisor (`command()`), not `start()`.
    daemonize: bool = True

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def conf_path(self) -> Path:
        return self.dir / "redis.conf"

    @property
    def pidfile(self) -> Path:
        return self.dir / "redis.pid"

    @property
    def logfile(self) -> Path:
        return self.dir / "redis.log"

    def config(self) -> str:
        settings = {
            "bind": "127.0.0.1",
            "port": str(self.port),
            "protected-mode": "yes",
            "daemonize": "yes" if self.daemonize else "no",
            "supervised": "no",
            "pidfile": str(self.pidfile),
            "logfile": str(self.logfile),
            "loglevel": "notice",
            "dir": str(self.dir),
            "save": '""',
            "appendonly": "no",
            "maxmemory": self.maxmemory,
            "maxmemory-policy": self.maxmemory_policy,
            # DEBUG SLEEP (to simulate a stalled server in tests) only from loopback.
            "enable-debug-command": "local",
        }
        return "".join(f"{key} {value}\n" for key, value in settings.items())

    def _client(self, timeout: float = 1.0) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    def _pid(self) -> int | None:
        return pid_from_file(self.pidfile)

    def ping(self) -> bool:
        try:
            with self._client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def running(self) -> bool:
        return self._pid() is not None and self.ping()

    def prepare(self) -> None:
        """The directory and config file (what `command()` needs)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.config())

    def command(self) -> list[str]:
        return ["redis-server", str(self.conf_path)]

    def start(self, timeout: float = 15) -> None:
        if self.running():
            return
        self.prepare()
        self.pidfile.unlink(missing_ok=True)
        run = subprocess.run(self.command(), capture_output=True, text=True, timeout=timeout)
        if run.returncode != 0:
            raise RedisError(f"redis-server failed: {run.stderr.strip() or run.stdout.strip()}")
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ping():
                return
            time.sleep(0.05)
        tail = self.logfile.read_text()[-2000:] if self.logfile.exists() else ""
        raise RedisError(f"Redis not answering on port {self.port}\n{tail}")

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM (a clean shutdown; nothing is saved with `save ""`), SIGKILL if stuck."""
        pid = self._pid()
        if pid is None:
            return
        stop_pid(pid, signal.SIGTERM, timeout)
        self.pidfile.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL, as a crash would (for tests of the fail-open path)."""
        pid = self._pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid, 10)
        self.pidfile.unlink(missing_ok=True)

    def pause(self, seconds: float) -> None:
        """Stall every client's commands for `seconds` (CLIENT PAUSE ALL); returns at once.

        A stalled server as the API sees it: connections are accepted, replies never
        come. It cannot be ended early (Redis pauses CLIENT UNPAUSE too)."""
        with self._client() as client:
            client.execute_command("CLIENT", "PAUSE", str(int(seconds * 1000)), "ALL")

    def flushall(self) -> None:
        with self._client() as client:
            client.flushall()
