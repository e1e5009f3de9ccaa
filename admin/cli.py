"""`conectades`: the operator CLI. One module per command group in admin/commands/
(db, tenant, key, user, donor, cache, edge, chaos; seed, audit, serve and worker at
the top level); errors end one way (admin/runtime.py: CliError exits 1 with one
line, raise_cli exits 2 for a usage error).

Configuration comes from the environment: CONECTADES_ADMIN_DATABASE_URL (the owner
role: migrations and admin work) and CONECTADES_DATABASE_URL (the API's role);
the `cache` commands also CONECTADES_REDIS_URL and CONECTADES_API_URL.
"""

from __future__ import annotations

import sys

import typer

from admin.commands import audit, cache, chaos, db, donor, edge, key, seed, serve, tenant, user
from admin.devtools import add_dev_commands
from admin.runtime import CliError, err

app = typer.Typer(
    name="conectades",
    help="Operate Conectades: migrations, tenants, API keys, staff users, demo data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(db.db_app, name="db")
app.add_typer(tenant.tenant_app, name="tenant")
app.add_typer(key.key_app, name="key")
app.add_typer(user.user_app, name="user")
app.add_typer(cache.cache_app, name="cache")
app.add_typer(edge.edge_app, name="edge")
app.add_typer(chaos.chaos_app, name="chaos")
app.add_typer(donor.donor_app, name="donor")
add_dev_commands(app)
app.command("seed")(seed.seed)
app.command("audit")(audit.audit_list)
app.command("serve")(serve.serve)
app.command("worker")(serve.worker)


def main() -> None:
    try:
        app()
    except CliError as exc:  # raised outside `run`: still one clear line, no traceback
        err.print(f"[bold red]error:[/] {exc}", markup=True)
        sys.exit(1)
