"""The local stack under `var/`: PostgreSQL, Redis (the response cache), the API
workers (Nginx slots in as a further service). Used by `./start.sh`;
`python -m infra.stack --help`. `DATABASE_URL` / `REDIS_URL` in the environment
point it at existing servers instead of the local ones.

Every service has `start()`, `stop()` and `status()`; `up` starts them in order,
`down` stops them in reverse order. Secrets are generated once into
`var/stack.env` (mode 0600) and reused, so running `up` again is harmless.
Stacks started at the same time on one machine (two clones) take turns: `up` holds
a machine-wide lock from choosing its ports until its servers listen on them, so
the second sees the first's ports taken and picks free ones (`starting_lock`).

The parts: settings, paths and secrets (infra/stack_settings.py), the services
under supervisord (infra/stack_services.py), the demo tenant and data
(infra/stack_demo.py); this module is the command (`up`, `stop`, `status`, `env`).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shlex
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

from infra.nginx import stack_edge
from infra.process import wait_gone
from infra.stack_demo import demo, seed_demo, warm_cache
from infra.stack_services import services, supervisor
from infra.stack_settings import ENV_FILE, MAIL_DIR, VAR, Settings, load_env

# Machine-wide (not under var/): every clone on this machine competes for 8080 & co.
START_LOCK = Path(tempfile.gettempdir()) / "conectades-start.lock"


@contextlib.contextmanager
def starting_lock(path: Path = START_LOCK, *, quiet: bool = False) -> Iterator[None]:
    """Held while a stack picks its ports and starts: without it two clones started
    at once both found 8080 free, one edge failed to bind, and its readiness check
    was answered by the other stack's edge (the printed key then got 401)."""
    # Read-only: flock needs no write access, so a lock file another user created
    # (mode 0644 in the shared /tmp) serves every user.
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not quiet:
                print("== waiting for another ./start.sh on this machine to finish starting")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def cmd_up(settings: Settings) -> None:
    stop_unsupervised(settings)
    if not settings.external_db:
        # First: in a private folder the cluster goes under /var/tmp (where the
        # `postgres` user can reach it), and the supervisor's command must name
        # that path, not the link in var/ that the server cannot traverse.
        settings.local_pg.init()
    sup = supervisor(settings)
    print("== supervisor")
    sup.start_daemon()
    for svc in services(settings, sup):
        print(f"== {svc.name}")
        svc.start()
    creds = demo(settings)
    seed_demo(settings)
    print("== cache")
    warm_cache(settings)
    url = settings.api_url
    edge = f"http://127.0.0.1:{settings.env['EDGE_PORT']}"
    mail = (
        f"via {settings.external_smtp} (CONECTADES_SMTP_HOST)"
        if settings.external_smtp
        else f"{MAIL_DIR}/  (one .eml file per message; local SMTP sink, nothing leaves)"
    )
    print(
        f"""
Conectades is up.

  Edge (use this)  {edge}
  API (direct)     {url}
  API docs         {edge}/api/docs/
  Health           {edge}/health/ready
  Metrics          {edge}/metrics  (loopback only)
  Redis cache      {settings.redis_url}
  Public           {edge}/api/public/campaigns
  Webhooks         the worker delivers them; 127.0.0.1 allowed as a destination
  Sent email       {mail}

  Tenant           {creds["tenant"]}
  API key          {creds["api_key"]}
  Staff login      {creds["username"]} / {creds["password"]}

Try:
  curl -H 'Authorization: Bearer {creds["api_key"]}' {edge}/api/v1/campaigns
  curl -X POST {edge}/api/token/ -H 'Content-Type: application/json' \\
       -d '{{"username": "admin", "password": "{creds["password"]}"}}'

Logs in var/log/. Stop with ./start.sh stop.
"""
    )


def cmd_down(settings: Settings) -> None:
    print("== stopping every program, then the supervisor")
    supervisor(settings).shutdown()
    stop_unsupervised(settings)
    # The edge's microcache in memory (infra/nginx.py) goes with the stack.
    stack_edge(VAR, int(settings.env["EDGE_PORT"]), settings.api_url).remove_memory_cache()


def stop_unsupervised(settings: Settings) -> None:
    """Stop what a stack from before the supervisor started (each daemonized on its
    own, found by its pid file); nothing when there is none."""
    old_api = VAR / "run" / "api.pid"
    try:
        pid = int(old_api.read_text())
        os.killpg(pid, signal.SIGTERM)
        wait_gone(pid, 15)
    except (OSError, ValueError):
        pass
    old_api.unlink(missing_ok=True)
    # A supervised edge found here is started again by its supervisor, with the same
    # config: its cache in memory stays.
    stack_edge(VAR, int(settings.env["EDGE_PORT"]), settings.api_url).stop(keep_cache=True)
    if not settings.external_redis:
        settings.local_redis.stop()
    if not settings.external_db:
        settings.local_pg.stop()


def cmd_status(settings: Settings) -> int:
    healthy = True
    sup = supervisor(settings)
    print(f"{'supervisor':<10} " + (f"running (pid {sup._pid()})" if sup.running() else "stopped"))
    for svc in services(settings, sup):
        state = svc.status()
        if state != "-":
            print(f"{svc.name:<10} {state}")
            healthy = healthy and not state.startswith(("stopped", "not ready"))
    return 0 if healthy else 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="start.sh",
        description="Run the Conectades stack as project-local processes under var/.",
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="up",
        choices=["up", "stop", "status", "env"],
        help="up (default): start everything and print URLs and credentials; "
        "stop: stop every process it started; status: show each service; "
        "env: print the environment for running the CLI against the stack",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("CONECTADES_WORKERS", os.cpu_count() or 1)),
        help="API worker processes (default: one per core, or CONECTADES_WORKERS)",
    )
    args = parser.parse_args(argv)
    if args.command == "up":
        with starting_lock():
            cmd_up(Settings(env=load_env(), workers=args.workers))
        return 0
    # Only a first `status` or `env` picks ports; and quietly: `eval "$(./start.sh env)"`
    # reads what `env` prints.
    picks_ports = not ENV_FILE.exists()
    with starting_lock(quiet=True) if picks_ports else contextlib.nullcontext():
        settings = Settings(env=load_env(), workers=args.workers)
    if args.command == "stop":
        cmd_down(settings)
    elif args.command == "status":
        return cmd_status(settings)
    elif args.command == "env":
        for key in (
            "CONECTADES_DATABASE_URL",
            "CONECTADES_ADMIN_DATABASE_URL",
            "CONECTADES_REDIS_URL",
        ):
            print(f"export {key}={shlex.quote(settings.process_env()[key])}")
        print(f"export CONECTADES_JWT_SECRET={shlex.quote(settings.env['JWT_SECRET'])}")
        for key in ("CONTACT_KEYS", "CONTACT_HMAC_KEY"):
            print(f"export CONECTADES_{key}={shlex.quote(settings.env[key])}")
        for key, value in settings.mail_env().items():
            print(f"export {key}={shlex.quote(value)}")
        print(f"export CONECTADES_API_URL={shlex.quote(settings.api_url)}")
        edge = f"http://127.0.0.1:{settings.env['EDGE_PORT']}"
        print(f"export CONECTADES_EDGE_URL={shlex.quote(edge)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
