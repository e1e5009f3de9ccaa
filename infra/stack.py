"""The local stack under `var/`: PostgreSQL, Redis (the response cache), the API
workers (Nginx slots in as a further service). Used by `./start.sh`;
`python -m infra.stack --help`. `DATABASE_URL` / `REDIS_URL` in the environment
point it at existing servers instead of the local ones.

Every service has `start()`, `stop()` and `status()`; `up` starts them in order,
`down` stops them in reverse order. Secrets are generated once into
`var/stack.env` (mode 0600) and reused, so running `up` again is harmless.

The parts: settings, paths and secrets (infra/stack_settings.py), the services
under supervisord (infra/stack_services.py), the demo tenant and data
(infra/stack_demo.py); this module is the command (`up`, `stop`, `status`, `env`).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal

from infra.nginx import stack_edge
from infra.process import wait_gone
from infra.stack_demo import demo, seed_demo
from infra.stack_services import services, supervisor
from infra.stack_settings import MAIL_DIR, VAR, Settings, load_env


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
    stack_edge(VAR, int(settings.env["EDGE_PORT"]), settings.api_url).stop()
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
    settings = Settings(env=load_env(), workers=args.workers)
    if args.command == "up":
        cmd_up(settings)
    elif args.command == "stop":
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
