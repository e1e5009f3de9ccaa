"""A project-local PostgreSQL cluster: init, start, stop, status.

PostgreSQL refuses to run as root, so when we are root the server runs as the
`postgres` system user (created by the Debian package) and the data directory is
handed to it. Only TCP on 127.0.0.1 is used; no Unix socket, so the cluster never
clashes with a system server.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from infra.process import reachable_by_server, server_dir, wait_listening


class PostgresError(RuntimeError):
    pass


def find_bindir() -> Path:
    """The directory with initdb/pg_ctl/postgres (the newest installed version)."""
    env = os.environ.get("CONECTADES_PG_BINDIR")
    if env:
        return Path(env)
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
    )
    for candidate in reversed(candidates):
        if (Path(candidate) / "postgres").exists():
            return Path(candidate)
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and (Path(out.stdout.strip()) / "postgres").exists():
            return Path(out.stdout.strip())
    raise PostgresError("PostgreSQL server binaries not found (install postgresql)")


def client_bindir(server_major: int) -> Path:
    """Where pg_dump/pg_restore for a server of this major version are: that version's,
    else the oldest newer one (they read older servers and archives, not newer)."""
    env = os.environ.get("CONECTADES_PG_BINDIR")
    if env:
        return Path(env)
    installed = sorted(
        (int(Path(p).parent.name), Path(p))
        for p in glob.glob("/usr/lib/postgresql/*/bin")
        if Path(p).parent.name.isdigit() and (Path(p) / "pg_dump").exists()
    )
    for major, path in installed:
        if major >= server_major:
            return path
    found = shutil.which("pg_dump")
    if found:
        return Path(found).parent
    raise PostgresError(
        f"pg_dump for PostgreSQL {server_major} not found (install postgresql-client-"
        f"{server_major} or set CONECTADES_PG_BINDIR)"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@dataclass
class LocalPostgres:
    datadir: Path
    port: int
    superuser: str = "postgres"
    password: str = ""
    # Where `start` last sent the server's log (moved beside the data directory when
    # the server's user cannot reach the folder asked for).
    logfile: Path | None = None

    @property
    def bindir(self) -> Path:
        return find_bindir()

    @property
    def admin_dsn(self) -> str:
        auth = f"{self.superuser}:{self.password}@" if self.password else f"{self.superuser}@"
        return f"postgresql://{auth}127.0.0.1:{self.port}/postgres"

    def dsn(self, user: str, password: str, database: str = "postgres") -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def initialized(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def __post_init__(self) -> None:
        if self.datadir.is_symlink():
            self.datadir = self.datadir.resolve()

    def init(self, settings: dict[str, str] | None = None) -> None:
        """Create the cluster with a password-protected superuser (scram over TCP)."""
        if self.initialized():
            return
        self.datadir = server_dir(self.datadir)
        self.datadir.mkdir(parents=True, exist_ok=True)
        pwfile = self.datadir.parent / f".{self.datadir.name}.pw"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.datadir, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        os.chmod(self.datadir, 0o700)
        try:
            cmd = [
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                self.superuser,
                "--auth-host=scram-sha-256",
                "--auth-local=peer",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                f"--pwfile={pwfile}",
            ]
            run = subprocess.run(_as_server_user(cmd), capture_output=True, text=True)
            if run.returncode != 0:
                raise PostgresError(f"initdb failed: {run.stderr.strip()}")
        finally:
            pwfile.unlink(missing_ok=True)
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": "''",
            "max_connections": "200",
            "shared_buffers": "256MB",
            "synchronous_commit": "on",
            "fsync": "on",
            "log_min_messages": "warning",
            "logging_collector": "off",
        }
        conf.update(settings or {})
        with open(self.datadir / "postgresql.auto.conf", "a") as f:
            for key, value in conf.items():
                f.write(f"{key} = {value}\n")

    def command(self) -> list[str]:
        """The postmaster in the foreground (for a supervisor; `start()` uses pg_ctl),
        as the `postgres` user when we are root (see `server_user`)."""
        return [str(self.bindir / "postgres"), "-D", str(self.datadir)]

    @staticmethod
    def server_user() -> str | None:
        return "postgres" if os.geteuid() == 0 else None

    def running(self) -> bool:
        if not self.initialized():
            return False
        run = subprocess.run(
            _as_server_user([str(self.bindir / "pg_ctl"), "status", "-D", str(self.datadir)]),
            capture_output=True,
            text=True,
        )
        return run.returncode == 0

    def start(self, logfile: Path, timeout: float = 30) -> None:
        if self.running():
            return
        if not reachable_by_server(logfile.parent):
            logfile = self.datadir.parent / logfile.name
        self.logfile = logfile
        logfile.parent.mkdir(parents=True, exist_ok=True)
        logfile.touch()
        if os.geteuid() == 0:
            shutil.chown(logfile, "postgres", "postgres")
        cmd = [
            str(self.bindir / "pg_ctl"),
            "start",
            "-w",
            "-t",
            str(int(timeout)),
            "-D",
            str(self.datadir),
            "-l",
            str(logfile),
            "-o",
            f"-p {self.port}",
        ]
        run = subprocess.run(_as_server_user(cmd), capture_output=True, text=True)
        if run.returncode != 0:
            tail = logfile.read_text()[-2000:] if logfile.exists() else ""
            raise PostgresError(f"PostgreSQL did not start: {run.stderr.strip()}\n{tail}")
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 30) -> None:
        if not wait_listening(self.port, timeout):
            raise PostgresError(f"PostgreSQL not accepting connections on port {self.port}")

    def stop(self, mode: str = "fast") -> None:
        if not self.running():
            return
        subprocess.run(
            _as_server_user(
                [str(self.bindir / "pg_ctl"), "stop", "-w", "-m", mode, "-D", str(self.datadir)]
            ),
            capture_output=True,
            text=True,
        )

    def destroy(self) -> None:
        self.stop(mode="immediate")
        shutil.rmtree(self.datadir, ignore_errors=True)
        if self.datadir.parent.name.startswith("conectades-"):
            shutil.rmtree(self.datadir.parent, ignore_errors=True)
