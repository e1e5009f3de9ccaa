"""`conectades edge`: render, reload and stats of the local stack's Nginx."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from admin.common import (
    JsonOpt,
)
from admin.runtime import (
    CliError,
    emit_json,
    out,
)

edge_app = typer.Typer(help="The Nginx edge of the local stack (var/edge).", no_args_is_help=True)


def _edge() -> Any:
    from infra.nginx import stack_edge
    from infra.stack_settings import VAR, load_env

    env = load_env()
    api = f"http://127.0.0.1:{env['API_PORT']}"
    return stack_edge(VAR, int(env["EDGE_PORT"]), api, daemon=False)  # as the stack runs it


@edge_app.command("render")
def edge_render() -> None:
    """Render var/edge/nginx.conf from edge/ and the environment, and check it (nginx -t)."""
    from infra.nginx import NginxError

    edge = _edge()
    try:
        out.print(str(edge.render()))
        out.print(edge.check())
    except NginxError as exc:
        raise CliError(str(exc)) from None


@edge_app.command("reload")
def edge_reload() -> None:
    """Re-render, check and gracefully reload the running edge."""
    from infra.nginx import NginxError

    try:
        _edge().reload()
    except NginxError as exc:
        raise CliError(str(exc)) from None
    out.print("edge reloaded")


@edge_app.command("stats")
def edge_stats(
    log: Annotated[Path | None, typer.Option(help="Access log (default: the stack's).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Edge cache hit ratio and status counts from the JSON access log."""
    from edge.stats import format_text, read_log

    path = log or _edge().access_log
    if not path.exists():
        raise CliError(f"no access log at {path} (is the edge running?)")
    stats = read_log(path)
    if as_json:
        emit_json(stats.as_dict())
    else:
        out.print(format_text(stats))
