"""The local stack's services (infra/stack.py): its programs under supervisord
(PostgreSQL and Redis only when local, the SMTP sink, the API, the worker, the
edge), and for each how it is prepared, started in order, waited for and
described (`services`). Every service has `start()`, `stop()` and `status()`."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import Any, Protocol

from db.contact_keys import reseal
from infra.nginx import LocalNginx, stack_edge
from infra.postgres import LocalPostgres
from infra.stack_settings import API_ROLE, ENV_FILE, MAIL_DIR, ROOT, VAR, Settings
from infra.supervisor import Program, Supervisor


class Service(Protocol):
    name: str

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def status(self) -> str: ...


def supervisor(settings: Settings) -> Supervisor:
    """supervisord and the stack's programs (PostgreSQL and Redis only when local)."""
    logs = VAR / "log"
    programs = []
    if not settings.external_db:
        pg = settings.local_pg
        programs.append(
            Program(
                "postgres",
                pg.command(),
                10,
                logs / "postgres.log",
                user=pg.server_user(),
                # PostgreSQL restarts its own crashed backends; the postmaster is
                # started again only when it ends on its own (a clean stop is 0).
                autorestart="unexpected",
                stopsignal="INT",  # fast shutdown
                stopwaitsecs=60,
            )
        )
    if not settings.external_redis:
        programs.append(Program("redis", settings.local_redis.command(), 20, logs / "redis.log"))
    if not settings.external_smtp:
        programs.append(
            Program("mail", mail_command(settings), 25, logs / "mail.log", directory=ROOT)
        )
    programs.append(
        Program(
            "api",
            api_command(settings),
            30,
            logs / "api.log",
            directory=ROOT,
            # The main process drains its workers on SIGTERM (api/drain.py).
            stopwaitsecs=30,
            # After a crash of the main process its orphaned workers drain for up to
            # DRAIN_TIMEOUT (5 s) before the port is free: retries back off 1, 2, 3 s...
            startretries=10,
        )
    )
    programs.append(
        Program(
            "worker",
            [sys.executable, "-m", "admin", "worker"],
            35,
            logs / "worker.log",
            directory=ROOT,
            # SIGTERM: deliveries in flight finish (CONECTADES_WORKER_SHUTDOWN_TIMEOUT, 15 s).
            stopwaitsecs=30,
        )
    )
    programs.append(
        Program("edge", edge(settings).command(), 40, logs / "edge.log", stopsignal="QUIT")
    )
    env = {**settings.process_env(), "PROMETHEUS_MULTIPROC_DIR": str(VAR / "metrics")}
    return Supervisor(VAR / "supervisor", programs, env)


def api_command(settings: Settings) -> list[str]:
    return [
        sys.executable, "-m", "sanic", "api.server:create_app", "--factory",
        "--host", "127.0.0.1", "--port", settings.env["API_PORT"],
        "--workers", str(settings.workers), "--no-motd",
    ]  # fmt: skip


def mail_command(settings: Settings) -> list[str]:
    """The local SMTP sink: every message the stack sends, one .eml file each."""
    # At niceness 10 (nice(1) execs it: same pid), like the job worker: it stands in
    # for a mail server on another machine, so on these cores it yields to the stack.
    return [
        "nice", "-n", "10",
        sys.executable, "-m", "infra.smtp_sink", "--host", "127.0.0.1",
        "--port", settings.env["SMTP_PORT"], "--dir", str(MAIL_DIR),
    ]  # fmt: skip


def port_open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def edge(settings: Settings) -> LocalNginx:
    return stack_edge(VAR, int(settings.env["EDGE_PORT"]), settings.api_url, daemon=False)


def _wait(ready: Callable[[], bool], what: str, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.1)
    raise SystemExit(f"{what} not ready after {timeout:g} s; see {log}")


@dataclass
class Supervised:
    """A program of the stack's supervisor: prepared, started in order, then waited
    for; stopped with the whole supervisor (`cmd_down`)."""

    name: str
    sup: Supervisor
    _: KW_ONLY
    prepare: Callable[[], None]
    ready: Callable[[], bool]
    describe: Callable[[], str]
    timeout: float = 30
    # The var/stack.env setting and value of the port it listens on, if any.
    port: tuple[str, int] | None = None

    def start(self) -> None:
        state = self.sup.info().get(self.name, {}).get("statename")
        if state != "RUNNING":
            if state != "STARTING":
                self._check_port_free()
            self.prepare()
            self.sup.start(self.name)
        _wait(self.ready, self.name, self.timeout, VAR / "log" / f"{self.name}.log")

    def _check_port_free(self) -> None:
        """Another process on our port would answer the readiness check in our
        server's place (the edge of another clone, its PostgreSQL): say so instead."""
        if self.port is not None and port_open(self.port[1]):
            key, number = self.port
            raise SystemExit(
                f"{self.name}: port {number} ({key} in {ENV_FILE}) is taken by another"
                f" process (another clone's stack?). Stop it, or delete the {key} line"
                " from that file to have a free port picked."
            )

    def stop(self) -> None:
        pass  # supervisord stops every program, in reverse order (cmd_down)

    def status(self) -> str:
        info = self.sup.info().get(self.name)
        if info is None:
            return "stopped"
        state = info["statename"]
        restarts = max(0, self.sup.spawns(self.name) - 1)
        supervised = f"supervised: {state.lower()}, {restarts} restarts"
        if state != "RUNNING":
            return f"stopped ({supervised}; see var/log/{self.name}.log)"
        return f"{self.describe()} (pid {info['pid']}; {supervised})"


