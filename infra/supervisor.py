"""The local stack's supervisor: supervisord (the `supervisor` package) runs the
stack's long-running processes in the foreground and starts again any that dies.

Why supervisord and not a loop of our own: restarting a dead process is the easy
part; backoff for a process that dies at once (`startsecs`, `startretries`, then
FATAL instead of a restart storm), stopping in reverse order with a timeout and an
escalation, logs per program, and an operator's `supervisorctl` to see and act
are what a hand-written loop gets wrong or leaves out (docs/decisions.md).

The programs run with supervisord's environment (the stack's settings, secrets
included), so no secret is written into its config file. Each program is started
by the stack in order (`start`), after what it needs is ready; supervisord's own
autostart is off for that reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.process import pid_from_file, wait_gone

__all__ = ["Program", "Supervisor", "SupervisorError"]


class SupervisorError(RuntimeError):
    pass


@dataclass(frozen=True)
class Program:
    name: str
    command: Sequence[str]
    priority: int  # start order; supervisord stops in the reverse order
    log: Path
    directory: Path | None = None
    user: str | None = None  # run as this user (PostgreSQL refuses root)
    # "true": restart whenever it ends; "unexpected": only on an exit code not in
    # `exitcodes` (PostgreSQL: a clean shutdown is 0, a crash is not).
    autorestart: str = "true"
    exitcodes: str = "0"
    stopsignal: str = "TERM"
    stopwaitsecs: int = 20
    # Up this long counts as started; dying sooner counts towards startretries.
    startsecs: int = 1
    startretries: int = 5
    # Send the stop signal to the whole process group, and SIGKILL (after
    # stopwaitsecs) to it: the API's main process gets SIGTERM alone and stops its
    # workers itself, but if it has to be killed its workers go with it.
    stopasgroup: bool = False
    killasgroup: bool = True

    def section(self) -> str:
        lines = {
            "command": " ".join(_quote(arg) for arg in self.command),
            "priority": str(self.priority),
            "autostart": "false",
            "autorestart": self.autorestart,
            "exitcodes": self.exitcodes,
            "startsecs": str(self.startsecs),
            "startretries": str(self.startretries),
            "stopsignal": self.stopsignal,
            "stopwaitsecs": str(self.stopwaitsecs),
            "stopasgroup": str(self.stopasgroup).lower(),
            "killasgroup": str(self.killasgroup).lower(),
            "redirect_stderr": "true",
            "stdout_logfile": str(self.log),
            "stdout_logfile_maxbytes": "64MB",
            "stdout_logfile_backups": "1",
        }
        if self.directory is not None:
            lines["directory"] = str(self.directory)
        if self.user is not None:
            lines["user"] = self.user
        body = "".join(f"{key}={value}\n" for key, value in lines.items())
        return f"[program:{self.name}]\n{body}"


def _quote(arg: str) -> str:
    """A command word for supervisord (shlex rules; `%` is its expansion marker)."""
    arg = arg.replace("%", "%%")
    if re.fullmatch(r"[\w@%+=:,./-]+", arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Supervisor:
    dir: Path  # config, socket, pid file and its own log
    programs: Sequence[Program]
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    # Signals what a program leaves of its process group when it exits on its own
    # (infra/reaper.py); off for supervisors that do not need it.
    reaper: bool = True

    @property
    def conf_path(self) -> Path:
        return self.dir / "supervisord.conf"

    @property
    def pidfile(self) -> Path:
        return self.dir / "supervisord.pid"

    @property
    def logfile(self) -> Path:
        return self.dir / "supervisord.log"

    @property
    def socket_path(self) -> Path:
        path = self.dir / "supervisor.sock"
        # AF_UNIX paths are limited to 107 bytes: a deep project folder gets a
        # short one (still private: the folder is 0700).
        if len(str(path)) > 100:
            digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
            short = Path(tempfile.gettempdir()) / f"conectades-{digest}"
            short.mkdir(mode=0o700, exist_ok=True)
            st = short.stat()
            if st.st_uid != os.geteuid() or st.st_mode & 0o077:
                raise SupervisorError(f"{short} is not a private folder of this user")
            path = short / "supervisor.sock"
        return path

    def render(self) -> str:
        sock = self.socket_path
        head = f"""; Rendered by infra/supervisor.py; do not edit (./start.sh renders it again).
