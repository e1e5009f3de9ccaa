"""A project-local PgBouncer in transaction mode in front of a PostgreSQL: start, stop.

What a managed PostgreSQL with a pooler looks like to the API: every transaction
may run on a different server connection, and a server connection is shared by
all clients. Clients authenticate with SCRAM against an `auth_file` holding the
roles' passwords, which PgBouncer also uses to log in to PostgreSQL.

Two settings the API needs from any PgBouncer in front of it (PgBouncer 1.18, as
in Debian; it rejects startup parameters it does not know):

- `ignore_startup_parameters = jit`: asyncpg sends `jit=off` at connect
  (db/pool.py); here `connect_query` sets it on each server connection instead;
- the API's `CONECTADES_DB_STATEMENT_CACHE_SIZE=0`: named prepared statements
  would land on another server connection.

PgBouncer refuses to run as root, so as root it runs as the `postgres` system
user, in a directory that user can reach (as infra/postgres.py does).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from infra.postgres import free_port
from infra.process import pid_from_file, server_dir, stop_pid, wait_listening

__all__ = ["LocalPgBouncer", "PgBouncerError", "free_port", "pgbouncer_binary"]


class PgBouncerError(RuntimeError):
    pass


def pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None
    )
    if not found:
        raise PgBouncerError("pgbouncer is not installed (apt-get install -y pgbouncer)")
    return found


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


@dataclass
class LocalPgBouncer:
    dir: Path
    port: int
    server_port: int
    # role -> password, for clients and for PgBouncer's own logins to PostgreSQL.
    users: dict[str, str]
    server_host: str = "127.0.0.1"
    pool_mode: str = "transaction"
    default_pool_size: int = 2
    max_client_conn: int = 1000
    settings: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dir.is_symlink():
            self.dir = self.dir.resolve()

    @property
    def pidfile(self) -> Path:
        return self.dir / "pgbouncer.pid"

    @property
    def logfile(self) -> Path:
        return self.dir / "pgbouncer.log"

    @property
    def conf_path(self) -> Path:
        return self.dir / "pgbouncer.ini"

    def dsn(self, user: str, database: str = "postgres") -> str:
        return f"postgresql://{user}:{self.users[user]}@127.0.0.1:{self.port}/{database}"

    def config(self) -> str:
        server = f"host={self.server_host} port={self.server_port}"
        settings = {
            "listen_addr": "127.0.0.1",
            "listen_port": str(self.port),
            "unix_socket_dir": str(self.dir),
            "auth_type": "scram-sha-256",
            "auth_file": str(self.dir / "userlist.txt"),
            "pool_mode": self.pool_mode,
            "default_pool_size": str(self.default_pool_size),
            "max_client_conn": str(self.max_client_conn),
            "ignore_startup_parameters": "jit",
            "logfile": str(self.logfile),
            "pidfile": str(self.pidfile),
            # `SHOW SERVERS` etc. on the `pgbouncer` console, for tests and operators.
            "stats_users": ", ".join(self.users),
            "log_connections": "0",
            "log_disconnections": "0",
            **self.settings,
        }
        return f"[databases]\n* = {server} connect_query='SET jit = off'\n[pgbouncer]\n" + "".join(
            f"{k} = {v}\n" for k, v in settings.items()
        )

    def _pid(self) -> int | None:
        return pid_from_file(self.pidfile)

    def start(self, timeout: float = 15) -> None:
        if self._pid() is not None:
            return
        self.dir = server_dir(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.config())
        auth = self.dir / "userlist.txt"
        auth.write_text("".join(f"{_quote(u)} {_quote(p)}\n" for u, p in self.users.items()))
        auth.chmod(0o600)
        cmd = [pgbouncer_binary(), "-d", "-q", str(self.conf_path)]
        if os.geteuid() == 0:
            for path in (self.dir, self.conf_path, auth):
                shutil.chown(path, "postgres", "postgres")
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if run.returncode != 0:
            raise PgBouncerError(f"pgbouncer failed: {run.stderr.strip() or self._log_tail()}")
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 15) -> None:
        if not wait_listening(self.port, timeout):
            raise PgBouncerError(f"pgbouncer not listening on {self.port}\n{self._log_tail()}")

    def show(self, what: str, user: str) -> list[dict[str, str]]:
        """`SHOW <what>` on the admin console (simple protocol only, hence psql)."""
        run = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", user, "-d", "pgbouncer",
             "-A", "-F", "\t", "-P", "footer=off", "-c", f"SHOW {what}"],
            env={**os.environ, "PGPASSWORD": self.users[user]},
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
        header, *rows = run.stdout.splitlines()
        names = header.split("\t")
        return [dict(zip(names, row.split("\t"), strict=True)) for row in rows]

    def _log_tail(self) -> str:
        return self.logfile.read_text()[-2000:] if self.logfile.exists() else ""

    def stop(self, timeout: float = 10) -> None:
        """SIGINT: PgBouncer's safe shutdown (waits for transactions); SIGKILL if stuck."""
        pid = self._pid()
        if pid is None:
            return
        stop_pid(pid, signal.SIGINT, timeout)
        self.pidfile.unlink(missing_ok=True)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.dir.parent.name.startswith("conectades-"):
            shutil.rmtree(self.dir.parent, ignore_errors=True)