@dataclass
class External:
    name: str
    where: str

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def status(self) -> str:
        return f"external ({self.where})"


def _api_health(settings: Settings) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(settings.api_url + "/health", timeout=2) as r:  # noqa: S310
            body: dict[str, Any] = json.load(r)
            return body
    except urllib.error.HTTPError as exc:  # 503: degraded, with the same body
        try:
            degraded: dict[str, Any] = json.load(exc)
            return degraded
        except ValueError:
            return None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _api_ready(settings: Settings) -> bool:
    try:
        url = settings.api_url + "/health/ready"
        with urllib.request.urlopen(url, timeout=1) as r:  # noqa: S310 (our own http URL)
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _describe_api(settings: Settings) -> str:
    ready = "ready" if _api_ready(settings) else "not ready"
    workers = (_api_health(settings) or {}).get("workers")
    if not workers:
        return f"{ready} at {settings.api_url}"
    return (
        f"{ready} at {settings.api_url}, {workers['alive']}/{workers['configured']} workers"
        f" live, {workers['restarts']} worker restarts"
        + (f", blocked: {workers['blocked']}" if workers["blocked"] else "")
    )


def _prepare_api() -> None:
    from cache import prepare_metrics_dir

    # Fresh per start: /metrics sums the counters of the workers started now.
    prepare_metrics_dir(VAR / "metrics")


class Migrations:
    name = "migrations"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def start(self) -> None:
        asyncio.run(self._migrate())

    async def _migrate(self) -> None:
        import asyncpg

        from db import migrate

        conn = await asyncpg.connect(self.settings.admin_dsn)
        try:
            applied = await migrate.migrate(conn)
            await migrate.ensure_api_role(conn, API_ROLE, self.settings.env["API_DB_PASSWORD"])
            # Rows from before migration 0018 (or under a key since rotated out of
            # first place) sealed under the stack's newest key: `donor rotate-keys`.
            sealed = await reseal(conn, self.settings.keyring())
        finally:
            await conn.close()
        for m in applied:
            print(f"  applied migration {m.path.name}")
        if sealed.encrypted or sealed.rotated:
            print(f"  encrypted {sealed.encrypted + sealed.rotated} donors' contacts and messages")
        for line in sealed.unreadable[:5]:
            print(f"  unreadable: {line}")

    def stop(self) -> None:
        pass

    def status(self) -> str:
        return "-"


def services(settings: Settings, sup: Supervisor | None = None) -> list[Service]:
    sup = sup or supervisor(settings)
    found: list[Service] = []
    if settings.external_db:
        found.append(External("postgres", "DATABASE_URL"))
    else:
        pg = settings.local_pg
        found.append(
            Supervised(
                "postgres",
                sup,
                prepare=pg.init,
                ready=lambda: pg_ready(pg),
                describe=lambda: f"running on 127.0.0.1:{pg.port}",
                port=("PG_PORT", pg.port),
            )
        )
    if settings.external_redis:
        found.append(External("redis", "REDIS_URL"))
    else:
        redis = settings.local_redis
        found.append(
            Supervised(
                "redis",
                sup,
                prepare=redis.prepare,
                ready=redis.ping,
                describe=lambda: f"running on 127.0.0.1:{redis.port}",
                port=("REDIS_PORT", redis.port),
            )
        )
    if settings.external_smtp:
        found.append(External("mail", "CONECTADES_SMTP_HOST"))
    else:
        mail_port = int(settings.env["SMTP_PORT"])
        found.append(
            Supervised(
                "mail",
                sup,
                prepare=lambda: MAIL_DIR.mkdir(parents=True, exist_ok=True),
                ready=lambda: port_open(mail_port),
                describe=lambda: f"SMTP sink on 127.0.0.1:{mail_port}, writing {MAIL_DIR}/",
                port=("SMTP_PORT", mail_port),
            )
        )
    found.append(Migrations(settings))
    found.append(
        Supervised(
            "api",
            sup,
            prepare=_prepare_api,
            ready=lambda: _api_ready(settings),
            describe=lambda: _describe_api(settings),
            port=("API_PORT", int(settings.env["API_PORT"])),
        )
    )
    found.append(
        Supervised(
            "worker",
            sup,
            prepare=lambda: None,
            ready=lambda: True,  # running once supervisord says so (its startsecs)
            describe=lambda: "delivering webhooks and email (var/log/worker.log)",
        )
    )
    nginx = edge(settings)
    found.append(
        Supervised(
            "edge",
            sup,
            prepare=nginx.prepare,
            ready=nginx.running,
            describe=lambda: f"running on {nginx.url}",
            port=("EDGE_PORT", int(settings.env["EDGE_PORT"])),
        )
    )
    return found


def pg_ready(pg: LocalPostgres) -> bool:
    return port_open(pg.port)