[unix_http_server]
file={sock}
chmod=0700

[supervisord]
logfile={self.logfile}
logfile_maxbytes=16MB
logfile_backups=1
pidfile={self.pidfile}
directory={self.dir}
nodaemon=false
silent=true

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{sock}

"""
        sections = [p.section() for p in self.programs]
        if self.reaper:
            reaper = " ".join(_quote(a) for a in (sys.executable, "-m", "infra.reaper"))
            sections.append(
                "[eventlistener:reaper]\n"
                f"command={reaper}\n"
                f"directory={Path(__file__).resolve().parent.parent}\n"
                "events=PROCESS_STATE_EXITED\n"
                "autostart=true\nautorestart=true\n"
                f"stderr_logfile={self.logfile.with_name('reaper.log')}\n"
            )
        return head + "\n".join(sections)

    def _pid(self) -> int | None:
        return pid_from_file(self.pidfile)

    def running(self) -> bool:
        return self._pid() is not None

    @contextlib.contextmanager
    def rpc(self) -> Iterator[Any]:
        """supervisord's XML-RPC `supervisor` namespace over its Unix socket."""
        from supervisor.xmlrpc import SupervisorTransport  # type: ignore[import-untyped]

        transport = SupervisorTransport(None, None, f"unix://{self.socket_path}")
        try:
            yield xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor
        finally:
            transport.close()

    def start_daemon(self, timeout: float = 15) -> None:
        """supervisord with the current config (started, or told to re-read it)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.render())
        self.conf_path.chmod(0o600)
        for program in self.programs:
            program.log.parent.mkdir(parents=True, exist_ok=True)
        if self.running():
            # A program whose command changed keeps running as it is until it is
            # restarted; one that is new is added, one that is gone is stopped.
            with self.rpc() as rpc:
                added, _changed, removed = rpc.reloadConfig()[0]
                for name in removed:
                    rpc.stopProcessGroup(name)
                    rpc.removeProcessGroup(name)
                for name in added:
                    rpc.addProcessGroup(name)
            return
        supervisord = str(Path(sys.executable).parent / "supervisord")
        run = subprocess.run(
            [supervisord, "-c", str(self.conf_path)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if run.returncode != 0:
            raise SupervisorError(f"supervisord failed: {run.stderr.strip() or run.stdout}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with self.rpc() as rpc:
                    if rpc.getState()["statename"] == "RUNNING":
                        return
            except (OSError, xmlrpc.client.Fault):
                pass
            time.sleep(0.05)
        raise SupervisorError(f"supervisord not answering; see {self.logfile}")

    def start(self, name: str) -> None:
        """Start a program and wait until it counts as started (its `startsecs`)."""
        try:
            with self.rpc() as rpc:
                rpc.startProcess(name, True)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_STARTED" not in fault.faultString:
                raise SupervisorError(
                    f"{name} did not start ({fault.faultString}); see logs"
                ) from None

    def info(self) -> dict[str, dict[str, Any]]:
        """Each program's state (`statename`, `pid`, `description`), by name."""
        if not self.running():
            return {}
        try:
            with self.rpc() as rpc:
                return {p["name"]: p for p in rpc.getAllProcessInfo()}
        except (OSError, xmlrpc.client.Fault):
            return {}

    def pid(self, name: str) -> int | None:
        found = self.info().get(name)
        if found is None or not found["pid"]:
            return None
        return int(found["pid"])

    def spawns(self, name: str) -> int:
        """How many times supervisord started `name` since supervisord itself started."""
        try:
            text = self.logfile.read_text(errors="replace")
        except OSError:
            return 0
        text = text.rsplit("supervisord started with pid", 1)[-1]
        return text.count(f"spawned: '{name}' with pid")

    def shutdown(self, timeout: float = 60) -> None:
        """Stop every program (in reverse priority order), then supervisord."""
        pid = self._pid()
        if pid is None:
            return
        try:
            with self.rpc() as rpc:
                rpc.shutdown()
        except (OSError, xmlrpc.client.Fault):
            os.kill(pid, 15)
        if not wait_gone(pid, timeout):
            raise SupervisorError(f"supervisord (pid {pid}) did not stop in {timeout} s")
